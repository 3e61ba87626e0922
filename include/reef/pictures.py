"""Pictures of a stitched timepoint and of the experiment.

* :func:`write_previews` — per timepoint a PNG of each channel (grey, stretched to the channel's
  omero window) and a colour composite (each channel in its omero colour, added and clipped),
  drawn from the first pyramid level no larger than ``max_side`` pixels.
* :func:`write_timelapse` — the composites of all timepoints as one animated WebP (GIF when
  Pillow lacks animated WebP), every frame padded to the largest one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

PREVIEW_SIDE = 1024
COMPOSITE = "composite"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "channel"


def _stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        hi = lo + 1
    return np.clip((a.astype(np.float32) - lo) / (hi - lo), 0, 1)


def write_previews(
    zarr_path: str | os.PathLike[str],
    result: Any,
    out_dir: str | os.PathLike[str],
    max_side: int = PREVIEW_SIDE,
) -> dict[str, str]:
    """``{label: png path}`` for each channel and ``composite``."""
    import zarr
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lvl = next(
        (i for i, s in enumerate(result.levels) if max(s) <= max_side), len(result.levels) - 1
    )
    arr = zarr.open_array(str(Path(zarr_path) / str(lvl)), mode="r")
    comp = np.zeros((*arr.shape[1:], 3), np.float32)
    pics: dict[str, str] = {}
    for ch in result.channels:
        g = _stretch(np.asarray(arr[ch.index]), *ch.window)
        p = out / f"{_safe(ch.name)}.png"
        Image.fromarray((g * 255).astype(np.uint8)).save(p, optimize=True)
        pics[ch.name] = str(p)
        rgb = np.array([int(ch.colour[i : i + 2], 16) / 255 for i in (0, 2, 4)], np.float32)
        comp += g[..., None] * rgb
    p = out / f"{COMPOSITE}.png"
    Image.fromarray((np.clip(comp, 0, 1) * 255).astype(np.uint8)).save(p, optimize=True)
    pics[COMPOSITE] = str(p)
    return pics


def write_timelapse(
    frames: list[str | os.PathLike[str]], dest: str | os.PathLike[str], ms_per_frame: int = 500
) -> Path | None:
    """An animated picture of ``frames`` (oldest first) at ``dest`` (suffix set to .webp or .gif);
    None when there is no frame."""
    from PIL import Image, features

    imgs = []
    for f in frames:
        with Image.open(f) as im:
            imgs.append(im.convert("RGB"))
    if not imgs:
        return None
    w = max(i.width for i in imgs)
    h = max(i.height for i in imgs)
    padded = []
    for im in imgs:
        canvas = Image.new("RGB", (w, h))
        canvas.paste(im, (0, 0))
        padded.append(canvas)
    webp = bool(features.check("webp"))
    path = Path(dest).with_suffix(".webp" if webp else ".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    kw: dict[str, Any] = {"quality": 80} if webp else {}
    padded[0].save(
        tmp,
        format="WEBP" if webp else "GIF",
        save_all=True,
        append_images=padded[1:],
        duration=ms_per_frame,
        loop=0,
        **kw,
    )
    os.replace(tmp, path)
    return path
