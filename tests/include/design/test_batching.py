from __future__ import annotations

from pathlib import Path

import pytest

from include.design import batching
from include.design.batching import SourceFile


def _f(key: str, size: int) -> SourceFile:
    return SourceFile(key, size, f"/x/{key}")


def test_greedy_batches_in_key_order_big_file_alone() -> None:
    files = [_f("c", 40), _f("a", 60), _f("b", 50), _f("big", 150), _f("d", 100), _f("e", 1)]
    batches = batching.plan_batches(files, target_bytes=100)
    keys = [[f.key for f in b] for b in batches]
    assert keys == [["a"], ["b"], ["big"], ["c"], ["d"], ["e"]]
    assert all(sum(f.size for f in b) <= 100 or len(b) == 1 for b in batches)
    assert batching.plan_batches(list(reversed(files)), 100) == batches  # deterministic


def test_small_files_share_a_batch() -> None:
    files = [_f(f"{i:03d}", 10) for i in range(25)]
    batches = batching.plan_batches(files, target_bytes=100)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert batching.plan_batches([], 100) == []
    with pytest.raises(ValueError):
        batching.plan_batches(files, 0)


def test_list_local_gives_hidden_partial_and_symlinks_an_outcome(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes(b"bb")
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / ".hidden.png").write_bytes(b"h")
    (tmp_path / "c.png.partial").write_bytes(b"p")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.png").write_bytes(b"x")
    (tmp_path / "link.png").symlink_to(tmp_path / "a.jpg")
    files = batching.list_local(tmp_path)
    processed = [(f.key, f.size) for f in files if not f.skip]
    assert processed == [("a.jpg", 1), ("sub/b.png", 2)]
    skipped = {f.key: f.skip for f in files if f.skip}
    assert set(skipped) == {".hidden.png", "c.png.partial", ".git/", "link.png"}
    assert "hidden" in skipped[".hidden.png"] and "symbolic link" in skipped["link.png"]
    assert files[[f.key for f in files].index("sub/b.png")].location == str(
        tmp_path / "sub" / "b.png"
    )
    with pytest.raises(FileNotFoundError):
        batching.list_local(tmp_path / "missing")


def test_s3_listing() -> None:
    assert batching.parse_s3_url("s3://bucket/up/loads/") == ("bucket", "up/loads/")
    with pytest.raises(ValueError):
        batching.parse_s3_url("/local")
    files = batching.from_s3_listing(
        "bucket",
        "up/",
        [("up/z.png", 5), ("up/dir/", 0), ("up/a/.x.partial", 3), ("up/a/b.jpg", 7)],
    )
    assert [(f.key, f.size, f.location, bool(f.skip)) for f in files] == [
        ("a/.x.partial", 3, "s3://bucket/up/a/.x.partial", True),
        ("a/b.jpg", 7, "s3://bucket/up/a/b.jpg", False),
        ("z.png", 5, "s3://bucket/up/z.png", False),
    ]
