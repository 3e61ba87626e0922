"""Stretched previews of frames, built streaming with bounded memory (also for 61 Mpx frames).

A FITS image is read straight from the file (header parsed here, pixels through ``np.memmap`` of
the raw big-endian data, so ``BZERO``/``BSCALE`` scaled 16-bit NINA frames work: astropy refuses
``memmap=True`` for them). Only every ``k``-th row is touched and each sampled row is binned by
``k`` along the row, so a preview reads about ``1/k`` of the file and never holds more than one
block of rows in memory. XISF frames (uncompressed) go through the same path.

The stretch is :mod:`astropy.visualization` (``ZScaleInterval`` + ``AsinhStretch``) computed on the
small image. :func:`preview_png` caches the PNG next to nothing: callers pass the cache path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_FITS_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", -32: ">f4", -64: ">f8"}
BLOCK = 2880
ROWS_PER_CHUNK = 64  # sampled output rows per read


@dataclass(frozen=True)
class PixelLayout:
    """Where and how the first image's pixels are stored in a file."""

    offset: int
    height: int
    width: int
    dtype: str
    bzero: float = 0.0
    bscale: float = 1.0
    planes: int = 1


def _card_value(card: str) -> str:
    v = card[10:].split("/", 1)[0].strip()
    return v.strip("'").strip()


def fits_layout(path: str | os.PathLike[str]) -> PixelLayout:
    """Pixel layout of the primary HDU (raises ``ValueError`` for what is not a 2-D/3-D image)."""
    cards: dict[str, str] = {}
    offset = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(BLOCK)
            if len(block) < BLOCK:
                raise ValueError("truncated FITS header (no END card)")
            offset += BLOCK
            if offset == BLOCK and not block.startswith(b"SIMPLE  ="):
                raise ValueError("not a FITS file (no SIMPLE card)")
            done = False
            for i in range(0, BLOCK, 80):
                card = block[i : i + 80].decode("ascii", "replace")
                key = card[:8].strip()
                if key == "END":
                    done = True
                    break
                if card[8:10] == "= " and key not in cards:
                    cards[key] = _card_value(card)
            if done:
                break
    bitpix = int(cards.get("BITPIX", "0"))
    naxis = int(cards.get("NAXIS", "0"))
    if bitpix not in _FITS_DTYPES:
        raise ValueError(f"unsupported BITPIX {bitpix}")
    if naxis < 2:
        raise ValueError("no image data")
    w, h = int(cards["NAXIS1"]), int(cards["NAXIS2"])
    planes = int(cards.get("NAXIS3", "1")) if naxis >= 3 else 1
    layout = PixelLayout(
        offset=offset,
        height=h,
        width=w,
        dtype=_FITS_DTYPES[bitpix],
        bzero=float(cards.get("BZERO", "0") or 0),
        bscale=float(cards.get("BSCALE", "1") or 1),
        planes=planes,
    )
    need = offset + h * w * np.dtype(layout.dtype).itemsize
    if os.path.getsize(path) < need:
        raise ValueError(f"truncated FITS data ({os.path.getsize(path)} of {need} bytes)")
    return layout


_XISF_DTYPES = {
    "UInt8": "<u1",
    "UInt16": "<u2",
    "UInt32": "<u4",
    "Float32": "<f4",
    "Float64": "<f8",
}


def xisf_layout(path: str | os.PathLike[str]) -> PixelLayout:
    from include.astro.headers import read_xisf_header

    cards = read_xisf_header(path)
    geometry = str(cards.get("__xisf_geometry__") or "")
    fmt = str(cards.get("__xisf_sample_format__") or "UInt16")
    loc = str(cards.get("__xisf_location__") or "")
    if not geometry or not loc.startswith("attachment"):
        raise ValueError("XISF without an uncompressed attached image")
    dims = [int(x) for x in geometry.split(":")]
    _, pos, _size = loc.split(":")
    if fmt not in _XISF_DTYPES:
        raise ValueError(f"unsupported XISF sample format {fmt}")
    return PixelLayout(offset=int(pos), height=dims[1], width=dims[0], dtype=_XISF_DTYPES[fmt])


def pixel_layout(path: str | os.PathLike[str]) -> PixelLayout:
    if str(path).lower().endswith(".xisf"):
        return xisf_layout(path)
    return fits_layout(path)


def binned(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """A float32 image whose longer side is about ``size``: every ``k``-th row, binned by ``k``
    along the row (streaming, one block of rows at a time), scaled by BZERO/BSCALE."""
    lay = pixel_layout(path)
    h, w = lay.height, lay.width
    k = max(1, -(-max(h, w) // max(1, size)))
    mm = np.memmap(path, dtype=lay.dtype, mode="r", offset=lay.offset, shape=(h, w))
    wk = (w // k) * k
    rows = list(range(k // 2, h, k))
    out = np.empty((len(rows), wk // k), dtype=np.float32)
    for i in range(0, len(rows), ROWS_PER_CHUNK):
        idx = rows[i : i + ROWS_PER_CHUNK]
        block = np.asarray(mm[idx[0] : idx[-1] + 1 : k, :wk], dtype=np.float32)
        out[i : i + len(idx)] = block.reshape(len(idx), wk // k, k).mean(axis=2)
    del mm
    if lay.bscale != 1.0:
        out *= lay.bscale
    if lay.bzero:
        out += lay.bzero
    return out


def stretch8(small: np.ndarray) -> np.ndarray:
    """Automatic stretch (astropy.visualization: zscale interval, asinh) to uint8."""
    from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

    finite = np.nan_to_num(small, nan=float(np.nanmedian(small)) if small.size else 0.0)
    norm = ImageNormalize(finite, interval=ZScaleInterval(), stretch=AsinhStretch(0.1), clip=True)
    return (np.asarray(norm(finite).filled(0.0)) * 255.0 + 0.5).astype(np.uint8)


def preview_image(path: str | os.PathLike[str], size: int) -> Any:
    """PIL image (mode L) of the frame, longer side = ``size`` (small frames are enlarged)."""
    from PIL import Image

    img = Image.fromarray(stretch8(binned(path, size)), mode="L")
    scale = size / max(img.width, img.height)
    if abs(scale - 1.0) > 0.01:
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
            Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST,
        )
    return img


def preview_png(
    path: str | os.PathLike[str], size: int, cache_dir: str | os.PathLike[str] | None = None
) -> bytes:
    """PNG bytes of :func:`preview_image`; cached in ``cache_dir`` by path, size, mtime and length."""
    import hashlib
    from io import BytesIO

    st = os.stat(path)
    cache = None
    if cache_dir is not None:
        key = hashlib.sha1(
            f"{os.path.abspath(path)}|{size}|{st.st_mtime_ns}|{st.st_size}".encode()
        ).hexdigest()
        cache = Path(cache_dir) / f"{key}.png"
        if cache.is_file():
            return cache.read_bytes()
    buf = BytesIO()
    preview_image(path, size).save(buf, format="PNG")
    data = buf.getvalue()
    if cache is not None:
        from include.common.files import atomic_write_bytes

        atomic_write_bytes(cache, data)
    return data
