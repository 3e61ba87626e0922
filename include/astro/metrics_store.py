"""Per-frame pixel metrics kept next to the library (``<library>/_Metrics/<rig>.json``), keyed by
the frame's file name (unique per rig: it starts with the capture time; it stays the same from
``10_Blink`` to ``20_Data``) plus its size and mtime: a frame is measured once, a changed file is
measured again, and so is every frame measured by another version of the measurement
(:data:`include.astro.metrics.METRICS_VERSION`; entries without one are version 1), so frames
measured before and after a change are never compared in one set. Used by the cull (frames whose NINA name has no HFR), the blink
page and the run summary."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from include.astro.metrics import METRICS_VERSION, FrameMetrics, frame_metrics
from include.common.files import atomic_write_text, safe_name

METRICS_DIR = "_Metrics"


class MetricsStore:
    def __init__(self, library_dir: str | os.PathLike[str], rig: str) -> None:
        self.lib = Path(library_dir)
        self.path = self.lib / METRICS_DIR / f"{safe_name(rig)}.json"
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.dirty = False

    def get(self, frame: str | os.PathLike[str], measure: bool = True) -> FrameMetrics | None:
        """Cached (or, with ``measure``, measured) metrics; ``None`` for an unreadable frame."""
        p = Path(frame)
        try:
            st = p.stat()
        except OSError:
            return None
        rel = p.name
        hit = self.data.get(rel)
        if (
            hit
            and hit.get("size") == st.st_size
            and hit.get("mtime_ns") == st.st_mtime_ns
            and hit.get("version", 1) == METRICS_VERSION
        ):
            return FrameMetrics(**hit["metrics"])
        if not measure:
            return None
        try:
            m = frame_metrics(p)
        except (OSError, ValueError):
            return None
        self.data[rel] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "version": METRICS_VERSION,
            "metrics": m.to_dict(),
        }
        self.dirty = True
        return m

    def hfr(self, frame: str | os.PathLike[str]) -> float | None:
        m = self.get(frame)
        return None if m is None else m.hfr

    def save(self) -> None:
        if self.dirty:
            atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")
            self.dirty = False
