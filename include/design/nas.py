"""NAS layout and the mounted-share backend.

Layout (the seed's ``nas_storage`` structure): ``<root>/<shop>/<template>/<stem[:50]>_<timestamp>_
<uuid8>.<ext>``. Both variable parts are deterministic so a retried or rerun upload writes the same
name: the timestamp is the run's logical date, the uuid8 is a UUID5 of (shop, content sha256).
Mockups go to ``<root>/<shop>/<template>/mockups/``.

A backend stores a local file under a relative path without ever exposing a half-written file
(temp name, then rename) and without overwriting a different file. :class:`MountedNas` is the
mounted-share backend; the SFTP backend lives in the Airflow hook (``imaging.hooks.nas``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from include.common.files import MoveResult, is_within, safe_copy, safe_name

NAS_NAMESPACE = uuid.UUID("5b0c6a53-2a83-4f1e-9a1c-6a0f1a7d6e21")
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp"})
MOCKUP_DIR = "mockups"


def timestamp(when: datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%S")


def nas_filename(stem: str, ext: str, when: datetime, sha256: str, shop: str) -> str:
    uid = uuid.uuid5(NAS_NAMESPACE, f"{shop}/{sha256}").hex[:8]
    return f"{safe_name(stem, default='design')[:50]}_{timestamp(when)}_{uid}.{ext.lstrip('.')}"


def design_relpath(shop: str, template: str, filename: str) -> str:
    return str(PurePosixPath(safe_name(shop), safe_name(template), filename))


def mockup_relpath(shop: str, template: str, design_filename: str, mockup: str) -> str:
    stem = PurePosixPath(design_filename).stem
    return str(
        PurePosixPath(
            safe_name(shop), safe_name(template), MOCKUP_DIR, f"{stem}__{safe_name(mockup)}.jpg"
        )
    )


def shop_of(relpath: str) -> str:
    return PurePosixPath(relpath).parts[0]


def is_design_file(relpath: str) -> bool:
    """Image files under a shop folder, excluding mockups and temp/hidden files."""
    p = PurePosixPath(relpath)
    if len(p.parts) < 2 or MOCKUP_DIR in p.parts[:-1]:
        return False
    if any(part.startswith(".") for part in p.parts) or p.name.endswith(".partial"):
        return False
    return p.suffix.lower() in IMAGE_EXTS


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the NAS root, "/" separated
    size: int
    mtime_ns: int


class NasBackend(Protocol):
    def put(self, local: str | os.PathLike[str], rel: str) -> str: ...
    def walk(self, prefix: str = "") -> Iterator[RemoteFile]: ...
    def fetch(self, rel: str, local: str | os.PathLike[str]) -> None: ...
    def exists(self, rel: str) -> bool: ...
    def location(self, rel: str) -> str: ...
    def delete(self, rel: str) -> bool: ...


class MountedNas:
    """A NAS share mounted as a local folder (or any local folder)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, rel: str) -> Path:
        p = self.root / rel
        if not is_within(p, self.root):
            raise ValueError(f"path escapes the NAS root: {rel!r}")
        return p

    def location(self, rel: str) -> str:
        return str(self._path(rel))

    def put(self, local: str | os.PathLike[str], rel: str) -> str:
        """Copy via a temp name + checksum + no-clobber link; identical file = already done."""
        dst = self._path(rel)
        result = safe_copy(local, dst)
        return "already_present" if result is MoveResult.ALREADY_PRESENT else "stored"

    def exists(self, rel: str) -> bool:
        return self._path(rel).exists()

    def delete(self, rel: str) -> bool:
        """Remove a file this pipeline stored (a run that lost the race); False if absent."""
        p = self._path(rel)
        if not p.is_file():
            return False
        p.unlink()
        return True

    def fetch(self, rel: str, local: str | os.PathLike[str]) -> None:
        safe_copy(self._path(rel), local)

    def open_path(self, rel: str) -> Path:
        return self._path(rel)

    def walk(self, prefix: str = "") -> Iterator[RemoteFile]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                st = full.stat()
                yield RemoteFile(rel, st.st_size, st.st_mtime_ns)
