"""Helpers for benchmarks: timing and the one-line JSON result."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls and the last result."""
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(name: str, baseline_s: float, ours_s: float, **extra: Any) -> dict[str, Any]:
    record = {
        "name": name,
        "baseline_s": round(baseline_s, 4),
        "ours_s": round(ours_s, 4),
        "ratio": round(baseline_s / ours_s, 2) if ours_s > 0 else None,
        **extra,
    }
    print(json.dumps(record), flush=True)
    return record
