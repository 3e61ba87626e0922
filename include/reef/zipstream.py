"""Deterministic, streamed zip64 archives of a folder.

* entries in sorted order with a fixed timestamp and mode, so the same folder always gives the
  same bytes (a rerun uploads an identical file, and the size check means something);
* streamed: files are copied in blocks, never read whole; zip64 always on (folders exceed 4 GiB);
* entry names are relative POSIX paths under the folder's name; absolute paths, ``..`` and
  symlinks (which could point outside the folder) are never archived;
* written under a temp name and renamed, so a crash never leaves a truncated archive in place.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
BLOCK = 1 << 20


class UnsafeEntryError(ValueError):
    pass


@dataclass
class ZipResult:
    path: str
    size: int
    sha256: str
    entries: int
    skipped: dict[str, str] = field(default_factory=dict)


def safe_arcname(root_name: str, rel: str) -> str:
    p = PurePosixPath(rel.replace(os.sep, "/"))
    if p.is_absolute() or any(part in ("..", "") for part in p.parts) or "\\" in rel:
        raise UnsafeEntryError(f"unsafe entry name {rel!r}")
    return f"{root_name}/{p.as_posix()}" if root_name else p.as_posix()


def iter_files(folder: Path) -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """(file, relative name) pairs in a stable order, plus what was skipped and why."""
    files: list[tuple[Path, str]] = []
    skipped: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        d = Path(dirpath)
        for name in list(dirnames):
            if (d / name).is_symlink():
                skipped[(d / name).relative_to(folder).as_posix()] = "symlink not archived"
        dirnames[:] = sorted(n for n in dirnames if not (d / n).is_symlink())
        for name in sorted(filenames):
            p = d / name
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink():
                skipped[rel] = "symlink not archived"
            elif not p.is_file():
                skipped[rel] = "not a regular file"
            else:
                files.append((p, rel))
    files.sort(key=lambda t: t[1])
    return files, skipped


def zip_folder(
    folder: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    root_name: str | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> ZipResult:
    """Archive ``folder`` into ``dest`` (replaced atomically). Entries are ``<root_name>/<rel>``
    (default root_name: the folder's name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory")
    root = folder.name if root_name is None else root_name
    files, skipped = iter_files(folder)
    res = zip_files(
        [(p, safe_arcname(root, rel)) for p, rel in files], dest, compression=compression
    )
    res.skipped = skipped
    return res


def zip_files(
    entries: list[tuple[Path, str]],
    dest: str | os.PathLike[str],
    *,
    compression: int = zipfile.ZIP_STORED,
) -> ZipResult:
    """Archive ``(file, entry name)`` pairs, in the given order, into ``dest`` (atomically)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=compression, allowZip64=True) as zf:
            for path, arcname in entries:
                info = zipfile.ZipInfo(safe_arcname("", arcname), date_time=FIXED_TIME)
                info.compress_type = compression
                info.external_attr = (0o100644 & 0xFFFF) << 16
                info.create_system = 3  # unix, whatever the host
                with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as out:
                    while block := src.read(BLOCK):
                        out.write(block)
        h = hashlib.sha256()
        with open(tmp, "rb") as fh:
            while block := fh.read(BLOCK):
                h.update(block)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return ZipResult(str(dest), dest.stat().st_size, h.hexdigest(), len(entries), {})
