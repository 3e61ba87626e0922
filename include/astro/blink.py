"""Blink review support: a contact sheet of stretched previews and parsing of the reviewer's input.

:func:`contact_sheet` writes one PNG per rig with a numbered, labelled thumbnail per light (auto
stretch: median/MAD black point + midtones transfer, like PixInsight's STF). The reviewer enters the
frames to reject as numbers and/or file names (comma, space or newline separated); :func:`resolve`
turns that text into files, reporting unknown entries per item.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from include.common.files import atomic_write_bytes

THUMB = 480  # a tile big enough to blink (small frames are enlarged to it)
LABEL_H = 30  # two label lines: the full file name
LABEL_CHARS = 76
COLUMNS = 3


_XISF_DTYPES = {
    "UInt8": "<u1",
    "UInt16": "<u2",
    "UInt32": "<u4",
    "Float32": "<f4",
    "Float64": "<f8",
}


def read_xisf_pixels(path: str | os.PathLike[str]) -> np.ndarray:
    """First channel of the first image of a monolithic XISF file (uncompressed attachment)."""
    from include.astro.headers import read_xisf_header

    cards = read_xisf_header(path)
    geometry = str(cards.get("__xisf_geometry__") or "")
    location = str(cards.get("__xisf_location__") or "")
    dtype = _XISF_DTYPES.get(str(cards.get("__xisf_sample_format__") or ""))
    parts = location.split(":")
    dims = [int(x) for x in geometry.split(":") if x.isdigit()]
    if dtype is None or len(parts) != 3 or parts[0] != "attachment" or len(dims) < 2:
        raise ValueError(f"unsupported XISF image ({geometry} {location})")
    w, h = dims[0], dims[1]
    n = w * h * np.dtype(dtype).itemsize
    with open(path, "rb") as fh:
        fh.seek(int(parts[1]))
        buf = fh.read(n)
    if len(buf) < n:
        raise ValueError("truncated XISF image data")
    return np.frombuffer(buf, dtype=dtype).reshape(h, w).astype(np.float32)


def read_pixels(path: str | os.PathLike[str]) -> np.ndarray:
    """2-D float array of a FITS frame's primary HDU (first plane of a cube) or an XISF image."""
    if str(path).lower().endswith(".xisf"):
        return read_xisf_pixels(path)
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        data = hdul[0].data
        if data is None:
            raise ValueError("no image data")
        arr = np.asarray(data, dtype=np.float32)
    while arr.ndim > 2:
        arr = arr[0]
    return arr


def stretch(arr: np.ndarray, target_bg: float = 0.25, shadows_clip: float = -2.8) -> np.ndarray:
    """Auto-stretch to 0..255 uint8: normalise, clip shadows at median + c*MAD, then a midtones
    transfer function that maps the median to ``target_bg``."""
    a = arr.astype(np.float32)
    lo, hi = float(np.min(a)), float(np.max(a))
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    a = (a - lo) / (hi - lo)
    med = float(np.median(a))
    mad = float(np.median(np.abs(a - med))) * 1.4826
    c0 = min(max(med + shadows_clip * mad, 0.0), 1.0)
    a = np.clip((a - c0) / max(1.0 - c0, 1e-6), 0.0, 1.0)
    m = (med - c0) / max(1.0 - c0, 1e-6)
    # midtones balance so that MTF(m) = target_bg
    mb = m * (target_bg - 1.0) / ((2.0 * target_bg - 1.0) * m - target_bg) if m > 0 else 0.5
    out = ((mb - 1.0) * a) / ((2.0 * mb - 1.0) * a - mb)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _thumb(arr8: np.ndarray) -> Any:
    from PIL import Image

    img = Image.fromarray(arr8, mode="L")
    img.thumbnail((THUMB, THUMB))
    return img


def contact_sheet(
    frames: Sequence[str | os.PathLike[str]], dest: str | os.PathLike[str], title: str = ""
) -> dict[str, Any]:
    """Write a PNG contact sheet of ``frames`` (numbered from 1) to ``dest`` (atomically).

    Returns ``{"path", "count", "index": [{"n", "file"}], "errors": [{"file", "reason"}]}``; an
    unreadable frame gets a grey "no preview" tile and an error entry."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    n = len(frames)
    cols = max(1, min(COLUMNS, n))
    rows = max(1, -(-n // cols))
    head = 32 if title else 0
    sheet = Image.new("L", (cols * THUMB, head + rows * (THUMB + LABEL_H)), 0)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title, fill=255)
    index = []
    errors = []
    for i, f in enumerate(frames):
        r, c = divmod(i, cols)
        x, y = c * THUMB, head + r * (THUMB + LABEL_H)
        try:
            from include.astro.preview import preview_image

            tile = preview_image(f, THUMB)
            sheet.paste(tile, (x + (THUMB - tile.width) // 2, y + (THUMB - tile.height) // 2))
        except Exception as exc:  # any unreadable frame: grey tile, reported
            draw.rectangle([x + 2, y + 2, x + THUMB - 3, y + THUMB - 3], fill=64)
            draw.text((x + 8, y + THUMB // 2), "no preview", fill=200)
            errors.append({"file": str(f), "reason": f"no preview: {exc}"})
        name = Path(f).name
        label = f"{i + 1}: {name}"
        draw.text((x + 2, y + THUMB), label[:LABEL_CHARS], fill=255)
        if len(label) > LABEL_CHARS:
            draw.text((x + 2, y + THUMB + 14), label[LABEL_CHARS : 2 * LABEL_CHARS], fill=255)
        index.append({"n": i + 1, "file": str(f)})
    buf = BytesIO()
    sheet.save(buf, format="PNG", optimize=False)
    atomic_write_bytes(dest, buf.getvalue())
    return {"path": str(dest), "count": n, "index": index, "errors": errors}


_SPLIT = re.compile(r"[,\n;]+")


def resolve(
    text: str | None, index: Sequence[dict[str, Any]]
) -> tuple[list[str], list[dict[str, str]]]:
    """Reviewer input → (files to reject, errors). Entries are numbers of the contact sheet,
    ranges (``3-5``), or file names (with or without folder). Duplicates are ignored."""
    chosen: list[str] = []
    errors: list[dict[str, str]] = []
    by_n = {int(e["n"]): e["file"] for e in index}
    by_name: dict[str, list[str]] = {}
    for e in index:
        by_name.setdefault(Path(e["file"]).name, []).append(e["file"])
    if not text:
        return chosen, errors
    raw_entries: list[str] = []
    for part in _SPLIT.split(str(text)):
        part = part.strip()
        if not part:
            continue
        # plain numbers may also be separated by spaces ("1 4 7")
        if re.fullmatch(r"[\d\s-]+", part):
            raw_entries += part.split()
        else:
            raw_entries.append(part)
    for entry in raw_entries:
        files: list[str] = []
        m = re.fullmatch(r"(\d+)-(\d+)", entry)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            missing = [k for k in range(min(a, b), max(a, b) + 1) if k not in by_n]
            if missing:
                errors.append(
                    {"entry": entry, "reason": f"no frame number {missing[0]} on the sheet"}
                )
                continue
            files = [by_n[k] for k in range(min(a, b), max(a, b) + 1)]
        elif entry.isdigit():
            if int(entry) not in by_n:
                errors.append({"entry": entry, "reason": "no such frame number on the sheet"})
                continue
            files = [by_n[int(entry)]]
        else:
            name = Path(entry).name
            cands = by_name.get(name, [])
            if len(cands) != 1:
                reason = "not a frame on the sheet" if not cands else "ambiguous file name"
                errors.append({"entry": entry, "reason": reason})
                continue
            files = cands
        for f in files:
            if f not in chosen:
                chosen.append(f)
    return chosen, errors
