from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from include.reef.folders import (
    FolderSelectionError,
    TimelapseFolder,
    latest_mtime,
    list_timelapse_folders,
    parse_folder_time,
    select_folders,
)

EXP = "20250429-scan-time-lapse"


def test_parse_folder_time_padded_unpadded_and_bad():
    assert parse_folder_time(f"{EXP}_2025-04-29_15-38-36.107800", EXP) == datetime(
        2025, 4, 29, 15, 38, 36, 107800
    )
    # the microscope writes unpadded seconds sometimes
    assert parse_folder_time(f"{EXP}_2025-04-29_17-53-2.861421", EXP) == datetime(
        2025, 4, 29, 17, 53, 2, 861421
    )
    assert parse_folder_time(f"{EXP}_2025-04-29_17-53-02", EXP) == datetime(2025, 4, 29, 17, 53, 2)
    assert parse_folder_time(f"{EXP}_2025-13-29_17-53-02", EXP) is None
    assert parse_folder_time(f"{EXP}-old_2025-04-29_17-53-02", EXP) is None
    assert parse_folder_time("other_2025-04-29_17-53-02", EXP) is None


def _mk(base: Path, name: str) -> Path:
    p = base / name
    p.mkdir()
    return p


def test_list_orders_by_time_not_name_and_rejects_bad(tmp_path: Path):
    _mk(tmp_path, f"{EXP}_2025-04-29_10-00-00.000000")
    _mk(tmp_path, f"{EXP}_2025-04-29_9-00-00.000000")  # sorts after 10-.. by name
    _mk(tmp_path, f"{EXP}_garbage")
    _mk(tmp_path, "unrelated_2025-04-29_09-00-00.0")
    (tmp_path / f"{EXP}_2025-04-29_11-00-00.0").write_text("a file")
    listing = list_timelapse_folders(tmp_path, EXP)
    assert [f.name for f in listing.folders] == [
        f"{EXP}_2025-04-29_9-00-00.000000",
        f"{EXP}_2025-04-29_10-00-00.000000",
    ]
    assert set(listing.rejected) == {f"{EXP}_garbage", f"{EXP}_2025-04-29_11-00-00.0"}
    assert "does not match" in listing.rejected[f"{EXP}_garbage"]


def test_list_missing_base_dir(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="base_dir"):
        list_timelapse_folders(tmp_path / "nope", EXP)


def _folders(n: int) -> list[TimelapseFolder]:
    return [
        TimelapseFolder(datetime(2025, 1, 1, h), f"{EXP}_2025-01-01_{h:02d}-00-00.0", f"/x/{h}")
        for h in range(n)
    ]


def test_default_range_first_unprocessed_to_newest():
    fs = _folders(5)
    sel = select_folders(fs, processed={fs[0].name})
    assert [f.name for f in sel.selected] == [f.name for f in fs[1:]]
    assert sel.start == fs[1].name and sel.end == fs[4].name


def test_settled_newest_folder_named_as_end_is_processed():
    """Issue 16.1: the experiment's last timepoint uploads once it has settled."""
    fs = _folders(5)
    sel = select_folders(
        fs,
        processed={f.name for f in fs[:3]},
        end_folder=fs[4].name,
        reference_time=10_000.0,
        settle_seconds=300,
        mtime=lambda p: 1000.0,
    )
    assert [f.name for f in sel.selected] == [fs[3].name, fs[4].name]


def test_one_folder_experiment_processes_its_settled_folder():
    """Issue 16.1: a one-folder experiment is processed (once settled)."""
    fs = _folders(1)
    sel = select_folders(fs, set(), reference_time=10_000.0, mtime=lambda p: 1000.0)
    assert [f.name for f in sel.selected] == [fs[0].name]


def test_newest_folder_still_being_written_is_held_back():
    fs = _folders(3)
    mtimes = {fs[0].path: 1000.0, fs[1].path: 1000.0, fs[2].path: 1990.0}
    sel = select_folders(
        fs, set(), reference_time=2000.0, settle_seconds=300, mtime=lambda p: mtimes[p]
    )
    assert [f.name for f in sel.selected] == [fs[0].name, fs[1].name]
    assert "modified less than" in sel.skipped[fs[2].name]


def test_processed_inside_range_are_skipped():
    fs = _folders(5)
    sel = select_folders(fs, processed={fs[2].name}, start_folder=fs[0].name, end_folder=fs[4].name)
    assert [f.name for f in sel.selected] == [fs[0].name, fs[1].name, fs[3].name, fs[4].name]
    assert sel.skipped[fs[2].name] == "already processed"


def test_redo_processes_done_folders_again():
    """Issue 16.7: a folder marked done can be redone."""
    fs = _folders(3)
    done = {f.name for f in fs}
    assert select_folders(fs, processed=done).selected == []
    sel = select_folders(
        fs, processed=done, start_folder=fs[1].name, end_folder=fs[1].name, redo=True
    )
    assert [f.name for f in sel.selected] == [fs[1].name]
    assert len(select_folders(fs, processed=done, redo=True).selected) == 3


def test_all_processed_selects_nothing():
    fs = _folders(3)
    sel = select_folders(fs, processed={f.name for f in fs})
    assert sel.selected == []


def test_reversed_range_is_swapped():
    fs = _folders(5)
    sel = select_folders(fs, set(), start_folder=fs[3].name, end_folder=fs[1].name)
    assert [f.name for f in sel.selected] == [fs[1].name, fs[2].name, fs[3].name]


def test_unknown_start_folder_is_an_error():
    with pytest.raises(FolderSelectionError, match="start folder"):
        select_folders(_folders(3), set(), start_folder="nope")


def test_no_folders_selects_nothing():
    sel = select_folders([], set())
    assert sel.selected == [] and sel.skipped == {}


def test_recently_modified_folder_is_held_back():
    fs = _folders(4)
    mtimes = {fs[0].path: 1000.0, fs[1].path: 1900.0, fs[2].path: 1000.0, fs[3].path: 1000.0}
    sel = select_folders(
        fs, set(), reference_time=2000.0, settle_seconds=300, mtime=lambda p: mtimes[p]
    )
    assert [f.name for f in sel.selected] == [fs[0].name, fs[2].name, fs[3].name]
    assert "modified less than" in sel.skipped[fs[1].name]


def test_latest_mtime_sees_files_two_levels_down(tmp_path: Path):
    d = tmp_path / "f"
    (d / "0").mkdir(parents=True)
    f = d / "0" / "tile.bmp"
    f.write_bytes(b"x")
    for p in (d, d / "0"):
        os.utime(p, (100, 100))
    os.utime(f, (500, 500))
    assert latest_mtime(d) == 500
