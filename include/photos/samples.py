"""Deterministic sample photos of plant trays with known plant counts (demo and tests).

A generated photo shows a concrete floor, one seedling tray (a dark plastic grid of soil cells; a
cell holds one plant or is empty) and optionally a few loose pots. Plants are green rosettes (a
disc plus leaves); big plants touch their neighbours, so counting needs watershed separation.
Everything is drawn from a seeded RNG, so the same arguments always give the same pixels.

:func:`generate_demo` writes a folder for ``photo_ingest`` (``source_dir``) with photos inside a
configured+calibrated location, an unconfigured one, an uncalibrated one, without GPS, outside
every location, and bad files (not an image, truncated JPEG, decompression bomb, CMYK JPEG,
16-bit PNG), and returns the expected outcome of every file plus the warehouse/location rows.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Demo site (the seed's example coordinates, Buenos Aires): three storage locations side by side.
SITE_LAT = -34.603722
SITE_LON = -58.381592
CELL_DEG = 0.0004  # ~44 m squares


def square(lat: float, lon: float, half: float = CELL_DEG / 2) -> list[list[float]]:
    """A closed square ring ``[[lon, lat], ...]`` around (lat, lon)."""
    return [
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat + half],
        [lon - half, lat - half],
    ]


@dataclass
class TrayTruth:
    """What a generated photo contains (the ground truth of the tests)."""

    width: int
    height: int
    plants: int  # plants in the tray cells and the pots
    empty_containers: int  # empty tray cells + empty pots
    cells: tuple[int, int]
    pots: int
    mean_plant_area_px: float  # in full-resolution pixels
    tray_box: tuple[int, int, int, int]  # x0, y0, x1, y1
    plant_centers: list[tuple[int, int]] = field(default_factory=list)


def _disc(mask: np.ndarray, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> None:
    """Set an (optionally rotated) ellipse in ``mask`` (in place, bounded window)."""
    h, w = mask.shape
    r = max(rx, ry)
    x0, x1 = max(0, int(cx - r - 1)), min(w, int(cx + r + 2))
    y0, y1 = max(0, int(cy - r - 1)), min(h, int(cy + r + 2))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = xx - cx, yy - cy
    ca, sa = math.cos(angle), math.sin(angle)
    u = (dx * ca + dy * sa) / rx
    v = (-dx * sa + dy * ca) / ry
    mask[y0:y1, x0:x1] |= (u * u + v * v) <= 1.0


def _plant(mask: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float) -> None:
    """A rosette: a central disc of radius ``0.6 r`` and 5-7 leaves reaching ``r``."""
    _disc(mask, cx, cy, 0.6 * r, 0.6 * r)
    n = int(rng.integers(5, 8))
    start = float(rng.uniform(0, 2 * math.pi))
    for i in range(n):
        a = start + 2 * math.pi * i / n + float(rng.uniform(-0.2, 0.2))
        lx, ly = cx + 0.55 * r * math.cos(a), cy + 0.55 * r * math.sin(a)
        _disc(mask, lx, ly, 0.45 * r, 0.22 * r, a)


def tray_image(
    seed: int,
    width: int = 1600,
    height: int = 1200,
    cells: tuple[int, int] = (6, 8),
    fill: float = 0.85,
    pots: int = 2,
    plant_scale: float = 0.42,
) -> tuple[Image.Image, TrayTruth]:
    """Draw one tray photo. ``plant_scale`` is the plant radius in cell sizes (> 0.5 touches)."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    img = np.empty((h, w, 3), np.float32)
    img[:] = (128, 124, 118)  # concrete floor
    img += rng.normal(0, 6, (h, w, 1)).astype(np.float32)

    rows, cols = cells
    pot_band = int(0.16 * h) if pots else 0
    mx, my = int(0.05 * w), int(0.05 * h)
    x0, y0, x1, y1 = mx, my, w - mx, h - my - pot_band
    img[y0:y1, x0:x1] = (34, 35, 38)  # tray plastic
    cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
    wall = max(2, int(0.08 * min(cw, ch)))
    soil = np.zeros((h, w), bool)
    centers: list[tuple[float, float, float]] = []  # cx, cy, r of every plant
    empty = 0
    for r_ in range(rows):
        for c_ in range(cols):
            cx0, cy0 = x0 + c_ * cw, y0 + r_ * ch
            soil[int(cy0 + wall) : int(cy0 + ch - wall), int(cx0 + wall) : int(cx0 + cw - wall)] = (
                True
            )
            if rng.random() < fill:
                rad = plant_scale * min(cw, ch) * float(rng.uniform(0.8, 1.15))
                jx, jy = rng.uniform(-0.06, 0.06, 2) * (cw, ch)
                centers.append((cx0 + cw / 2 + jx, cy0 + ch / 2 + jy, rad))
            else:
                empty += 1
    # loose pots below the tray: small separate containers
    pot_r = 0.42 * min(cw, ch) * 1.1
    for i in range(pots):
        px = w * (i + 1) / (pots + 1)
        py = h - my - pot_band / 2
        pot = np.zeros((h, w), bool)
        _disc(pot, px, py, pot_r, pot_r)
        img[pot] = (30, 30, 32)
        inner = np.zeros((h, w), bool)
        _disc(inner, px, py, pot_r * 0.85, pot_r * 0.85)
        soil |= inner
        if i % 3 != 2:  # every third pot is empty
            centers.append((px, py, pot_r * 0.8))
        else:
            empty += 1
    img[soil] = (92, 64, 44)
    img[soil] += rng.normal(0, 8, (int(soil.sum()), 1)).astype(np.float32)

    areas: list[int] = []
    veg = np.zeros((h, w), bool)
    for cx, cy, rad in centers:
        one = np.zeros((h, w), bool)
        _plant(one, rng, cx, cy, rad)
        areas.append(int(one.sum()))
        veg |= one
    n = int(veg.sum())
    shade = rng.uniform(0.8, 1.15, (n, 1)).astype(np.float32)
    img[veg] = np.array([58, 150, 50], np.float32) * shade

    arr = np.clip(img, 0, 255).astype(np.uint8)
    truth = TrayTruth(
        width=w,
        height=h,
        plants=len(centers),
        empty_containers=empty,
        cells=cells,
        pots=pots,
        mean_plant_area_px=float(np.mean(areas)) if areas else 0.0,
        tray_box=(x0, y0, x1, y1),
        plant_centers=[(int(cx), int(cy)) for cx, cy, _ in centers],
    )
    return Image.fromarray(arr, "RGB"), truth


def _dms(value: float) -> tuple[float, float, float]:
    v = abs(value)
    d = int(v)
    m = int((v - d) * 60)
    s = round((v - d - m / 60) * 3600, 4)
    return (float(d), float(m), s)


def make_exif(
    gps: tuple[float, float] | None,
    when: str = "2026:11:20 10:30:15",
    make: str = "Demeter",
    model: str = "TrayCam 1",
    altitude: float = 25.0,
) -> Image.Exif:
    """EXIF with camera, DateTimeOriginal and (optionally) GPS."""
    ex = Image.Exif()
    ex[0x010F] = make
    ex[0x0110] = model
    ex[0x0132] = when
    ex.get_ifd(0x8769)[0x9003] = when
    if gps is not None:
        lat, lon = gps
        g = ex.get_ifd(0x8825)
        g[1] = "N" if lat >= 0 else "S"
        g[2] = _dms(lat)
        g[3] = "E" if lon >= 0 else "W"
        g[4] = _dms(lon)
        g[5] = b"\x00"
        g[6] = altitude
    return ex


def jpeg_bytes(img: Image.Image, exif: Image.Exif | None, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif if exif is not None else b"")
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny PNG declaring a huge 1-bit image (decompression bomb), with a few real rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)


def bad_files() -> dict[str, tuple[bytes, str]]:
    """File name -> (content, the reason fragment the pipeline must report)."""
    good = jpeg_bytes(tray_image(99, 320, 240, (2, 3), pots=0)[0], make_exif(None))
    cmyk = io.BytesIO()
    Image.new("CMYK", (64, 48), (0, 0, 0, 0)).save(cmyk, "JPEG")
    g16 = io.BytesIO()
    Image.fromarray(np.full((48, 64), 40000, np.uint16)).save(g16, "PNG")
    return {
        "notes_not_an_image.jpg": (b"this is a text file, not a photo\n" * 4, "not an image"),
        "truncated.jpg": (good[: len(good) // 2], "truncated"),
        "bomb.png": (bomb_png(), "too large"),
        "cmyk.jpg": (cmyk.getvalue(), "CMYK"),
        "gray16.png": (g16.getvalue(), "16-bit"),
    }


def demo_locations() -> dict[str, list[dict[str, Any]]]:
    """Warehouse and storage-location rows of the demo site (codes are stable keys)."""
    return {
        "warehouses": [
            {
                "code": "WH-A",
                "name": "Warehouse A",
                "area_polygon": square(SITE_LAT, SITE_LON, 0.002),
            }
        ],
        "locations": [
            {
                "code": "WH-A-R1",
                "warehouse": "WH-A",
                "name": "Warehouse A - Rack 1",
                "area_polygon": square(SITE_LAT, SITE_LON),
                "config": {"container": "tray", "cells": [6, 8], "detector": "classical"},
                "calibration": None,  # filled by generate_demo from the generated plants
            },
            {
                "code": "WH-A-R2",
                "warehouse": "WH-A",
                "name": "Warehouse A - Rack 2",
                "area_polygon": square(SITE_LAT, SITE_LON + CELL_DEG),
                "config": None,
                "calibration": None,
            },
            {
                "code": "WH-A-R3",
                "warehouse": "WH-A",
                "name": "Warehouse A - Rack 3",
                "area_polygon": square(SITE_LAT, SITE_LON + 2 * CELL_DEG),
                "config": {"container": "tray", "cells": [6, 8], "detector": "classical"},
                "calibration": None,
            },
        ],
    }


def generate_demo(
    dest: str | Path,
    n_good: int = 4,
    width: int = 1600,
    height: int = 1200,
    with_bad: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the demo photo folder to ``dest`` and return the expected outcome.

    Returns ``{"dir", "photo_ingest": <DAG conf>, "photos": [{"filename", "path", "plants",
    "empty_containers", "gps", "location", "expect"}], "warehouses": [...], "locations": [...]}``
    (load the site into the app DB with :func:`seed_demo_site`) where ``expect`` is the
    job status the pipeline must reach (``completed``, a warning state or ``failed`` with
    ``reason``). Idempotent: same arguments, same files, same bytes; a different ``seed`` gives
    different photos (the pipeline identifies a folder photo by its content hash).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    site = demo_locations()
    photos: list[dict[str, Any]] = []
    areas: list[float] = []
    offset = seed * 10_000

    def add(name: str, seed: int, gps: tuple[float, float] | None, loc: str | None, expect: str):
        img, truth = tray_image(seed + offset, width, height)
        exif = make_exif(gps) if gps is not None or seed % 2 == 0 else None
        data = jpeg_bytes(img, exif)
        path = dest / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        areas.append(truth.mean_plant_area_px)
        photos.append(
            {
                "filename": name,
                "path": str(path),
                "plants": truth.plants,
                "empty_containers": truth.empty_containers,
                "gps": list(gps) if gps else None,
                "location": loc,
                "expect": expect,
            }
        )

    # jitter inside the location square so no two photos share coordinates
    for i in range(n_good):
        gps = (SITE_LAT + 0.00003 * (i - n_good / 2), SITE_LON + 0.00002 * i)
        add(f"tray_{i:03d}.jpg", 1000 + i, gps, "WH-A-R1", "completed")
    add("unconfigured_rack.jpg", 2001, (SITE_LAT, SITE_LON + CELL_DEG), "WH-A-R2", "needs_config")
    add(
        "uncalibrated_rack.jpg",
        2002,
        (SITE_LAT, SITE_LON + 2 * CELL_DEG),
        "WH-A-R3",
        "needs_calibration",
    )
    add("no_gps.jpg", 2003, None, None, "needs_location")
    add("outside_site.jpg", 2004, (SITE_LAT + 0.01, SITE_LON), None, "needs_location")
    if with_bad:
        for name, (data, reason) in bad_files().items():
            path = dest / name
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
            photos.append(
                {
                    "filename": name,
                    "path": str(path),
                    "plants": None,
                    "empty_containers": None,
                    "gps": None,
                    "location": None,
                    "expect": "failed",
                    "reason": reason,
                }
            )
    calib = {"avg_plant_area_px": round(float(np.mean(areas)), 1), "reference_width_px": width}
    for loc in site["locations"]:
        if loc["code"] == "WH-A-R1":
            loc["calibration"] = calib
    result = {
        "dir": str(dest),
        "photo_ingest": {"source_dir": str(dest), "uploaded_by": "demo"},  # the DAG's conf
        "photos": photos,
        **site,
    }
    (dest.parent / f"{dest.name}.expected.json").write_text(json.dumps(result, indent=2))
    return result


def seed_demo_site(engine: Any, demo: dict[str, Any]) -> dict[str, int]:
    """Create/update the demo's warehouse and storage locations in the app database (without
    them every demo photo would be ``needs_location``). Returns ``{location code: id}``."""
    from include.common.db import session_scope
    from include.photos.catalog import upsert_site

    with session_scope(engine) as s:
        return upsert_site(s, demo["warehouses"], demo["locations"])


__all__ = [
    "TrayTruth",
    "seed_demo_site",
    "bad_files",
    "demo_locations",
    "generate_demo",
    "tray_image",
]
