"""Listing the upload and planning batches of about 100 MB (a larger file is its own batch).

Batches are deterministic: files are sorted by key and packed greedily in that order, so a rerun
plans the same batches and the mapped task instances see the same inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_BATCH_BYTES = 100 * 1024 * 1024
SKIP_SUFFIXES = (".partial", ".tmp", ".part", ".crdownload")


@dataclass(frozen=True)
class SourceFile:
    key: str  # relative path (local) or object key (S3); unique within the upload
    size: int
    location: str  # absolute local path, or "s3://bucket/key"
    skip: str | None = None  # why the file is listed but not processed (it still gets an outcome)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def skip_reason(name: str) -> str | None:
    """Why a file of the upload is not processed, or None. Hidden files (``.DS_Store``, macOS
    ``._x.png`` resource forks, editors' temp files) and partial downloads are listed with this
    reason as their outcome, never dropped without a trace."""
    if name.startswith("."):
        return "hidden file (name starts with '.'): not processed"
    if name.endswith(SKIP_SUFFIXES):
        return "partial or temporary file (still being written?): not processed"
    return None


def list_local(source_dir: str | os.PathLike[str]) -> list[SourceFile]:
    """Every file under ``source_dir`` (recursive, sorted). Hidden and partial files and symlinks
    are listed with a ``skip`` reason; hidden folders are not entered (named in one entry each)."""
    root = Path(source_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"source folder not found: {root}")
    out: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            if d.startswith("."):
                p = Path(dirpath) / d
                out.append(
                    SourceFile(
                        p.relative_to(root).as_posix() + "/",
                        0,
                        str(p),
                        "hidden folder (name starts with '.'): its files are not processed",
                    )
                )
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out.append(SourceFile(rel, 0, str(p), "symbolic link: not followed"))
                continue
            if not p.is_file():
                out.append(SourceFile(rel, 0, str(p), "not a regular file"))
                continue
            out.append(SourceFile(rel, p.stat().st_size, str(p), skip_reason(name)))
    return sorted(out, key=lambda f: f.key)


def from_s3_listing(
    bucket: str, prefix: str, objects: Iterable[tuple[str, int]]
) -> list[SourceFile]:
    """Source files from ``(key, size)`` pairs of an S3 listing under ``prefix``."""
    out = []
    for key, size in objects:
        name = key.rsplit("/", 1)[-1]
        if key.endswith("/"):
            continue  # a folder marker, not a file
        rel = key[len(prefix) :].lstrip("/") if key.startswith(prefix) else key
        out.append(SourceFile(rel, int(size), f"s3://{bucket}/{key}", skip_reason(name)))
    return sorted(out, key=lambda f: f.key)


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix


def plan_batches(
    files: Sequence[SourceFile], target_bytes: int = DEFAULT_BATCH_BYTES
) -> list[list[SourceFile]]:
    """Greedy packing in key order: a batch closes before it would exceed ``target_bytes``; a file
    at least that large is a batch of its own."""
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    batches: list[list[SourceFile]] = []
    current: list[SourceFile] = []
    size = 0
    for f in sorted(files, key=lambda f: f.key):
        if f.size >= target_bytes:
            if current:
                batches.append(current)
                current, size = [], 0
            batches.append([f])
            continue
        if current and size + f.size > target_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        batches.append(current)
    return batches
