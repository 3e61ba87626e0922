"""Planning an upload to the artifact manager: which local file goes to which remote path, the
per-file timeout (scaled by size), multipart part ranges, and checking a remote listing against
what was meant to be there. No network here: the hook does the I/O.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MIN_PART = 5 * 1024 * 1024  # S3 minimum (except the last part)
MAX_PARTS = 10_000


@dataclass(frozen=True)
class UploadFile:
    local: str
    remote: str
    size: int


def remote_path(*parts: str) -> str:
    """Join remote path parts; refuse absolute paths and ``..``."""
    p = PurePosixPath(*[x.strip("/") for x in parts if x and x.strip("/")])
    if any(s in ("..", ".") for s in p.parts) or not p.parts:
        raise ValueError(f"unsafe remote path {'/'.join(parts)!r}")
    return p.as_posix()


def plan_directory(
    root: str | os.PathLike[str], prefix: str, *, exclude: tuple[str, ...] = (".done",)
) -> list[UploadFile]:
    """Every regular file under ``root`` as ``<prefix>/<relative path>``, sorted; temp files
    (``.*.partial``) and names in ``exclude`` are left out."""
    root = Path(root)
    out: list[UploadFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name in exclude or (name.startswith(".") and name.endswith(".partial")):
                continue
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            rel = p.relative_to(root).as_posix()
            out.append(UploadFile(str(p), remote_path(prefix, rel), p.stat().st_size))
    out.sort(key=lambda f: f.remote)
    return out


def timeout_for(size: int, base_s: float = 60.0, min_rate_bps: float = 1_000_000.0) -> float:
    """Seconds allowed for moving ``size`` bytes: a fixed allowance plus the time at the slowest
    acceptable rate."""
    return base_s + size / min_rate_bps


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each multipart part; the part size grows if 10,000 parts are not enough."""
    part = max(MIN_PART, part_size, math.ceil(size / MAX_PARTS))
    return [(off, min(part, size - off)) for off in range(0, size, part)] or [(0, 0)]


@dataclass
class ListingDiff:
    missing: list[str]
    wrong_size: dict[str, tuple[int, int]]  # path -> (expected, found)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.wrong_size

    def describe(self) -> str:
        bits = []
        if self.missing:
            bits.append(f"{len(self.missing)} missing (e.g. {self.missing[:3]})")
        if self.wrong_size:
            k = next(iter(self.wrong_size))
            bits.append(f"{len(self.wrong_size)} with wrong size (e.g. {k}: {self.wrong_size[k]})")
        return "; ".join(bits) or "ok"


def diff_listing(expected: dict[str, int], remote: dict[str, int]) -> ListingDiff:
    missing = sorted(p for p in expected if p not in remote)
    wrong = {
        p: (s, remote[p]) for p, s in sorted(expected.items()) if p in remote and remote[p] != s
    }
    return ListingDiff(missing, wrong)


_ALIAS_BAD = re.compile(r"[^a-z0-9-]+")


def artifact_alias(*parts: str) -> str:
    """A Hypha artifact alias from free text: lowercase letters, digits and single dashes."""
    text = "-".join(parts).lower()
    alias = _ALIAS_BAD.sub("-", text).strip("-")
    alias = re.sub(r"-{2,}", "-", alias)
    if not alias:
        raise ValueError(f"cannot make an alias from {parts!r}")
    return alias[:120]
