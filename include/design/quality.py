"""Which copy of a design is the best one: the order that decides which member of a near-duplicate
group is kept (within an upload) and whether a later upload is a better copy of a stored design.

The facts come from the source file's header and one pass over its pixels (:func:`measure`, in the
worker that hashes the file). Copies are compared on, in this order (the first difference decides):

1. **the whole picture** — a copy that is a crop of another member of its group loses to the
   full one, whatever its pixel count (:mod:`include.design.copies`, measured within the group);
2. **no watermark** — a copy with a small overlay (text, a logo) that the group's other members do
   not have loses to a clean copy, whatever its pixel count (:mod:`include.design.copies`);
3. **resolution** — more source pixels (a half-size copy has fewer);
4. **transparency** — a design with real transparency beats a copy flattened onto a background;
5. **lossless** — PNG/TIFF/BMP/GIF/lossless WebP beat JPEG and lossy WebP; a lossless file
   decoded from a JPEG (a format swap: its 8×8-block DCT coefficients sit on a JPEG
   quantisation lattice, :func:`jpeg_history`) counts as lossy at the estimated quality;
6. **true colour** — a palette image (≤ 256 colours, e.g. a PNG re-saved through a quantiser)
   ranks below a true-colour one;
7. **JPEG quality** — the estimated quality of the quantisation tables (lossless counts as 100);
8. **the JPEG itself** before a lossless re-save of it (same estimated quality);
9. **fewer clipped pixels** (whole percents of the visible pixels) — a brightened copy pushes
   more pixels to pure white/black;
10. the upload's **name**: the shorter file name first (copies get suffixes: ``x (1).png``,
   ``x_copy.png``, ``x-watermark.png``), then alphabetical, so the choice is deterministic.

Facts 1-9 describe one file (:func:`measure`) except 1 and 2, which only show next to the other
copies: ``cropped`` and ``watermark`` are set on the members of a near-duplicate group of one
upload (:func:`include.design.pipeline.check_duplicates`); a copy measured alone has neither.
The file size is recorded but does not rank (a watermark or noise makes a file larger).
Against the library, :func:`include.design.pipeline.check_duplicates` fetches the stored file of
a matched design from the NAS and measures 1 and 2 for the pair (upload, stored copy); so does the
re-check under the shop's lock (:func:`include.design.pipeline.record_designs`: a design another run
stored meanwhile), for the few uploads that lost such a race.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np
from PIL import Image

LOSSLESS = frozenset({"PNG", "TIFF", "BMP", "GIF"})
#: Luminance quantisation table of the IJG reference encoder at quality 50 (JPEG Annex K).
_STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip


class Quality(TypedDict):
    pixels: int
    alpha: bool
    lossless: bool
    truecolour: bool
    jpeg_quality: int  # 100 for lossless formats
    clipped: float  # fraction of pixels at pure white or black (0..1, 4 decimals)
    size: int
    jpeg_history: bool  # a lossless file decoded from a JPEG (ranks as that JPEG)


def jpeg_quality(im: Image.Image) -> int:
    """Estimated IJG quality (1..100) from the luminance table; 100 for non-JPEG images."""
    tables = getattr(im, "quantization", None)
    if im.format != "JPEG" or not tables:
        return 100
    luma = np.array(tables[min(tables)], dtype=np.float64)
    scale = float(np.mean(luma * 100.0 / _STD_LUMA[: len(luma)]))  # IJG's percentage scale
    q = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return int(max(1, min(100, round(q))))


def _ijg_table(q: int) -> np.ndarray:
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    return np.clip(np.floor((_STD_LUMA * scale + 50.0) / 100.0), 1, 255)


#: The IJG luminance tables of qualities 1..100 (row ``q - 1``), natural (row-major) order.
_IJG_TABLES = np.stack([_ijg_table(q) for q in range(1, 101)])
_K = np.arange(8)
_DCT8 = np.cos((2 * _K[None, :] + 1) * _K[:, None] * np.pi / 16) * 0.5
_DCT8[0] /= np.sqrt(2.0)  # the orthonormal 8-point DCT-II (JPEG's FDCT)
GHOST_SIDE = 1024  # the JPEG-history measure reads at most this many px square (grid-aligned)
GHOST_BLOCKS = 4096  # ... and at most this many 8x8 blocks of it
GHOST_MIN_TERMS = 3  # frequencies that must show the quantisation step
GHOST_MIN_SCORE = 0.5  # mean lattice score (1 = every coefficient on a multiple of the step)


def jpeg_history(rgb: np.ndarray) -> int | None:
    """The IJG quality of the JPEG a lossless picture was decoded from, or ``None`` when it shows
    no JPEG history ("JPEG ghost" by quantised DCT coefficients).

    ``rgb``: the picture's pixels (H×W×3 or H×W, uint8, top-left = the JPEG's block grid).
    Decoding a JPEG leaves the luminance's 8×8-block DCT coefficients on multiples of the
    quantisation table (up to the rounding of the decoded pixels); a picture that never went
    through JPEG has no such lattice. For each IJG quality 1..100 the coefficients of every
    frequency with a step ≥ 2 are scored by ``mean(cos(2π c / step))`` (only those not
    quantised to 0); the quality with the highest total is the estimate when at least
    :data:`GHOST_MIN_TERMS` frequencies take part and their mean score is at least
    :data:`GHOST_MIN_SCORE`. Blocks with a channel at 0/1 or 254/255 are left out (the decoder
    clamps there, off the lattice). Limits: a JPEG cropped or resized after decoding (the
    grid moved or the lattice resampled) is not recognised; tables far from IJG scaling
    (some cameras, Photoshop) are matched to the nearest IJG quality or missed; quality ≥ 97
    (steps of 1-2) shows hardly any lattice."""
    a = np.asarray(rgb, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    a = a[..., :3]
    h, w = (a.shape[0] // 8) * 8, (a.shape[1] // 8) * 8
    if h < 8 or w < 8:
        return None
    # a grid-aligned centre window (bounded cost on large pictures)
    y0 = max(0, (h - GHOST_SIDE) // 16 * 8)
    x0 = max(0, (w - GHOST_SIDE) // 16 * 8)
    a = a[y0 : y0 + min(h, GHOST_SIDE), x0 : x0 + min(w, GHOST_SIDE)]
    h, w, c = a.shape
    blocks = a.reshape(h // 8, 8, w // 8, 8, c).transpose(0, 2, 1, 3, 4).reshape(-1, 8, 8, c)
    ok = ~((blocks >= 254) | (blocks <= 1)).reshape(len(blocks), -1).any(axis=1)
    blocks = blocks[ok]
    if len(blocks) > GHOST_BLOCKS:
        blocks = blocks[:: -(-len(blocks) // GHOST_BLOCKS)]
    if not len(blocks):
        return None
    if c >= 3:
        luma = blocks[..., 0] * 0.299 + blocks[..., 1] * 0.587 + blocks[..., 2] * 0.114
    else:
        luma = blocks[..., 0]
    coef = np.einsum("ij,bjk,lk->bil", _DCT8, luma - 128.0, _DCT8).reshape(-1, 64)
    # score[q, k]: lattice score of frequency k at quality q's step (nan: step < 2 or < 20 values)
    score = np.full((100, 64), np.nan)
    for k in range(1, 64):
        v = np.abs(coef[:, k])
        v = v[v >= 1.0]
        steps, where = np.unique(_IJG_TABLES[:, k], return_inverse=True)
        keep = (v[None, :] >= 0.5 * steps[:, None]) & (steps[:, None] >= 2)
        n = keep.sum(axis=1)
        s = (np.cos(2.0 * np.pi * v[None, :] / steps[:, None]) * keep).sum(axis=1)
        per_step = np.where(n >= 20, s / np.maximum(n, 1), np.nan)
        score[:, k] = per_step[where.ravel()]
    totals = np.nansum(score, axis=1)
    terms = (~np.isnan(score)).sum(axis=1)
    qi = int(np.argmax(totals))
    best, best_q, best_n = float(totals[qi]), (qi + 1 if totals[qi] > 0 else None), int(terms[qi])
    if best_q is None or best_n < GHOST_MIN_TERMS or best < GHOST_MIN_SCORE * best_n:
        return None
    return best_q


def _webp_lossless(path: str) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(64)
    return b"VP8L" in head


def measure(
    path: str,
    im: Image.Image,
    rgb: Image.Image,
    has_alpha: bool,
    size: int,
    truecolour: bool = True,
    history: int | None = None,
) -> Quality:
    """Quality facts of a source file: ``im`` its opened image (header), ``rgb`` a decoded RGB
    (or L) version of any size for the clipping measure, ``has_alpha`` real transparency,
    ``history`` the JPEG quality a lossless file was decoded from (:func:`jpeg_history`): such a
    file counts as lossy at that quality."""
    fmt = im.format or ""
    lossless = fmt in LOSSLESS or (fmt == "WEBP" and _webp_lossless(path))
    from_jpeg = bool(lossless and history is not None)
    if from_jpeg:
        lossless = False
    grey = np.asarray(rgb.convert("L"))
    clip = (grey >= 255) | (grey <= 0)
    if rgb.mode == "RGBA":  # only the visible pixels count
        opaque = np.asarray(rgb.getchannel("A")) > 0
        clip = clip[opaque]
    clipped = float(np.mean(clip)) if clip.size else 0.0
    return Quality(
        pixels=int(im.width * im.height),
        alpha=bool(has_alpha),
        lossless=bool(lossless),
        truecolour=bool(truecolour),
        jpeg_quality=100 if lossless else int(history) if from_jpeg else jpeg_quality(im),
        clipped=round(clipped, 4),
        size=int(size),
        jpeg_history=from_jpeg,
    )


def rank(q: Mapping[str, Any] | None, name: str = "") -> tuple[Any, ...]:
    """Sort key: larger is better (``max(items, key=...)``); see the module's order. A copy without
    recorded facts (stored before they were measured) ranks lowest."""
    if not q:
        return (False, False, -1, False, False, False, 0, False, 0.0, _name_key(name))
    return (
        not q.get("cropped", False),
        not q.get("watermark", False),
        int(q["pixels"]),
        bool(q["alpha"]),
        bool(q["lossless"]),
        bool(q.get("truecolour", True)),
        int(q["jpeg_quality"]),
        not q.get("jpeg_history", False),  # the JPEG itself before a lossless re-save of it
        -round(float(q["clipped"]) * 100),  # whole percents: a small overlay does not decide
        _name_key(name),
    )


def _name_key(name: str) -> tuple[int, tuple[int, ...]]:
    # shorter, then alphabetically earlier, ranks higher (negated for ``max``/reverse sorting)
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return (-len(stem), tuple(-ord(c) for c in name))


def better(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Is ``a`` a strictly better copy than ``b`` on the facts (names ignored)? A stored design
    without recorded facts (stored before they were measured) is never "worse": nobody is asked
    to replace designs on no evidence."""
    if not a or not b:
        return False
    return rank(a)[:-1] > rank(b)[:-1]


def reasons(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> str:
    """Why ``a`` beats ``b``, in words (the first deciding fact)."""
    if not a:
        return "no quality facts"
    if not b:
        return "the stored copy has no recorded quality facts"
    if bool(a.get("cropped")) != bool(b.get("cropped")):
        return "the whole picture vs a cropped copy" if b.get("cropped") else "a cropped copy"
    if bool(a.get("watermark")) != bool(b.get("watermark")):
        return "no watermark vs a watermarked copy" if b.get("watermark") else "a watermarked copy"
    if a["pixels"] != b["pixels"]:
        return f"{a['pixels'] / 1e6:.2f} MP vs {b['pixels'] / 1e6:.2f} MP"
    if a["alpha"] != b["alpha"]:
        return "transparency vs a flattened copy" if a["alpha"] else "flattened vs transparency"
    if a["lossless"] != b["lossless"]:
        if b.get("jpeg_history"):
            return f"lossless vs a lossless re-save of a JPEG (q{b['jpeg_quality']})"
        return "lossless vs lossy" if a["lossless"] else "lossy vs lossless"
    if a.get("truecolour", True) != b.get("truecolour", True):
        return "true colour vs a palette copy" if a.get("truecolour", True) else "palette copy"
    if a["jpeg_quality"] != b["jpeg_quality"]:
        return f"JPEG quality {a['jpeg_quality']} vs {b['jpeg_quality']}"
    if bool(a.get("jpeg_history")) != bool(b.get("jpeg_history")):
        return "the JPEG vs a lossless re-save of it" if b.get("jpeg_history") else "a re-save"
    if round(a["clipped"] * 100) != round(b["clipped"] * 100):
        return f"{a['clipped']:.2%} vs {b['clipped']:.2%} clipped pixels"
    return "same facts (decided by name)"


def of_file(path: str, max_pixels: int | None = None) -> Quality:
    """:func:`measure` for a file (header + a reduced decode: cheap for JPEG through ``draft``)."""
    import os

    from PIL import ImageOps

    from include.design import imaging

    kw = {} if max_pixels is None else {"max_pixels": max_pixels}
    im = imaging.open_image(path, **kw)
    with im:
        fmt, width, height = im.format, im.width, im.height
        truecolour = im.mode not in ("P", "PA", "1")
        tables = getattr(im, "quantization", None)
        if im.format == "JPEG":
            im.draft("RGB", (256, 256))
        im.load()
        history = None
        lossless_fmt = fmt in LOSSLESS or (fmt == "WEBP" and _webp_lossless(str(path)))
        opaque = im.mode in ("RGB", "L") or (
            im.mode == "RGBA" and im.getchannel("A").getextrema()[0] == 255
        )
        if lossless_fmt and truecolour and opaque:
            # full-resolution pixels before any rotation: the JPEG's block grid (a JPEG has no
            # transparency, so transparent and palette files are not measured)
            history = jpeg_history(np.asarray(im)[..., :3] if im.mode == "RGBA" else np.asarray(im))
        im = ImageOps.exif_transpose(im)
        alpha = False
        if im.mode == "P" and "transparency" in im.info or im.mode in ("LA", "PA", "La", "RGBa"):
            im = im.convert("RGBA")
        if im.mode == "RGBA":
            alpha = im.getchannel("A").getextrema()[0] < 255
        rgb = im.convert("RGBA" if alpha else "RGB")
        rgb.thumbnail((512, 512))
    fake = _Header(fmt or "", width, height, tables)
    size = os.path.getsize(path)
    q = measure(str(path), fake, rgb, alpha, size, truecolour, history)  # type: ignore[arg-type]
    q["colours"] = colour_names(rgb)  # type: ignore[typeddict-unknown-key]
    return q


#: Names a buyer would use, with a representative sRGB value each.
COLOUR_NAMES = {
    "black": (20, 20, 20), "white": (245, 245, 245), "grey": (128, 128, 128),
    "red": (200, 30, 40), "orange": (240, 130, 30), "yellow": (240, 210, 50),
    "green": (50, 150, 60), "teal": (20, 140, 140), "blue": (40, 80, 200),
    "navy": (20, 30, 90), "purple": (120, 50, 160), "pink": (240, 130, 180),
    "brown": (120, 75, 40), "beige": (225, 205, 170),
}  # fmt: skip


def colour_names(rgb: Image.Image, n: int = 2) -> list[str]:
    """The ``n`` most common colour names of the visible pixels, most common first (white and
    black backgrounds count only when nothing else is there)."""
    arr = np.asarray(rgb.convert("RGBA")).reshape(-1, 4)
    arr = arr[arr[:, 3] > 0][:, :3].astype(np.int32)
    if not len(arr):
        return []
    names = list(COLOUR_NAMES)
    ref = np.array([COLOUR_NAMES[k] for k in names], dtype=np.int32)
    nearest = ((arr[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    counts = np.bincount(nearest, minlength=len(names))
    order = [names[i] for i in np.argsort(-counts, kind="stable") if counts[i] > 0.03 * len(arr)]
    chromatic = [c for c in order if c not in ("white", "black", "grey")]
    return (chromatic or order)[:n]


class _Header:
    """The header facts :func:`measure` reads (format, size, quantisation tables)."""

    def __init__(self, fmt: str, width: int, height: int, tables: Any) -> None:
        self.format, self.width, self.height, self.quantization = fmt, width, height, tables
