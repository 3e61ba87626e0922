"""Segment a photo into container regions (trays, pots) before detection.

Classical segmentation: the floor/background colour is the median of the image border; every
pixel clearly different from it belongs to a container (plastic, soil, plants). After hole filling
and an opening, each connected component is a region. Large regions (trays) are detected with
tiling, small ones (pots, plugs) directly. When nothing stands out from the background (the
photo is a close-up of one tray) the whole frame is one region.

A YOLO segmentation model can replace this (``config.segmenter = "yolo"`` with
``segment_model_path``): its instance masks become the regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Region:
    """A container region in work pixels: bounding box and a box-sized boolean mask."""

    x0: int
    y0: int
    x1: int
    y1: int
    mask: np.ndarray
    kind: str  # tray | pot | frame

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    def to_dict(self, scale: float = 1.0) -> dict[str, Any]:
        return {
            "box": [round(v * scale) for v in (self.x0, self.y0, self.x1, self.y1)],
            "kind": self.kind,
            "area_px": round(self.area * scale * scale),
        }


def segment_containers(
    rgb: np.ndarray,
    *,
    color_distance: float = 45.0,
    min_region_fraction: float = 0.004,
    tray_fraction: float = 0.05,
    work_side: int = 256,
) -> list[Region]:
    """Container regions of ``rgb`` (work pixels), largest first."""
    from scipy import ndimage as ndi

    h, w = rgb.shape[:2]
    f = max(1, max(h, w) // work_side)
    small = rgb[::f, ::f].astype(np.float32)
    border = np.concatenate(
        [small[0], small[-1], small[:, 0], small[:, -1]], axis=0
    )  # (n, 3) border pixels
    bg = np.median(border, axis=0)
    dist = np.sqrt(((small - bg) ** 2).sum(axis=2))
    fg = dist > color_distance
    fg = ndi.binary_fill_holes(fg)
    fg = ndi.binary_opening(fg, structure=np.ones((3, 3), bool), iterations=2)
    labels, n = ndi.label(fg)
    total = fg.size
    regions: list[Region] = []
    if n:
        areas = np.bincount(labels.ravel())[1:]
        for i, sl in enumerate(ndi.find_objects(labels)):
            if sl is None or areas[i] < min_region_fraction * total:
                continue
            ys, xs = sl
            y0, y1 = ys.start * f, min(h, ys.stop * f)
            x0, x1 = xs.start * f, min(w, xs.stop * f)
            m_small = labels[sl] == (i + 1)
            # upsample the mask to work pixels (nearest) and crop to the box
            m = np.repeat(np.repeat(m_small, f, axis=0), f, axis=1)[: y1 - y0, : x1 - x0]
            kind = "tray" if areas[i] >= tray_fraction * total else "pot"
            regions.append(Region(x0, y0, x1, y1, m, kind))
    fg_fraction = float(fg.mean())
    if not regions or fg_fraction > 0.97:
        return [Region(0, 0, w, h, np.ones((h, w), bool), "frame")]
    regions.sort(key=lambda r: -r.area)
    return regions


def segment_yolo(rgb: np.ndarray, model_path: str, device: str = "cpu") -> list[Region]:
    """Regions from a YOLO segmentation model (optional extra ``ultralytics``)."""
    from include.photos.detect import BackendUnavailable, load_yolo

    try:
        model = load_yolo(model_path)  # once per worker process
    except ImportError as exc:
        raise BackendUnavailable(
            "segmenter 'yolo' needs the optional extra: pip install ultralytics sahi"
        ) from exc
    h, w = rgb.shape[:2]
    result = model.predict(rgb, device=device, verbose=False)[0]
    regions: list[Region] = []
    if result.masks is None:
        return [Region(0, 0, w, h, np.ones((h, w), bool), "frame")]
    from PIL import Image

    for m in result.masks.data.cpu().numpy():
        full = np.asarray(Image.fromarray((m > 0.5).astype(np.uint8) * 255).resize((w, h))) > 0
        ys, xs = np.nonzero(full)
        if not len(ys):
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        kind = "tray" if full.sum() >= 0.05 * h * w else "pot"
        regions.append(Region(int(x0), int(y0), int(x1), int(y1), full[y0:y1, x0:x1], kind))
    return regions or [Region(0, 0, w, h, np.ones((h, w), bool), "frame")]


def empty_cells(
    veg: np.ndarray, region: Region, cells: tuple[int, int] | None, min_fraction: float = 0.03
) -> tuple[int, int]:
    """``(containers, empty)`` of a region: a tray with ``cells = (rows, cols)`` is split into a
    grid and a cell whose central 40% holds < ``min_fraction`` vegetation is empty; a pot is one
    container. ``veg`` is the region's box-sized vegetation mask. Trays without a configured grid
    count as ``(0, 0)`` (unknown)."""
    if region.kind == "pot":
        inner = veg[region.mask]
        return 1, int(inner.size == 0 or inner.mean() < min_fraction)
    if not cells:
        return 0, 0
    rows, cols = int(cells[0]), int(cells[1])
    h, w = veg.shape
    # the tray is the region without plants hanging over its edge: use the non-vegetation extent
    body = region.mask & ~veg
    ys, xs = np.nonzero(body)
    if not len(ys):
        return rows * cols, 0
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ch, cw = (y1 - y0) / rows, (x1 - x0) / cols
    empty = 0
    for r in range(rows):
        for c in range(cols):
            cy0 = int(y0 + (r + 0.3) * ch)
            cy1 = int(y0 + (r + 0.7) * ch)
            cx0 = int(x0 + (c + 0.3) * cw)
            cx1 = int(x0 + (c + 0.7) * cw)
            cell = veg[cy0:cy1, cx0:cx1]
            if cell.size == 0 or cell.mean() < min_fraction:
                empty += 1
    return rows * cols, empty
