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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _skip(name: str) -> bool:
    return name.startswith(".") or name.endswith(SKIP_SUFFIXES)


def list_local(source_dir: str | os.PathLike[str]) -> list[SourceFile]:
    """Every regular file under ``source_dir`` (recursive; hidden and partial files skipped)."""
    root = Path(source_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"source folder not found: {root}")
    out: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if _skip(name):
                continue
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            out.append(SourceFile(p.relative_to(root).as_posix(), p.stat().st_size, str(p)))
    return sorted(out, key=lambda f: f.key)


def from_s3_listing(
    bucket: str, prefix: str, objects: Iterable[tuple[str, int]]
) -> list[SourceFile]:
    """Source files from ``(key, size)`` pairs of an S3 listing under ``prefix``."""
    out = []
    for key, size in objects:
        name = key.rsplit("/", 1)[-1]
        if key.endswith("/") or _skip(name):
            continue
        rel = key[len(prefix) :].lstrip("/") if key.startswith(prefix) else key
        out.append(SourceFile(rel, int(size), f"s3://{bucket}/{key}"))
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
