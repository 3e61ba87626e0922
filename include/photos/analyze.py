"""ML of one photo, without S3 or database: decode → segment → detect (tiled for large regions,
direct for small ones) → estimate → classify. :func:`analyze` returns a
:class:`PhotoAnalysis` in work pixels plus the scale to full resolution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from include.photos.detect import (
    Detection,
    auto_threshold,
    excess_green,
    make_detector,
)
from include.photos.estimate import Estimate, calibrated_plant_area, estimate_missed
from include.photos.exif import decode_rgb
from include.photos.segment import Region, empty_cells, segment_containers, segment_yolo

WORK_LONG_SIDE = 1000


@dataclass
class RegionResult:
    region: Region
    detections: list[Detection]  # absolute work coordinates
    estimate: Estimate
    containers: int
    empty: int
    tiled: bool


@dataclass
class PhotoAnalysis:
    image: Image.Image = field(repr=False)  # the decoded work image (for the annotated output)
    scale: float  # full-resolution pixels per work pixel
    width: int  # full resolution
    height: int
    backend: str
    threshold: float
    regions: list[RegionResult]
    plant_area_work: float | None  # calibrated plant area in work pixels

    @property
    def detections(self) -> list[Detection]:
        return [d for r in self.regions for d in r.detections]

    @property
    def total_detected(self) -> int:
        return sum(len(r.detections) for r in self.regions)

    @property
    def total_estimated(self) -> int:
        return sum(r.estimate.estimated for r in self.regions)

    @property
    def calibrated(self) -> bool:
        return self.plant_area_work is not None

    @property
    def total_containers(self) -> int:
        return sum(r.containers for r in self.regions)

    @property
    def total_empty(self) -> int:
        return sum(r.empty for r in self.regions)

    @property
    def avg_confidence(self) -> float | None:
        dets = self.detections
        return float(np.mean([d.score for d in dets])) if dets else None

    def size_classes(self) -> dict[str, int]:
        """Plants by size relative to the calibrated (else median) plant area."""
        dets = self.detections
        if not dets:
            return {"small": 0, "medium": 0, "large": 0}
        ref = self.plant_area_work or float(np.median([d.area_px for d in dets]))
        out = {"small": 0, "medium": 0, "large": 0}
        for d in dets:
            q = d.area_px / ref if ref else 1.0
            out["small" if q < 0.6 else "large" if q > 1.5 else "medium"] += 1
        return out


def analyze(
    data: bytes,
    *,
    config: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
    work_long_side: int | None = None,
) -> PhotoAnalysis:
    """Run the whole ML of one photo. ``config``/``calibration`` are the storage location's
    (``None`` when unknown: defaults, no empty-cell count, no estimation)."""
    cfg = dict(config or {})
    full = Image.open(io.BytesIO(data))
    width, height = full.size
    img, scale = decode_rgb(data, int(cfg.get("work_long_side", work_long_side or WORK_LONG_SIDE)))
    rgb = np.asarray(img)
    exg = excess_green(rgb)
    threshold = float(cfg.get("exg_threshold") or auto_threshold(exg))
    veg_all = exg > threshold
    area_full = calibrated_plant_area(calibration, width)
    plant_area_work = area_full / (scale * scale) if area_full else None
    # the detector derives the typical plant size from the photo itself (robust to a stale
    # calibration) and falls back to the calibrated size when the photo gives no reliable one;
    # the calibration drives estimation and size classes, or detection too when the location's
    # config says so
    detector = make_detector(
        cfg,
        threshold=threshold,
        plant_area=plant_area_work if cfg.get("detect_with_calibration") else None,
        plant_area_hint=plant_area_work,
    )
    if cfg.get("segmenter") == "yolo" and cfg.get("segment_model_path"):
        regions = segment_yolo(rgb, str(cfg["segment_model_path"]), str(cfg.get("device", "cpu")))
    else:
        regions = segment_containers(rgb)
    tile_min = int(cfg.get("tile_min_side", 600))
    cells = cfg.get("cells")
    results: list[RegionResult] = []
    claimed = np.zeros(rgb.shape[:2], bool)  # a plant belongs to the first (largest) region
    for reg in regions:
        # pad the box a little so leaves hanging over the container edge are kept
        pad = int(0.02 * max(rgb.shape[:2]))
        x0, y0 = max(0, reg.x0 - pad), max(0, reg.y0 - pad)
        x1, y1 = min(rgb.shape[1], reg.x1 + pad), min(rgb.shape[0], reg.y1 + pad)
        crop = rgb[y0:y1, x0:x1]
        tiled = max(crop.shape[:2]) > tile_min
        dets = detector.detect_region(crop, tiled=tiled, exg=exg[y0:y1, x0:x1])
        kept: list[Detection] = []
        for d in dets:
            cx, cy = int((d.x0 + d.x1) / 2) + x0, int((d.y0 + d.y1) / 2) + y0
            if claimed[min(cy, claimed.shape[0] - 1), min(cx, claimed.shape[1] - 1)]:
                continue
            kept.append(d)
        # vegetation of this region: inside its padded box and not claimed by a larger region
        veg = veg_all[y0:y1, x0:x1] & ~claimed[y0:y1, x0:x1]
        est = estimate_missed(veg, kept, plant_area_work)
        reg_veg = veg_all[reg.y0 : reg.y1, reg.x0 : reg.x1]
        containers, empty = empty_cells(reg_veg, reg, tuple(cells) if cells else None)
        claimed[y0:y1, x0:x1] = True
        results.append(
            RegionResult(
                region=reg,
                detections=[d.shifted(x0, y0) for d in kept],
                estimate=Estimate(
                    est.estimated,
                    est.leftover_px,
                    est.patches,
                    est.calibrated,
                    [(a + x0, b + y0, c + x0, e + y0) for a, b, c, e in est.patch_boxes],
                ),
                containers=containers,
                empty=empty,
                tiled=tiled,
            )
        )
    return PhotoAnalysis(
        image=img,
        scale=scale,
        width=width,
        height=height,
        backend=getattr(detector, "name", "classical"),
        threshold=threshold,
        regions=results,
        plant_area_work=plant_area_work,
    )


def count_error(predicted: int, truth: int) -> float:
    """Absolute percentage error of a count (0 when both are 0)."""
    if truth == 0:
        return 0.0 if predicted == 0 else 1.0
    return abs(predicted - truth) / truth


__all__ = ["PhotoAnalysis", "RegionResult", "analyze", "count_error"]
