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
5. **lossless** — PNG/TIFF/BMP/GIF/lossless WebP beat JPEG and lossy WebP;
6. **true colour** — a palette image (≤ 256 colours, e.g. a PNG re-saved through a quantiser)
   ranks below a true-colour one;
7. **JPEG quality** — the estimated quality of the quantisation tables (lossless counts as 100);
8. **fewer clipped pixels** (whole percents of the visible pixels) — a brightened copy pushes
   more pixels to pure white/black;
9. the upload's **name**: the shorter file name first (copies get suffixes: ``x (1).png``,
   ``x_copy.png``, ``x-watermark.png``), then alphabetical, so the choice is deterministic.

Facts 1-8 describe one file (:func:`measure`) except 1 and 2, which only show next to the other
copies: ``cropped`` and ``watermark`` are set on the members of a near-duplicate group of one
upload (:func:`include.design.pipeline.check_duplicates`); a copy measured alone has neither.
The file size is recorded but does not rank (a watermark or noise makes a file larger).
Against the library, :func:`include.design.pipeline.check_duplicates` fetches the stored file of
a matched design from the NAS and measures 1 and 2 for the pair (upload, stored copy); the re-check
under the shop's lock (rows another run stored meanwhile) uses the per-file facts only.
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


def jpeg_quality(im: Image.Image) -> int:
    """Estimated IJG quality (1..100) from the luminance table; 100 for non-JPEG images."""
    tables = getattr(im, "quantization", None)
    if im.format != "JPEG" or not tables:
        return 100
    luma = np.array(tables[min(tables)], dtype=np.float64)
    scale = float(np.mean(luma * 100.0 / _STD_LUMA[: len(luma)]))  # IJG's percentage scale
    q = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return int(max(1, min(100, round(q))))


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
) -> Quality:
    """Quality facts of a source file: ``im`` its opened image (header), ``rgb`` a decoded RGB
    (or L) version of any size for the clipping measure, ``has_alpha`` real transparency."""
    fmt = im.format or ""
    lossless = fmt in LOSSLESS or (fmt == "WEBP" and _webp_lossless(path))
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
        jpeg_quality=100 if lossless else jpeg_quality(im),
        clipped=round(clipped, 4),
        size=int(size),
    )


def rank(q: Mapping[str, Any] | None, name: str = "") -> tuple[Any, ...]:
    """Sort key: larger is better (``max(items, key=...)``); see the module's order. A copy without
    recorded facts (stored before they were measured) ranks lowest."""
    if not q:
        return (False, False, -1, False, False, False, 0, 0.0, _name_key(name))
    return (
        not q.get("cropped", False),
        not q.get("watermark", False),
        int(q["pixels"]),
        bool(q["alpha"]),
        bool(q["lossless"]),
        bool(q.get("truecolour", True)),
        int(q["jpeg_quality"]),
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
        return "lossless vs lossy" if a["lossless"] else "lossy vs lossless"
    if a.get("truecolour", True) != b.get("truecolour", True):
        return "true colour vs a palette copy" if a.get("truecolour", True) else "palette copy"
    if a["jpeg_quality"] != b["jpeg_quality"]:
        return f"JPEG quality {a['jpeg_quality']} vs {b['jpeg_quality']}"
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
    q = measure(str(path), fake, rgb, alpha, size, truecolour)  # type: ignore[arg-type]
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
