from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from include.reef.upload import (
    MIN_PART,
    artifact_alias,
    diff_listing,
    part_ranges,
    plan_directory,
    remote_path,
    timeout_for,
)
from include.reef.zipstream import UnsafeEntryError, safe_arcname, zip_folder


def _tree(root: Path) -> None:
    (root / "0" / "sub").mkdir(parents=True)
    (root / "acquisition parameters.json").write_text("{}")
    (root / "0" / "b.bmp").write_bytes(os.urandom(3000))
    (root / "0" / "a.bmp").write_bytes(os.urandom(2000))
    (root / "0" / "sub" / "c.txt").write_text("c")


def test_zip_is_deterministic_sorted_zip64_and_round_trips(tmp_path: Path):
    src = tmp_path / "exp_2025-01-01_00-00-00.0"
    _tree(src)
    a = zip_folder(src, tmp_path / "a.zip")
    os.utime(src / "0" / "a.bmp", (1, 1))  # file times do not change the archive
    b = zip_folder(src, tmp_path / "b.zip")
    assert (a.sha256, a.size) == (b.sha256, b.size)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert names[0] == f"{src.name}/0/a.bmp"
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert zf.read(info) == (tmp_path / info.filename).read_bytes()
            # force_zip64: the local header carries the zip64 extra field
            assert info.extract_version >= 45
    assert not list(tmp_path.glob(".*.partial"))


def test_zip_skips_symlinks_that_could_escape(tmp_path: Path):
    src = tmp_path / "f"
    _tree(src)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (src / "0" / "link.txt").symlink_to(outside)
    (src / "0" / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    z = zip_folder(src, tmp_path / "z.zip")
    assert z.skipped == {"0/link.txt": "symlink not archived", "0/linkdir": "symlink not archived"}
    with zipfile.ZipFile(z.path) as zf:
        assert not any("link" in n for n in zf.namelist())


def test_zip_of_missing_folder_and_unsafe_names(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        zip_folder(tmp_path / "nope", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    for bad in ("/etc/passwd", "../up", "a/../../b", "a\\b"):
        with pytest.raises(UnsafeEntryError):
            safe_arcname("root", bad)
    assert safe_arcname("root", "0/a.bmp") == "root/0/a.bmp"


def test_plan_directory_maps_and_skips_temp_files(tmp_path: Path):
    root = tmp_path / "a.zarr" / "ch"
    (root / "0" / "c" / "0").mkdir(parents=True)
    (root / "zarr.json").write_text("{}")
    (root / "0" / "c" / "0" / "0").write_bytes(b"x" * 10)
    (root / "0" / "c" / "0" / ".1.partial").write_bytes(b"tmp")
    (root / ".done").write_text("ok")
    plan = plan_directory(root, "ch")
    assert [(f.remote, f.size) for f in plan] == [("ch/0/c/0/0", 10), ("ch/zarr.json", 2)]


def test_remote_paths_are_safe():
    assert remote_path("ch", "/0/c/1") == "ch/0/c/1"
    for bad in (("..", "x"), ("a", "../b"), ("",)):
        with pytest.raises(ValueError):
            remote_path(*bad)


def test_timeouts_scale_with_size_and_parts_respect_s3_limits():
    assert timeout_for(0) == 60
    assert timeout_for(10_000_000, base_s=60, min_rate_bps=1_000_000) == 70
    parts = part_ranges(20 * 1024 * 1024, 8 * 1024 * 1024)
    assert [n for _, n in parts] == [8 << 20, 8 << 20, 4 << 20]
    assert sum(n for _, n in parts) == 20 << 20
    assert part_ranges(100, 1)[0] == (0, 100)  # never below the 5 MiB minimum but one part
    huge = part_ranges(200 * 1024**3, MIN_PART)  # 200 GiB: part size grows to stay <= 10,000 parts
    assert len(huge) <= 10_000 and sum(n for _, n in huge) == 200 * 1024**3


def test_listing_diff_and_aliases():
    d = diff_listing({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "x": 9})
    assert d.missing == ["c"] and d.wrong_size == {"b": (2, 5)} and not d.ok
    assert "1 missing" in d.describe()
    assert diff_listing({"a": 1}, {"a": 1, "extra": 2}).ok
    assert artifact_alias("20250429-Scan_Time lapse", "2025-04-29_15-38-36") == (
        "20250429-scan-time-lapse-2025-04-29-15-38-36"
    )
    with pytest.raises(ValueError):
        artifact_alias("__")


def test_channel_files_zip_each_chunk_row(tmp_path: Path):
    from include.reef.pipeline import channel_files, metadata_files, row_zip_dir

    z = tmp_path / "a.zarr"
    for lvl, rows in (("0", 2), ("1", 1)):
        d = z / lvl
        d.mkdir(parents=True)
        (d / "zarr.json").write_text("{}")
        for ch in range(2):
            for r in range(rows):
                for c in range(3):
                    (d / f"c.{ch}.{r}.{c}").write_bytes(os.urandom(100 + c))
    (z / "zarr.json").write_text("{}")
    (z / "stitch_result.json").write_text("{}")
    plain = channel_files(z, 1)
    assert len(plain) == 9 and all(f.remote.split("/")[1].startswith("c.1.") for f in plain)
    zipped = channel_files(z, 1, zip_rows=True)
    assert [f.remote for f in zipped] == ["0/c.1.0.zip", "0/c.1.1.zip", "1/c.1.0.zip"]
    with zipfile.ZipFile(row_zip_dir(z) / "0" / "c.1.1.zip") as zf:
        assert zf.namelist() == ["c.1.1.0", "c.1.1.1", "c.1.1.2"]
        assert zf.read("c.1.1.2") == (z / "0" / "c.1.1.2").read_bytes()
    again = channel_files(z, 1, zip_rows=True)  # deterministic: same sizes, same bytes
    assert [(f.remote, f.size) for f in again] == [(f.remote, f.size) for f in zipped]
    assert [f.remote for f in metadata_files(z)] == [
        "zarr.json",
        "stitch_result.json",
        "0/zarr.json",
        "1/zarr.json",
    ]
