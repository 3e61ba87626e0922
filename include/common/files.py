"""Safe file operations: checksums, no-clobber copy, copy-verify-delete moves, atomic writes,
and sanitising of untrusted names.

Rules every pipeline relies on:
* a destination that exists is never overwritten (an identical one counts as already done);
* a source is deleted only after its copy is verified by checksum;
* a half-written file never appears under its final name (temp name + atomic link/rename).
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import re
import shutil
import unicodedata
import uuid
from pathlib import Path

CHUNK = 1 << 20


class FileConflictError(FileExistsError):
    """The destination exists with different content."""


class MoveResult(enum.StrEnum):
    MOVED = "moved"
    COPIED = "copied"
    ALREADY_PRESENT = "already_present"  # an identical file was already at the destination


def sha256_file(path: str | os.PathLike[str], chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def same_content(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    pa, pb = Path(a), Path(b)
    if pa.stat().st_size != pb.stat().st_size:
        return False
    try:
        if os.path.samefile(pa, pb):
            return True
    except OSError:
        pass
    return sha256_file(pa) == sha256_file(pb)


def _tmp_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.partial")


def _link_no_clobber(tmp: Path, dst: Path) -> None:
    """Publish ``tmp`` as ``dst`` atomically, failing if ``dst`` exists."""
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise
    except OSError as exc:  # filesystems without hard links
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "destination exists", str(dst)) from exc
        os.rename(tmp, dst)
        return
    tmp.unlink()


def safe_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> MoveResult:
    """Copy ``src`` to ``dst`` through a temp file, verify the checksum, never overwrite.

    Returns ``ALREADY_PRESENT`` when an identical file is already at ``dst``; raises
    :class:`FileConflictError` when a different file is there.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        if same_content(src, dst):
            return MoveResult.ALREADY_PRESENT
        raise FileConflictError(errno.EEXIST, "a different file is at the destination", str(dst))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dst)
    try:
        h = hashlib.sha256()
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while block := fin.read(CHUNK):
                h.update(block)
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, tmp)
        if sha256_file(tmp) != h.hexdigest():
            raise OSError(f"checksum mismatch after copying {src} to {tmp}")
        try:
            _link_no_clobber(tmp, dst)
        except FileExistsError:
            if same_content(src, dst):
                return MoveResult.ALREADY_PRESENT
            raise FileConflictError(
                errno.EEXIST, "a different file is at the destination", str(dst)
            ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return MoveResult.COPIED


def safe_move(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> MoveResult:
    """Move without loss: hard link (same filesystem) or copy + verify, then delete the source.

    Idempotent: rerunning after a crash between the copy and the delete finds the identical
    destination and only removes the source.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists() and dst.exists():
        return MoveResult.ALREADY_PRESENT
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # same filesystem: atomic, no clobber, no copy needed
        result = MoveResult.MOVED
    except FileExistsError:
        if not same_content(src, dst):
            raise FileConflictError(
                errno.EEXIST, "a different file is at the destination", str(dst)
            ) from None
        result = MoveResult.ALREADY_PRESENT
    except OSError:
        result = safe_copy(src, dst)
        if result is MoveResult.COPIED:
            result = MoveResult.MOVED
    src.unlink()
    return result


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and rename (replaces an existing file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=-]+")


def safe_name(name: str, max_len: int = 120, default: str = "file") -> str:
    """A file-name component made from untrusted text: no separators, no ``..``, no control
    characters, ASCII only, bounded length. Never returns an empty name or a dot name."""
    base = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = base.replace("/", "_").replace("\\", "_")
    base = _UNSAFE.sub("_", base).strip("._-")
    base = re.sub(r"\.{2,}", ".", base)
    if not base:
        base = default
    if len(base) > max_len:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            base = stem[: max_len - len(ext) - 1] + "." + ext
        else:
            base = base[:max_len]
    return base


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when ``path`` resolves inside ``root`` (guards against ``..`` and symlink escapes)."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


def remove_empty_dirs(root: str | os.PathLike[str], keep_root: bool = True) -> list[Path]:
    """Delete directories under ``root`` that contain nothing (bottom-up). Returns what was removed."""
    root = Path(root)
    removed: list[Path] = []
    for dirpath, _dirnames, _files in os.walk(root, topdown=False):
        d = Path(dirpath)
        if keep_root and d == root:
            continue
        try:
            d.rmdir()
            removed.append(d)
        except OSError:
            pass
    return removed
