"""Which timelapse folders a run processes.

A timelapse folder is ``<experiment_id>_YYYY-MM-DD_HH-MM-SS.ffffff`` directly under ``base_dir``
(the microscope sometimes writes unpadded fields such as ``17-53-2.861421``; those parse too).
Folders are ordered by the date-time in their name, never by listing order.

Default range: the first unprocessed folder to the newest one. A folder modified less than
``settle_seconds`` before the reference time (the run's time, passed in by the caller) is held back
because the microscope may still be writing it; once settled, the newest folder (an experiment's
last timepoint, or the only folder of a one-folder experiment) is processed like any other.
``redo`` processes the range's folders again even when they are recorded as processed.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(
    r"^_(?P<date>\d{4}-\d{1,2}-\d{1,2})_(?P<h>\d{1,2})-(?P<m>\d{1,2})-(?P<s>\d{1,2})(?:\.(?P<f>\d{1,6}))?$"
)

DEFAULT_SETTLE_SECONDS = 300.0


class FolderSelectionError(ValueError):
    """The requested range cannot be resolved (unknown start/end folder)."""


@dataclass(frozen=True, order=True)
class TimelapseFolder:
    taken_at: datetime
    name: str
    path: str = field(compare=False)

    def as_dict(self) -> dict[str, str]:
        d = asdict(self)
        d["taken_at"] = self.taken_at.isoformat()
        return d


def parse_folder_time(name: str, experiment_id: str) -> datetime | None:
    """The acquisition time in ``name`` or None when it is not ``<experiment_id>_<date>_<time>``."""
    if not experiment_id or not name.startswith(experiment_id):
        return None
    m = _STAMP.match(name[len(experiment_id) :])
    if not m:
        return None
    try:
        y, mo, d = (int(p) for p in m["date"].split("-"))
        frac = (m["f"] or "0").ljust(6, "0")
        return datetime(y, mo, d, int(m["h"]), int(m["m"]), int(m["s"]), int(frac))
    except ValueError:
        return None


@dataclass
class FolderListing:
    folders: list[TimelapseFolder]
    rejected: dict[
        str, str
    ]  # name -> reason (starts with the experiment id but is not a timelapse)


def list_timelapse_folders(base_dir: str | os.PathLike[str], experiment_id: str) -> FolderListing:
    """Timelapse folders of ``experiment_id`` under ``base_dir``, oldest first."""
    base = Path(base_dir)
    if not base.is_dir():
        raise FileNotFoundError(f"base_dir {base} does not exist or is not a directory")
    folders: list[TimelapseFolder] = []
    rejected: dict[str, str] = {}
    with os.scandir(base) as it:
        for entry in it:
            if not entry.name.startswith(experiment_id):
                continue
            if not entry.is_dir(follow_symlinks=False):
                rejected[entry.name] = "not a directory"
                continue
            taken = parse_folder_time(entry.name, experiment_id)
            if taken is None:
                rejected[entry.name] = (
                    f"name does not match {experiment_id}_YYYY-MM-DD_HH-MM-SS.ffffff"
                )
                continue
            folders.append(TimelapseFolder(taken, entry.name, str(base / entry.name)))
    folders.sort()
    return FolderListing(folders, rejected)


def latest_mtime(path: str | os.PathLike[str], max_depth: int = 2) -> float:
    """Newest modification time of ``path`` and the entries up to ``max_depth`` levels below it."""
    newest = os.stat(path).st_mtime
    stack = [(str(path), 0)]
    while stack:
        d, depth = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    newest = max(newest, st.st_mtime)
                    if depth + 1 < max_depth and e.is_dir(follow_symlinks=False):
                        stack.append((e.path, depth + 1))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return newest


@dataclass
class Selection:
    selected: list[TimelapseFolder]
    skipped: dict[str, str]  # name -> why it is not processed in this run
    start: str | None
    end: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "selected": [f.as_dict() for f in self.selected],
            "skipped": dict(self.skipped),
            "start": self.start,
            "end": self.end,
        }


def _index_of(folders: list[TimelapseFolder], name: str, what: str) -> int:
    for i, f in enumerate(folders):
        if f.name == name:
            return i
    raise FolderSelectionError(
        f"{what} folder {name!r} is not a timelapse folder of this experiment"
    )


def select_folders(
    folders: list[TimelapseFolder],
    processed: set[str],
    *,
    start_folder: str | None = None,
    end_folder: str | None = None,
    reference_time: float | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    redo: bool = False,
    mtime=latest_mtime,  # noqa: ANN001 - injectable for tests of the settle rule
) -> Selection:
    """Apply the range and skip rules to ``folders`` (oldest first, as listed).

    ``reference_time`` (epoch seconds) is the run's time; folders modified within
    ``settle_seconds`` before it are held back. None disables the check.
    """
    skipped: dict[str, str] = {}
    if not folders:
        return Selection([], skipped, None, None)
    newest = len(folders) - 1
    if start_folder:
        start = _index_of(folders, start_folder, "start")
    elif redo:
        start = 0
    else:
        unprocessed = [i for i, f in enumerate(folders) if f.name not in processed]
        start = unprocessed[0] if unprocessed else newest
    end = _index_of(folders, end_folder, "end") if end_folder else newest
    if start > end:
        start, end = end, start
    selected: list[TimelapseFolder] = []
    for i in range(start, end + 1):
        f = folders[i]
        if f.name in processed and not redo:
            skipped[f.name] = "already processed"
        elif reference_time is not None and reference_time - mtime(f.path) < settle_seconds:
            skipped[f.name] = f"modified less than {settle_seconds:g} s ago: may still be written"
        else:
            selected.append(f)
    return Selection(selected, skipped, folders[start].name, folders[end].name)
