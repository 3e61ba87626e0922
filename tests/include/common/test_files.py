from __future__ import annotations

import os
from pathlib import Path

import pytest

from include.common.files import (
    FileConflictError,
    MoveResult,
    atomic_write_text,
    is_within,
    remove_empty_dirs,
    safe_copy,
    safe_move,
    safe_name,
    sha256_file,
)


def _write(p: Path, data: bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 * 1024 * 1024 + 17)
    p = _write(tmp_path / "a.bin", data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_safe_move_moves_and_is_idempotent(tmp_path: Path) -> None:
    src = _write(tmp_path / "in" / "a.fits", b"frame")
    dst = tmp_path / "out" / "x" / "a.fits"
    assert safe_move(src, dst) is MoveResult.MOVED
    assert not src.exists() and dst.read_bytes() == b"frame"
    # rerun after the move already happened: nothing to do, nothing lost
    assert safe_move(src, dst) is MoveResult.ALREADY_PRESENT
    assert dst.read_bytes() == b"frame"


def test_safe_move_crash_between_copy_and_delete(tmp_path: Path) -> None:
    src = _write(tmp_path / "in" / "a.fits", b"frame")
    dst = _write(tmp_path / "out" / "a.fits", b"frame")  # the copy landed, the delete did not
    assert safe_move(src, dst) is MoveResult.ALREADY_PRESENT
    assert not src.exists() and dst.read_bytes() == b"frame"


def test_safe_move_never_overwrites_a_different_file(tmp_path: Path) -> None:
    src = _write(tmp_path / "in" / "a.fits", b"new")
    dst = _write(tmp_path / "out" / "a.fits", b"old")
    with pytest.raises(FileConflictError):
        safe_move(src, dst)
    assert src.read_bytes() == b"new" and dst.read_bytes() == b"old"


def test_safe_copy_across_devices_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without hard links (another filesystem) the copy is verified, then published atomically."""
    import include.common.files as files

    def no_link(a: object, b: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(files.os, "link", no_link)
    src = _write(tmp_path / "in" / "a.bin", os.urandom(100_000))
    dst = tmp_path / "out" / "a.bin"
    assert safe_move(src, dst) is MoveResult.MOVED
    assert not src.exists() and dst.stat().st_size == 100_000
    assert not list(dst.parent.glob(".*.partial"))


def test_safe_copy_keeps_source(tmp_path: Path) -> None:
    src = _write(tmp_path / "a", b"x" * 10)
    assert safe_copy(src, tmp_path / "b") is MoveResult.COPIED
    assert safe_copy(src, tmp_path / "b") is MoveResult.ALREADY_PRESENT
    assert src.exists()


def test_safe_copy_unreadable_source_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safe_copy(tmp_path / "missing", tmp_path / "out" / "b")
    assert not (tmp_path / "out" / "b").exists()
    assert not list((tmp_path / "out").glob("*"))


def test_atomic_write_replaces(tmp_path: Path) -> None:
    p = tmp_path / "r" / "summary.json"
    atomic_write_text(p, "1")
    atomic_write_text(p, "2")
    assert p.read_text() == "2" and len(list(p.parent.iterdir())) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("photo 1.JPG", "photo_1.JPG"),
        ("..", "file"),
        ("", "file"),
        ("a/b\\c.png", "a_b_c.png"),
        ("Ünïcödé.png", "Unicode.png"),
        ("x\x00y.png", "x_y.png"),
    ],
)
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


def test_safe_name_bounded_length_keeps_extension() -> None:
    name = safe_name("a" * 500 + ".jpeg", max_len=50)
    assert len(name) == 50 and name.endswith(".jpeg")


def test_is_within(tmp_path: Path) -> None:
    assert is_within(tmp_path / "a" / "b", tmp_path)
    assert not is_within(tmp_path / ".." / "x", tmp_path)
    link = tmp_path / "link"
    link.symlink_to("/")
    assert not is_within(link / "etc", tmp_path)


def test_remove_empty_dirs(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    _write(tmp_path / "c" / "keep.txt", b"1")
    removed = remove_empty_dirs(tmp_path)
    assert not (tmp_path / "a").exists() and (tmp_path / "c" / "keep.txt").exists()
    assert tmp_path.exists() and len(removed) == 2
