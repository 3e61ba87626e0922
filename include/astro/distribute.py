"""Distribute calibration masters from the library to the light directories of a rig.

For every light directory in ``<rig>/10_Blink`` the masters whose properties equal the lights'
properties are copied into the directory (``safe_copy``: never overwritten, identical = done):

* dark: the rig's ``dark_properties`` (e.g. exposure, settemp, camera, gain, offset, type
  [+ readoutmode]);
* flat: the rig's ``flat_properties`` (date, optic, filter, settemp, camera, gain, offset, type);
* bias: only when the matched dark's exposure differs from the lights' exposure (a scaled dark),
  matched on ``bias_properties``.

A property missing on the master matches anything; ``type`` means the master's type
(``MASTER DARK`` ...). More than one match is an error; no match is reported as MISSING. A directory
is *complete* when every needed master is present in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.astro import layout
from include.astro.cull import light_dirs
from include.astro.frames import Frame, try_parse_frame
from include.astro.headers import is_frame_file
from include.astro.rigs import RigConfig, RigsConfig
from include.common.files import FileConflictError, MoveResult, safe_copy

KINDS = {"dark": "MASTER DARK", "flat": "MASTER FLAT", "bias": "MASTER BIAS"}


def load_masters(
    library_dir: str | os.PathLike[str], cfg: RigsConfig, subdir: str | None = None
) -> tuple[list[Frame], list[dict[str, str]]]:
    """Parse every master in the three libraries (optionally only ``<library>/<subdir>``).

    Returns ``(masters, errors)``; an unreadable master is an error item, not a crash."""
    lib = Path(library_dir)
    masters: list[Frame] = []
    errors: list[dict[str, str]] = []
    for folder in (layout.BIAS_LIBRARY, layout.DARK_LIBRARY, layout.FLAT_STASH):
        base = lib / folder
        if subdir:
            base = base / subdir
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not is_frame_file(name):
                    continue
                p = Path(dirpath) / name
                frame, reason = try_parse_frame(
                    p,
                    root=lib,
                    pattern=cfg.token_pattern,
                    night_offset_hours=cfg.night_offset_hours,
                )
                if frame is None:
                    errors.append(
                        {"src": str(p.relative_to(lib)), "reason": reason or "unreadable"}
                    )
                elif frame.is_master:
                    masters.append(frame)
                else:
                    errors.append(
                        {
                            "src": str(p.relative_to(lib)),
                            "reason": f"not a master ({frame.imagetyp})",
                        }
                    )
    return masters, errors


def matches(light: Frame, master: Frame, props: Iterable[str], master_type: str) -> bool:
    if master.imagetyp != master_type:
        return False
    for prop in props:
        if prop == "imagetyp":
            continue  # compared above
        mv = master.get(prop)
        if mv is None or mv == "":
            continue  # missing on the master: matches
        if mv != light.get(prop):
            return False
    return True


def find(
    light: Frame, masters: Sequence[Frame], props: Iterable[str], master_type: str
) -> list[Frame]:
    props = tuple(props)
    return [m for m in masters if matches(light, m, props, master_type)]


@dataclass
class DirCalibration:
    directory: str
    needed: dict[str, str | None] = field(default_factory=dict)  # kind -> master rel path or None
    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "dark", "flat", "bias"
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["complete"] = self.complete
        return d


def _properties_of(frames: Sequence[Frame], props: Iterable[str]) -> tuple[Frame, list[str]]:
    """The directory's representative light and the properties on which its lights disagree."""
    first = frames[0]
    bad = sorted({p for p in props for f in frames[1:] if f.get(p) != first.get(p)})
    return first, bad


def plan_dir(
    directory: str, lights: Sequence[Frame], masters: Sequence[Frame], rc: RigConfig, lib: Path
) -> DirCalibration:
    out = DirCalibration(directory)
    all_props = set(rc.dark_properties) | set(rc.flat_properties)
    light, disagree = _properties_of(lights, all_props - {"imagetyp"})
    if disagree:
        out.errors.append("lights disagree on " + ", ".join(disagree))
        return out

    def pick(kind: str, props: Sequence[str]) -> Frame | None:
        found = find(light, masters, props, KINDS[kind])
        if not found:
            out.missing.append(kind)
            out.needed[kind] = None
            return None
        if len(found) > 1:
            names = ", ".join(sorted(str(Path(m.path).relative_to(lib)) for m in found))
            out.errors.append(f"{len(found)} {kind} masters match: {names}")
            out.needed[kind] = None
            return None
        out.needed[kind] = str(Path(found[0].path).relative_to(lib))
        return found[0]

    dark = pick("dark", rc.dark_properties)
    pick("flat", rc.flat_properties)
    if dark is not None and dark.exposure != light.exposure:
        pick("bias", rc.bias_properties)
    return out


def distribute_rig(
    library_dir: str | os.PathLike[str],
    rig: str,
    cfg: RigsConfig,
    masters: Sequence[Frame] | None = None,
    directories: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Copy the matching masters into each light directory of the rig (or only ``directories``).

    Returns ``{"rig", "directories": [DirCalibration dicts], "master_errors": [...]}``."""
    lib = Path(library_dir)
    rc = cfg.for_rig(rig)
    master_errors: list[dict[str, str]] = []
    if masters is None:
        masters, master_errors = load_masters(lib, cfg, rc.library_subdir)
    wanted = set(directories) if directories is not None else None
    result: dict[str, Any] = {"rig": rig, "directories": [], "master_errors": master_errors}
    for directory, files in light_dirs(lib, rig).items():
        if wanted is not None and directory not in wanted:
            continue
        lights: list[Frame] = []
        plan_errors: list[str] = []
        for p in files:
            frame, reason = try_parse_frame(
                p, root=lib, pattern=cfg.token_pattern, night_offset_hours=cfg.night_offset_hours
            )
            if frame is None:
                plan_errors.append(f"{p.name}: {reason}")
            else:
                lights.append(frame)
        if not lights:
            dc = DirCalibration(directory, errors=plan_errors or ["no readable lights"])
            result["directories"].append(dc.to_dict())
            continue
        dc = plan_dir(directory, lights, masters, rc, lib)
        dc.errors += plan_errors
        for _kind, rel in sorted(dc.needed.items()):
            if rel is None:
                continue
            src = lib / rel
            dest = lib / directory / src.name
            try:
                res = safe_copy(src, dest)
            except FileConflictError:
                dc.errors.append(f"a different file named {src.name} is already in the directory")
                continue
            except OSError as exc:
                dc.errors.append(f"copy of {src.name} failed: {exc}")
                continue
            (dc.present if res is MoveResult.ALREADY_PRESENT else dc.copied).append(
                str(dest.relative_to(lib))
            )
        result["directories"].append(dc.to_dict())
    return result
