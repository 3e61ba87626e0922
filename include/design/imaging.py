"""Image validation, the single decode path used for hashing, and the output resize.

Every image the pipeline ever hashes — an upload, a file already on the NAS, a benchmark image —
goes through :func:`decode_for_hash`. Hashes from different decode paths differ by a few bits
(JPEG DCT-domain downscaling, alpha handling), which would make the duplicate decisions depend on
where an image came from. The path is:

1. open + validate (format, size, frames, mode; see :func:`validate`);
2. JPEG: ``Image.draft`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale (the hash only needs
   :data:`CANON` pixels), which is what makes hashing ~3x faster than a full decode;
3. EXIF orientation applied;
4. transparency (alpha channel, palette transparency) composited onto white, as a shop owner sees
   the design on a white page;
5. converted to RGB and resized to ``CANON x CANON`` (LANCZOS).

The output resize (:func:`prepare_output`) is separate: downscale only to fit 3000x3000, LANCZOS,
PNG when the image has transparency, otherwise progressive JPEG quality 85 (the seed's settings).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

CANON = 128  # side of the canonical hashing image
MIN_SIDE = 10  # images under 10 px in either direction are rejected
DEFAULT_MAX_PIXELS = 100_000_000  # decompression-bomb guard (Pillow refuses > ~179 MP anyway)
MAX_OUTPUT_SIDE = 3000
JPEG_QUALITY = 85
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"})
WHITE = (255, 255, 255)


class ImageRejected(ValueError):
    """A file that the pipeline will not process, with a reason a shop owner can read."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class ImageInfo:
    format: str
    mode: str
    width: int
    height: int
    has_alpha: bool


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode in ("P", "L", "RGB") and "transparency" in im.info
    )


def _sixteen_bit(im: Image.Image) -> bool:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return True
    # Pillow may reduce 16-bit-per-channel PNG/TIFF to 8 bits on load; the header still says 16.
    bits = im.info.get("bits") or getattr(im, "bits", None)
    if bits and int(bits) > 8:
        return True
    if im.format == "PNG":
        depth = getattr(im, "_design_png_depth", None)
        if depth and depth > 8:
            return True
    return False


def _png_bit_depth(path: str | os.PathLike[str]) -> int | None:
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def open_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` lazily and validate it; raises :class:`ImageRejected` with the reason."""
    try:
        with warnings.catch_warnings():  # our own limit is checked in validate()
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except UnidentifiedImageError:
        raise ImageRejected("not an image (unrecognised file format)", "not_image") from None
    except Image.DecompressionBombError as exc:  # Pillow's hard stop, 2 x MAX_IMAGE_PIXELS
        raise ImageRejected(f"image over the pixel limit: {exc}", "too_large") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise ImageRejected(f"cannot read the file: {exc}", "unreadable") from None
    except OSError as exc:  # Pillow's decoders report damaged headers as OSError
        raise ImageRejected(f"corrupt or truncated image: {exc}", "corrupt") from None
    if im.format == "PNG":
        im._design_png_depth = _png_bit_depth(path)  # type: ignore[attr-defined]
    validate(im, max_pixels=max_pixels)
    return im


def validate(im: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Header checks (no pixel decode): format, frames, size, pixel limit, colour mode."""
    fmt = im.format or "?"
    if fmt not in ALLOWED_FORMATS:
        raise ImageRejected(f"unsupported image format {fmt}", "format")
    if getattr(im, "is_animated", False) and getattr(im, "n_frames", 1) > 1:
        raise ImageRejected(f"animated image ({im.n_frames} frames) is not a design", "animated")
    w, h = im.size
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageRejected(f"image too small: {w}x{h} px (minimum {MIN_SIDE} px)", "too_small")
    if w * h > max_pixels:
        raise ImageRejected(
            f"image over the pixel limit: {w}x{h} = {w * h} px > {max_pixels}", "too_large"
        )
    if im.mode == "CMYK":
        raise ImageRejected("CMYK image: export it as RGB (sRGB) first", "cmyk")
    if _sixteen_bit(im):
        raise ImageRejected("16-bit image: export it with 8 bits per channel", "16bit")
    return ImageInfo(fmt, im.mode, w, h, _has_alpha(im))


def _load(im: Image.Image) -> None:
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"corrupt or truncated image: {exc}", "corrupt") from None


def flatten(im: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """RGB image with any transparency composited onto ``background``."""
    if im.mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    elif im.mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, background)
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB") if im.mode != "RGB" else im


def decode_for_hash(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS, composite: bool = True
) -> Image.Image:
    """THE decode path for hashing: a ``CANON x CANON`` RGB image. ``composite=False`` reproduces
    the seed's behaviour (alpha dropped, not composited) for the seed configuration."""
    im = open_image(path, max_pixels=max_pixels)
    with im:
        if im.format == "JPEG":
            im.draft("RGB", (CANON, CANON))
        _load(im)
        ImageOps.exif_transpose(im, in_place=True)
        if composite:
            im = flatten(im)
        else:  # the seed: alpha dropped, whatever RGB lies under transparent pixels shows
            im = (im.convert("RGBA") if im.mode == "P" else im).convert("RGB")
        return im.resize((CANON, CANON), Image.Resampling.LANCZOS, reducing_gap=2.0)


@dataclass(frozen=True)
class Prepared:
    path: str
    format: str
    width: int
    height: int
    src_width: int
    src_height: int
    has_alpha: bool


def output_extension(has_alpha: bool) -> str:
    return "png" if has_alpha else "jpg"


def prepare_output(
    src: str | os.PathLike[str],
    dst_stem: str | os.PathLike[str],
    *,
    max_side: int = MAX_OUTPUT_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Prepared:
    """Downscale ``src`` to fit ``max_side`` (never upscale), LANCZOS; write PNG when it has
    transparency, else a progressive JPEG q85, to ``dst_stem`` + extension (temp name + rename).
    """
    from include.common.files import atomic_write_bytes

    im = open_image(src, max_pixels=max_pixels)
    with im:
        info = validate(im, max_pixels=max_pixels)
        _load(im)
        ImageOps.exif_transpose(im, in_place=True)
        if im.mode == "P":
            im = im.convert("RGBA") if info.has_alpha else im.convert("RGB")
        elif info.has_alpha:
            im = im.convert("RGBA")
        elif im.mode != "RGB":
            im = im.convert("RGB")
        if info.has_alpha and im.getchannel("A").getextrema() == (255, 255):
            im = im.convert("RGB")  # an alpha channel that is fully opaque is no transparency
        alpha = im.mode == "RGBA"
        w, h = im.size
        scale = min(1.0, max_side / max(w, h))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        buf = io.BytesIO()
        ext = output_extension(alpha)
        if alpha:
            im.save(buf, "PNG", compress_level=6)
        else:
            im.save(buf, "JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True)
        dst = Path(f"{os.fspath(dst_stem)}.{ext}")
        atomic_write_bytes(dst, buf.getvalue())
        return Prepared(str(dst), "PNG" if alpha else "JPEG", im.width, im.height, w, h, alpha)


def image_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Header facts of an image for reports (no pixel decode)."""
    im = open_image(path)
    with im:
        info = validate(im)
        return {
            "format": info.format,
            "mode": info.mode,
            "width": info.width,
            "height": info.height,
            "has_alpha": info.has_alpha,
        }
