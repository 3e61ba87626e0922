"""Deterministic timelapse folders in the microscope's layout, cut from a known mosaic.

The mosaic is a pure function of (channel, time point, y, x) so tests can compare a stitched
result with the truth for any region without the whole canvas existing anywhere. Tiles overlap
by ``overlap`` and are written as 8-bit BMP (or 16-bit TIFF), with ``acquisition parameters.json``
and ``0/coordinates.csv`` as the microscope writes them. File times are set to the acquisition
time in the folder name, so finished folders look settled.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from include.reef.acquisition import COORDINATES_FILE, IMAGE_DIR, PARAMETERS_FILE

DEFAULT_CHANNELS = ("BF_LED_matrix_full", "Fluorescence_488_nm_Ex", "Fluorescence_561_nm_Ex")
DEFAULT_EXPERIMENT = "20250429-scan-time-lapse"
PARAMETERS = {
    "sensor_pixel_size_um": 1.85,
    "tube_lens_mm": 50.0,
    "objective": {"name": "20x", "magnification": 20.0, "tube_lens_f_mm": 180.0, "NA": 0.4},
    "exposure_ms": 20,
    "gain": 1,
}


def pixel_size_um(params: dict[str, Any] = PARAMETERS) -> float:
    o = params["objective"]
    return params["sensor_pixel_size_um"] / (
        o["magnification"] / (o["tube_lens_f_mm"] / params["tube_lens_mm"])
    )


def mosaic_region(
    channel_index: int, t: int, y0: int, y1: int, x0: int, x1: int, bits: int = 8
) -> np.ndarray:
    """The known mosaic's pixels in rows y0:y1, columns x0:x1 (uint8 or uint16)."""
    y = np.arange(y0, y1, dtype=np.int64)[:, None]
    x = np.arange(x0, x1, dtype=np.int64)[None, :]
    c = channel_index + 1
    base = (
        96.0
        + 60.0 * np.sin((y + 7 * t) / (23.0 + 9 * c))
        + 50.0 * np.cos((x - 5 * t) / (31.0 + 7 * c))
    )
    # a hash of (y, x, channel, time): texture without any period (registration test data)
    h = ((y * 73856093) ^ (x * 19349663) ^ (c * 83492791 + t * 2654435761)).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = (h * np.uint64(0x9E3779B97F4A7C15)) ^ (h >> np.uint64(29))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
    noise = (h >> np.uint64(59)).astype(np.int64)  # 0..31
    v = base + noise  # 6..233
    if bits == 16:
        return (v * 256).astype(np.uint16)
    return v.astype(np.uint8)


@dataclass(frozen=True)
class GridSpec:
    rows: int = 3
    cols: int = 3
    tile: int = 256
    overlap: float = 0.1
    region: str = "A1"
    origin_mm: tuple[float, float] = (10.0, 20.0)  # stage x, y of the first tile
    jitter_px: int = 0  # written stage positions are off by up to this many pixels (seeded)
    seed: int = 0
    serpentine: bool = False  # scan order: rows alternate direction (FOV numbering)

    @property
    def step(self) -> int:
        return int(round(self.tile * (1 - self.overlap)))

    @property
    def shape(self) -> tuple[int, int]:
        return ((self.rows - 1) * self.step + self.tile, (self.cols - 1) * self.step + self.tile)


def folder_name(experiment_id: str, taken_at: datetime) -> str:
    return f"{experiment_id}_{taken_at:%Y-%m-%d_%H-%M-%S.%f}"


def write_timelapse_folder(
    base_dir: str | os.PathLike[str],
    experiment_id: str,
    taken_at: datetime,
    t: int,
    *,
    grid: GridSpec = GridSpec(),
    channels: tuple[str, ...] = DEFAULT_CHANNELS,
    bits: int = 8,
) -> Path:
    """One timelapse folder (time point ``t``); returns its path. Rewrites deterministically."""
    from PIL import Image

    folder = Path(base_dir) / folder_name(experiment_id, taken_at)
    img_dir = folder / IMAGE_DIR
    img_dir.mkdir(parents=True, exist_ok=True)
    (folder / PARAMETERS_FILE).write_text(json.dumps(PARAMETERS, indent=2))
    ps = pixel_size_um()
    rows = []
    fov = 0
    rng = np.random.default_rng(grid.seed + 7919 * t)
    for r in range(grid.rows):
        cols = range(grid.cols)
        for c in reversed(cols) if grid.serpentine and r % 2 else cols:
            y, x = r * grid.step, c * grid.step
            jy, jx = (
                rng.integers(-grid.jitter_px, grid.jitter_px + 1, 2) if grid.jitter_px else (0, 0)
            )
            rows.append(
                {
                    "region": grid.region,
                    "fov": fov,
                    "z_level": 0,
                    "x (mm)": repr(grid.origin_mm[0] + (x + int(jx)) * ps / 1000.0),
                    "y (mm)": repr(grid.origin_mm[1] + (y + int(jy)) * ps / 1000.0),
                    "z (um)": "3000.0",
                    "time": f"{taken_at.timestamp() + fov:.3f}",
                }
            )
            for ci, ch in enumerate(channels):
                tile = mosaic_region(ci, t, y, y + grid.tile, x, x + grid.tile, bits)
                ext = "bmp" if bits == 8 else "tiff"
                Image.fromarray(tile).save(img_dir / f"{grid.region}_{fov}_0_{ch}.{ext}")
            fov += 1
    with open(img_dir / COORDINATES_FILE, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    stamp = taken_at.timestamp()
    for p in [*img_dir.iterdir(), img_dir, folder / PARAMETERS_FILE, folder]:
        os.utime(p, (stamp, stamp))
    return folder


def generate_timelapse(
    base_dir: str | os.PathLike[str],
    experiment_id: str = DEFAULT_EXPERIMENT,
    *,
    n_folders: int = 3,
    start: datetime = datetime(2025, 4, 29, 15, 38, 36, 107800),
    interval: timedelta = timedelta(hours=1),
    grid: GridSpec = GridSpec(),
    channels: tuple[str, ...] = DEFAULT_CHANNELS,
    bits: int = 8,
) -> list[Path]:
    return [
        write_timelapse_folder(
            base_dir,
            experiment_id,
            start + i * interval,
            i,
            grid=grid,
            channels=channels,
            bits=bits,
        )
        for i in range(n_folders)
    ]


def generate_demo(dest: str | os.PathLike[str]) -> dict[str, Any]:
    """Sample input for both reef DAGs under ``dest``; returns ``{dag_id: conf}``."""
    dest = Path(dest)
    base = dest / "reef" / "microscope"
    folders = generate_timelapse(base, DEFAULT_EXPERIMENT, n_folders=3)
    common = {"base_dir": str(base), "experiment_id": DEFAULT_EXPERIMENT}
    return {
        "reef_treatment_upload": dict(common),
        "reef_stitch_upload": {
            **common,
            "stitched_dir": str(dest / "reef" / "stitched"),
            "channels": [],
        },
        "_folders": [str(f) for f in folders],
    }
