"""Put masters into the calibration libraries and clean up the raw frames they were made from.

Library layout and master names are the shared ones of :mod:`include.astro.layout`
(``_Bias Library/[<subdir>/]<camera>/masterBias_...``, ``_Dark Library/...``,
``_Flat Stash/[<subdir>/]<camera>/<optic>/DATE_<night>/masterFlat_FILTER_...``), so the lights
pipeline finds them when it distributes calibration.

Safety rules:

* :func:`copy_to_library` never overwrites: an identical master already there counts as done, a
  different one is a per-group conflict (the new master stays in the integration folder, its raw
  frames are kept);
* :func:`delete_raw_frames` deletes a group's raw frames (BIAS groups first, then DARK, then FLAT)
  only when the library master exists and its sha256 equals the checksum recorded when it was
  integrated, and only the frames whose name and current sha256 are among the inputs written in
  that master's header (a frame changed or added since is kept and reported);
* the integration temp folder of a group is removed only after its frames are handled.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.common.files import (
    FileConflictError,
    MoveResult,
    remove_empty_dirs,
    safe_copy,
    sha256_file,
)

DELETE_ORDER = ("BIAS", "DARK", "FLAT")


@dataclass
class LibraryCopy:
    group_id: str
    imagetyp: str
    source: str
    dest: str
    status: str  # copied | already_present | conflict | error
    checksum: str | None = None
    verified: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def copy_to_library(
    group_id: str,
    imagetyp: str,
    master_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    expected_checksum: str,
) -> LibraryCopy:
    """Copy one master into the library (no clobber) and verify the library file's checksum."""
    src, dst = Path(master_path), Path(dest)
    rec = LibraryCopy(group_id, imagetyp, str(src), str(dst), status="error")
    try:
        if sha256_file(src) != expected_checksum:
            rec.error = "the integrated master changed since it was written (checksum mismatch)"
            return rec
        result = safe_copy(src, dst)
    except FileConflictError:
        rec.status = "conflict"
        rec.error = (
            f"a different master is already in the library at {dst}; it was not overwritten "
            "(raw frames kept)"
        )
        return rec
    except OSError as exc:
        rec.error = f"copy failed: {exc}"
        return rec
    rec.status = "copied" if result is MoveResult.COPIED else "already_present"
    rec.checksum = sha256_file(dst)
    rec.verified = rec.checksum == expected_checksum
    if not rec.verified:
        rec.status = "error"
        rec.error = "library copy does not match the master's checksum"
    return rec


@dataclass
class CleanupResult:
    group_id: str
    imagetyp: str
    deleted: list[str] = field(default_factory=list)
    kept: list[dict[str, str]] = field(default_factory=list)
    temp_removed: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def covers(master_path: str | os.PathLike[str], frames: Iterable[str | os.PathLike[str]]) -> bool:
    """True when the master at ``master_path`` lists every one of ``frames`` (name and current
    sha256) among its inputs - e.g. the rest of a group after a cleanup was interrupted."""
    from include.astro.masters import read_master_provenance

    path = Path(master_path)
    frames = [Path(f) for f in frames]
    if not path.is_file() or not frames:
        return False
    try:
        recorded = set(read_master_provenance(path)["inputs"].items())
    except (OSError, ValueError):
        return False
    return all((f.name[-68:], sha256_file(f)) in recorded for f in frames)


def delete_raw_frames(
    groups: Iterable[Mapping[str, Any]],
    *,
    calibration_dir: str | os.PathLike[str] | None = None,
) -> list[CleanupResult]:
    """Delete raw frames of groups whose master is verified in the library, BIAS → DARK → FLAT.

    Each group mapping has ``group_id``, ``imagetyp``, ``frames`` (paths, in integration order),
    ``library_path``, ``library_checksum`` (sha256 recorded after the verified copy) and optionally
    ``work_dir`` (the integration temp folder to remove afterwards). Groups without a verified
    library copy are skipped with a reason. Safe to rerun: frames already gone are fine.
    """
    from include.astro.masters import read_master_provenance

    groups = list(groups)
    results: list[CleanupResult] = []
    for imagetyp in DELETE_ORDER:
        for g in groups:
            if g["imagetyp"] != imagetyp:
                continue
            res = CleanupResult(g["group_id"], imagetyp)
            results.append(res)
            lib = g.get("library_path")
            want = g.get("library_checksum")
            if not lib or not want:
                res.error = "no verified library copy: raw frames kept"
                continue
            lib = Path(lib)
            if not lib.is_file():
                res.error = f"library master missing at {lib}: raw frames kept"
                continue
            if sha256_file(lib) != want:
                res.error = f"library master at {lib} fails its checksum: raw frames kept"
                continue
            recorded = set(read_master_provenance(lib)["inputs"].items())
            for path in (Path(p) for p in g["frames"]):
                if not path.exists():
                    continue  # deleted by an earlier (interrupted) run
                if (path.name[-68:], sha256_file(path)) not in recorded:
                    res.kept.append(
                        {
                            "path": str(path),
                            "reason": "not an input of the library master (changed since "
                            "integration or never integrated)",
                        }
                    )
                    continue
                path.unlink()
                res.deleted.append(str(path))
            work = g.get("work_dir")
            if work and not res.kept and Path(work).exists():
                shutil.rmtree(work)
                res.temp_removed = True
    if calibration_dir is not None and Path(calibration_dir).is_dir():
        remove_empty_dirs(calibration_dir, keep_root=True)
    return results
