"""Import of masters made elsewhere (PixInsight WBPP, Siril, ...) into the calibration libraries,
with the same matching keys as the masters this project integrates (:mod:`include.astro.matching`),
and the WBPP temp cleanup after a verified copy.

A master is recognised by its header (``IMAGETYP`` ``Master Dark``/``Dark Frame``..., ``INSTRUME``,
``GAIN``, ``OFFSET``, ``SET-TEMP``, ``EXPTIME``, ``FILTER``, ``TELESCOP``, ``DATE-OBS``) and its
name (``masterDark_...`` of WBPP, ``dark_stacked``/``pp_flat_stacked`` of Siril). It lands at the
library path built from those properties (``.xisf`` and ``.fits`` kept as they are); the copy is
checksum-verified and never overwrites a different master (a per-item conflict). Masters whose
camera (or, for a flat, filter; for a dark, exposure) is unknown are per-item errors.

:func:`cleanup_wbpp` removes WBPP's intermediate folders (``calibrated``, ``cosmetized``,
``debayered``, ``registered``, ...) of an output folder only when every master of its ``master/``
folder is verified in the library; ``master/`` and ``logs/`` are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from include.astro.frames import (
    HEADER_READ_KEYS,
    FrameError,
    build_frame,
    fields_from_header,
    parse_name,
)
from include.astro.headers import HeaderError, read_header
from include.astro.library import copy_to_library
from include.astro.matching import MASTER_KEYS, library_dest
from include.common.files import sha256_file

MASTER_SUFFIXES = (".xisf", ".fits", ".fit", ".fts")
WBPP_TEMP_DIRS = ("calibrated", "cosmetized", "debayered", "registered", "measured", "normalized")
_NAME_TYPES = re.compile(r"(?:^|[_\-\s])(bias|dark|flat)(?:[_\-\s.]|$)", re.IGNORECASE)
REQUIRED = {"BIAS": ("camera",), "DARK": ("camera", "exposure"), "FLAT": ("camera", "filter")}


@dataclass
class ImportOutcome:
    source: str
    status: str  # copied | already_present | conflict | error
    imagetyp: str | None = None
    dest: str | None = None
    checksum: str | None = None
    verified: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def master_type(imagetyp: str | None, name: str) -> str | None:
    t = (imagetyp or "").upper().replace("MASTER ", "").replace("DARKFLAT", "DARK")
    if t in MASTER_KEYS:
        return t
    m = _NAME_TYPES.search(Path(name).stem.replace("master", "_"))
    return m.group(1).upper() if m else None


def find_masters(folder: str | os.PathLike[str]) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in MASTER_SUFFIXES
        and not any(part in WBPP_TEMP_DIRS for part in p.relative_to(root).parts)
    )


def import_master(
    path: str | os.PathLike[str], library_dir: str | os.PathLike[str], rigs: Any
) -> ImportOutcome:
    p = Path(path)
    try:
        hdr = fields_from_header(read_header(p, keys=HEADER_READ_KEYS))
    except HeaderError as exc:
        return ImportOutcome(str(p), "error", error=exc.reason)
    except OSError as exc:
        return ImportOutcome(str(p), "error", error=f"cannot read: {exc}")
    name_fields = parse_name(p, root=p.parent)
    typ = master_type(name_fields.get("imagetyp") or hdr.get("imagetyp"), p.name)
    if typ is None:
        return ImportOutcome(str(p), "error", error="not a bias/dark/flat master")
    name_fields["imagetyp"] = f"MASTER {typ}"  # a stacked "Dark Frame" of Siril is a master
    try:
        frame = build_frame(p, name_fields, hdr)
    except FrameError as exc:
        return ImportOutcome(str(p), "error", typ, error=exc.reason)
    props: Mapping[str, Any] = {k: frame.get(k) for k in MASTER_KEYS[typ]}
    missing = [k for k in REQUIRED[typ] if not props.get(k)]
    if missing:
        return ImportOutcome(str(p), "error", typ, error="missing " + ", ".join(missing))
    ext = ".xisf" if p.suffix.lower() == ".xisf" else ".fits"
    dest = library_dest(library_dir, typ, props, rigs).with_suffix(ext)
    rec = copy_to_library(p.name, typ, p, dest, sha256_file(p))
    return ImportOutcome(str(p), rec.status, typ, rec.dest, rec.checksum, rec.verified, rec.error)


def import_masters(
    folder: str | os.PathLike[str], library_dir: str | os.PathLike[str], rigs: Any
) -> list[ImportOutcome]:
    """Import every master file below ``folder`` (WBPP temp folders skipped)."""
    return [import_master(p, library_dir, rigs) for p in find_masters(folder)]


def cleanup_wbpp(
    wbpp_dir: str | os.PathLike[str], outcomes: Iterable[ImportOutcome]
) -> dict[str, Any]:
    """Remove WBPP's temp folders when every master of ``<wbpp_dir>/master`` was verified."""
    root = Path(wbpp_dir)
    masters = find_masters(root / "master")
    verified = {Path(o.source).resolve() for o in outcomes if o.verified}
    unverified = [str(m) for m in masters if m.resolve() not in verified]
    if not masters or unverified:
        why = (
            "no masters in master/" if not masters else f"{len(unverified)} master(s) not verified"
        )
        return {"removed": [], "kept_because": why, "unverified": unverified}
    removed = []
    for name in WBPP_TEMP_DIRS:
        d = root / name
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d)
            removed.append(str(d))
    return {"removed": removed, "kept_because": None, "unverified": []}
