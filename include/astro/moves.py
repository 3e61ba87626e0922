"""The raw step and the final move of the lights pipeline.

* :func:`prepare_raw` - every frame under ``raw_dir`` (``_stash`` and hidden folders skipped) is
  parsed and moved+renamed into the rig tree: lights to ``<rig>/10_Blink/...``, BIAS/DARK/FLAT frames
  to the calibration input area (:mod:`include.astro.layout`); ``accept/`` is created next to each
  ``DATE_`` folder of moved lights; raw folders left empty are deleted.
* :func:`promote_dir` - one light directory (lights + distributed masters) from ``10_Blink`` to the
  same relative place in ``20_Data``.

A move is :func:`include.common.files.safe_move`: hard link or copy + checksum, then delete; an
existing destination is never overwritten (an identical one counts as done, a different one is a
per-item error). Bad items (unparseable, corrupt, truncated, conflicting, read-only folder) are
reported with a reason and left where they are; the other items go on. Every function is safe to
rerun after a crash: what was moved is no longer in the source, a half-done move is completed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.astro import layout
from include.astro.frames import Frame, try_parse_frame
from include.astro.headers import is_frame_file
from include.astro.rigs import RigsConfig
from include.common.files import FileConflictError, MoveResult, is_within, safe_copy, safe_move

# ledger callback: (kind, key, status, detail, error) -> None
Ledger = Callable[[str, str, str, dict[str, Any] | None, str | None], None]


@dataclass
class ItemOutcome:
    """What happened to one file."""

    src: str
    status: str  # moved | already_present | error
    dest: str | None = None
    kind: str | None = None  # light | calibration
    rig: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PrepareResult:
    items: list[ItemOutcome] = field(default_factory=list)
    accept_dirs: list[str] = field(default_factory=list)
    removed_dirs: list[str] = field(default_factory=list)
    skipped_dirs: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[ItemOutcome]:
        return [i for i in self.items if i.status == "error"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.items:
            key = i.status if i.status == "error" else f"{i.kind}_{i.status}"
            out[key] = out.get(key, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [i.to_dict() for i in self.items],
            "accept_dirs": self.accept_dirs,
            "removed_dirs": self.removed_dirs,
            "skipped_dirs": self.skipped_dirs,
            "counts": self.counts(),
            "rigs": sorted({i.rig for i in self.items if i.kind == "light" and i.rig and i.dest}),
        }


def is_read_only(directory: str | os.PathLike[str]) -> bool:
    """A folder the user marked read-only (no write bit for its owner) or we cannot write to.

    The mode bit is checked explicitly so that the rule also holds for a process running as root."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return not (st.st_mode & stat.S_IWUSR) or not os.access(directory, os.W_OK)


def scan_frames(
    root: str | os.PathLike[str], skip: Callable[[str], bool]
) -> tuple[list[Path], list[str]]:
    """Frame files below ``root`` (sorted) and the folders skipped (relative)."""
    root = Path(root)
    files: list[Path] = []
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for d in sorted(dirnames):
            if skip(d):
                skipped.append(str((Path(dirpath) / d).relative_to(root)))
            else:
                keep.append(d)
        dirnames[:] = keep
        files.extend(Path(dirpath) / f for f in filenames if is_frame_file(f))
    return sorted(files), skipped


def unsupported_files(root: Path, skip: Callable[[str], bool]) -> list[Path]:
    """Visible files below ``root`` that are not frames (reported, left in place)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not skip(d)]
        out += [
            Path(dirpath) / f
            for f in filenames
            if not f.startswith(".") and not f.endswith(".partial") and not is_frame_file(f)
        ]
    return sorted(out)


def _raw_skip(name: str) -> bool:
    return name in layout.RAW_SKIP_DIRS or name.startswith(".")


def destination(library_dir: str | os.PathLike[str], frame: Frame) -> tuple[str, Path]:
    """``("light"|"calibration", path)`` of a parsed raw frame."""
    if frame.is_light:
        kind, dest = "light", layout.light_dest(library_dir, frame)
    elif frame.imagetyp in layout.CALIBRATION_TYPES:
        kind, dest = "calibration", layout.calibration_dest(library_dir, frame)
    else:
        raise ValueError(f"frame type {frame.imagetyp} is not handled by the raw step")
    if not is_within(dest, library_dir):  # defence in depth: components are sanitised already
        raise ValueError(f"destination {dest} is outside the library")
    return kind, dest


def move_one(src: Path, dest: Path) -> MoveResult:
    """safe_move with the pre-checks that keep a failed move side-effect free."""
    if is_read_only(src.parent):
        raise PermissionError(f"source folder is read-only: {src.parent}")
    existing = next((p for p in [dest.parent, *dest.parents] if p.exists()), None)
    if existing is not None and existing.is_dir() and is_read_only(existing):
        raise PermissionError(f"destination folder is read-only: {existing}")
    if src.is_symlink():
        return _move_symlink(src, dest)
    return safe_move(src, dest)


def _move_symlink(link: Path, dest: Path) -> MoveResult:
    """A symlinked raw file: its *content* is copied (verified) into the library and only the link
    is removed; the file it points to is left alone (it may live anywhere). A hard link of the link
    would leave a dangling link in the library."""
    if not link.exists():
        raise FileNotFoundError(f"dangling symlink (points to {os.readlink(link)})")
    target = link.resolve()
    if not target.is_file():
        raise ValueError(f"symlink to something that is not a file: {target}")
    res = safe_copy(target, dest)
    link.unlink()
    return MoveResult.ALREADY_PRESENT if res is MoveResult.ALREADY_PRESENT else MoveResult.MOVED


def prepare_raw(
    raw_dir: str | os.PathLike[str],
    library_dir: str | os.PathLike[str],
    cfg: RigsConfig,
    ledger: Ledger | None = None,
) -> PrepareResult:
    """Parse, move and rename every raw frame; create accept dirs; delete empty raw folders."""
    raw = Path(raw_dir)
    lib = Path(library_dir)
    result = PrepareResult()
    if not raw.is_dir():
        result.items.append(
            ItemOutcome(src=str(raw), status="error", reason="raw_dir does not exist")
        )
        return result
    files, result.skipped_dirs = scan_frames(raw, _raw_skip)
    for other in unsupported_files(raw, _raw_skip):
        rel = str(other.relative_to(raw))
        ext = other.suffix.lower() or "(none)"
        result.items.append(
            ItemOutcome(
                src=rel, status="error", reason=f"unsupported file type {ext} (not FITS/XISF)"
            )
        )
    accept: set[Path] = set()
    for src in files:
        rel = str(src.relative_to(raw))
        if src.is_symlink() and not src.exists():
            why = f"dangling symlink (points to {os.readlink(src)})"
            result.items.append(ItemOutcome(src=rel, status="error", reason=why))
            continue
        frame, reason = try_parse_frame(
            src,
            root=raw,
            pattern=cfg.token_pattern,
            night_offset_hours=cfg.night_offset_hours,
        )
        if frame is None:
            result.items.append(ItemOutcome(src=rel, status="error", reason=reason))
            continue
        try:
            kind, dest = destination(lib, frame)
        except ValueError as exc:
            result.items.append(ItemOutcome(src=rel, status="error", reason=str(exc)))
            continue
        rig = frame.rig_name if kind == "light" else None
        try:
            moved = move_one(src, dest)
        except FileConflictError:
            result.items.append(
                ItemOutcome(
                    src=rel,
                    status="error",
                    kind=kind,
                    rig=rig,
                    dest=str(dest.relative_to(lib)),
                    reason="a different file is already at the destination",
                )
            )
            continue
        except (OSError, ValueError) as exc:
            result.items.append(
                ItemOutcome(
                    src=rel,
                    status="error",
                    kind=kind,
                    rig=rig,
                    dest=str(dest.relative_to(lib)),
                    reason=str(exc) if isinstance(exc, PermissionError) else f"move failed: {exc}",
                )
            )
            continue
        status = "already_present" if moved is MoveResult.ALREADY_PRESENT else "moved"
        out = ItemOutcome(
            src=rel, status=status, dest=str(dest.relative_to(lib)), kind=kind, rig=rig
        )
        result.items.append(out)
        if ledger:
            ledger(
                "raw_move", out.dest or rel, "done", {"src": rel, "kind": kind, "rig": rig}, None
            )
        if kind == "light":
            accept.add(layout.ensure_accept_dir(dest))
    # frames moved by an earlier (crashed) run still need their accept dir
    result.accept_dirs = sorted(str(a.relative_to(lib)) for a in accept)
    result.removed_dirs = [str(d.relative_to(raw)) for d in remove_empty_raw_dirs(raw)]
    if ledger:
        for item in result.errors:
            ledger("raw_move", item.src, "failed", {"dest": item.dest}, item.reason)
    return result


def remove_empty_raw_dirs(raw: Path) -> list[Path]:
    """Delete empty folders below ``raw`` (bottom-up), never ``raw`` itself nor ``_stash`` trees."""
    removed: list[Path] = []
    for dirpath, _dirnames, _files in os.walk(raw, topdown=False):
        d = Path(dirpath)
        if d == raw or any(part in layout.RAW_SKIP_DIRS for part in d.relative_to(raw).parts):
            continue
        try:
            d.rmdir()
            removed.append(d)
        except OSError:
            pass
    return sorted(removed)


def promote_dir(
    library_dir: str | os.PathLike[str], light_dir: str | os.PathLike[str]
) -> list[ItemOutcome]:
    """Move every file of one ``10_Blink`` light directory to ``20_Data`` (same relative path).

    Creates ``accept/`` next to the destination ``DATE_`` folder and removes the emptied source
    folders (an empty ``accept/`` left alone in a target folder goes too)."""
    lib = Path(library_dir)
    src_dir = Path(light_dir)
    dest_dir = layout.blink_to_data(src_dir)
    out: list[ItemOutcome] = []
    for src in sorted(p for p in src_dir.iterdir() if p.is_file()):
        dest = dest_dir / src.name
        rel = str(src.relative_to(lib))
        try:
            moved = move_one(src, dest)
        except FileConflictError:
            out.append(
                ItemOutcome(
                    src=rel, status="error", reason="a different file is already in 20_Data"
                )
            )
            continue
        except OSError as exc:
            out.append(ItemOutcome(src=rel, status="error", reason=f"move failed: {exc}"))
            continue
        status = "already_present" if moved is MoveResult.ALREADY_PRESENT else "moved"
        out.append(
            ItemOutcome(src=rel, status=status, dest=str(dest.relative_to(lib)), kind="light")
        )
    if not any(o.status == "error" for o in out):
        layout.ensure_accept_dir(dest_dir / "x")
        prune_light_dir(src_dir)
    return out


def prune_light_dir(light_dir: str | os.PathLike[str]) -> None:
    """Remove an emptied light folder, its ``DATE_`` folder and the target folder when nothing but
    an empty ``accept/`` is left (after promotion or rejects)."""
    _prune(Path(light_dir))


def _prune(light_dir: Path) -> None:
    """Remove the emptied group folder, its DATE_ folder and the target folder when empty."""
    group, date_dir, target = light_dir, light_dir.parent, light_dir.parent.parent
    for d in (group, date_dir):
        try:
            d.rmdir()
        except OSError:
            return
    accept = target / layout.ACCEPT_DIR
    rest = [p for p in target.iterdir() if p != accept]
    if not rest:
        try:
            if accept.exists():
                accept.rmdir()
            target.rmdir()
        except OSError:
            pass
