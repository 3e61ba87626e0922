"""Estimate the plants the detector missed from the vegetation it did not explain.

Vegetation pixels inside a region that no detection covers (unsplit clumps, plants under a
neighbour's leaves, fragments) are grouped into connected patches; a patch of at least half a
plant counts as ``round(area / avg_plant_area)`` plants (at least one). The density parameter
``avg_plant_area_px`` comes from the storage location's calibration; without it no estimate is
made and the photo gets the ``needs_calibration`` warning (detections are still reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from include.photos.detect import Detection


@dataclass
class Estimate:
    estimated: int
    leftover_px: float  # work pixels of unexplained vegetation
    patches: int  # patches that produced an estimate
    calibrated: bool
    patch_boxes: list[tuple[int, int, int, int]]  # region-relative boxes of those patches

    def to_dict(self, scale: float = 1.0) -> dict[str, Any]:
        return {
            "estimated": self.estimated,
            "leftover_px": round(self.leftover_px * scale * scale, 1),
            "patches": self.patches,
            "calibrated": self.calibrated,
        }


def calibrated_plant_area(
    calibration: dict[str, Any] | None, width_px: int | None = None
) -> float | None:
    """The average plant area in full-resolution pixels of a photo ``width_px`` wide, from a
    location calibration ``{"avg_plant_area_px": A, "reference_width_px": W}`` (A measured on
    photos W pixels wide; scaled by ``(width_px / W) ** 2`` for other resolutions), or ``None``
    when the location has no usable density parameters."""
    if not calibration:
        return None
    try:
        v = float(calibration.get("avg_plant_area_px") or 0)
        ref = float(calibration.get("reference_width_px") or 0)
    except (TypeError, ValueError):
        return None
    if v <= 0:
        return None
    if ref > 0 and width_px:
        v *= (float(width_px) / ref) ** 2
    return v


def covered_mask(shape: tuple[int, int], dets: list[Detection]) -> np.ndarray:
    """Pixels explained by detections (their masks, or their boxes when there is no mask)."""
    cov = np.zeros(shape, bool)
    h, w = shape
    for d in dets:
        x0, y0 = max(0, int(d.x0)), max(0, int(d.y0))
        x1, y1 = min(w, int(np.ceil(d.x1))), min(h, int(np.ceil(d.y1)))
        if x0 >= x1 or y0 >= y1:
            continue
        if d.mask is not None:
            m = d.mask
            oy, ox = y0 - int(d.y0), x0 - int(d.x0)
            cov[y0:y1, x0:x1] |= m[oy : oy + (y1 - y0), ox : ox + (x1 - x0)]
        else:
            cov[y0:y1, x0:x1] = True
    return cov


def estimate_missed(
    veg: np.ndarray, dets: list[Detection], avg_plant_area: float | None, min_patch: float = 0.5
) -> Estimate:
    """Plants in ``veg`` (bool, region-sized) not covered by ``dets`` (region coordinates);
    ``avg_plant_area`` in the same (work) pixels."""
    from scipy import ndimage as ndi

    left = veg & ~covered_mask(veg.shape, dets)
    left = ndi.binary_opening(left, structure=np.ones((3, 3), bool))
    leftover = float(left.sum())
    if not avg_plant_area:
        return Estimate(0, leftover, 0, False, [])
    labels, n = ndi.label(left)
    if n == 0:
        return Estimate(0, leftover, 0, True, [])
    areas = np.bincount(labels.ravel())[1:]
    est, patches, boxes = 0, 0, []
    for i, sl in enumerate(ndi.find_objects(labels)):
        a = float(areas[i])
        if sl is None or a < min_patch * avg_plant_area:
            continue
        est += max(1, int(round(a / avg_plant_area)))
        patches += 1
        ys, xs = sl
        boxes.append((xs.start, ys.start, xs.stop, ys.stop))
    return Estimate(est, leftover, patches, True, boxes)
