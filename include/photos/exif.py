"""Validate uploaded photo bytes, read their EXIF (camera, time, GPS) and decode them.

Every failure is a :class:`BadImageError` whose message is the readable reason stored in the job
row (``not an image``, ``truncated``, ``too large``, ``CMYK``, ``16-bit``...). A photo without EXIF
is valid: it simply has no GPS (the pipeline then gives it the ``needs_location`` state).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

# 50 MP: above any phone/DSLR photo this pipeline expects, far below a decompression bomb.
DEFAULT_MAX_PIXELS = 50_000_000
SUPPORTED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heic",  # phone cameras' default (HEIC/HEIF), through pillow-heif
}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}


def register_heif() -> bool:
    """Let Pillow open HEIC/HEIF (``pillow-heif``); False when the package is missing."""
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - pinned in requirements.txt
        return False
    pillow_heif.register_heif_opener()
    return True


HEIF_AVAILABLE = register_heif()
SUPPORTED_MODES = {"RGB", "RGBA", "L", "LA", "P", "1"}

TAG_MAKE, TAG_MODEL, TAG_DATETIME, TAG_ORIENTATION, TAG_SOFTWARE = (
    0x010F,
    0x0110,
    0x0132,
    0x0112,
    0x0131,
)
IFD_EXIF, IFD_GPS = 0x8769, 0x8825
TAG_DATETIME_ORIGINAL = 0x9003


class BadImageError(ValueError):
    """The bytes are not a photo this pipeline can process; ``str(exc)`` is the reason and
    ``kind`` what is wrong (one of :data:`BAD_KINDS`, for callers that map it, e.g. to an HTTP
    status)."""

    def __init__(self, reason: str, kind: str = "corrupt"):
        super().__init__(reason)
        self.kind = kind


# BadImageError.kind values
BAD_KINDS = ("empty", "corrupt", "unsupported_format", "too_many_pixels", "unsupported_mode")


@dataclass
class ImageInfo:
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    mode: str
    exif: dict[str, Any] = field(default_factory=dict)  # JSON-safe
    gps: dict[str, float] | None = None  # {lat, lon, altitude?, accuracy?}
    taken_at: str | None = None  # ISO 8601 from DateTimeOriginal / DateTime

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def _num(v: Any) -> float:
    if isinstance(v, tuple) and len(v) == 2:  # old-style rational
        return float(v[0]) / float(v[1]) if v[1] else 0.0
    return float(v)


def _dms_to_deg(dms: Any, ref: Any) -> float:
    d, m, s = (_num(x) for x in dms)
    deg = d + m / 60.0 + s / 3600.0
    if isinstance(ref, bytes):
        ref = ref.decode(errors="ignore")
    if str(ref).strip().upper() in ("S", "W"):
        deg = -deg
    return deg


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    s = str(v).replace("\x00", "").strip()
    return s or None


def _exif_time(v: Any) -> str | None:
    s = _text(v)
    if not s:
        return None
    try:
        return datetime.strptime(s[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def read_exif(img: Image.Image) -> tuple[dict[str, Any], dict[str, float] | None, str | None]:
    """``(exif_metadata, gps, taken_at)``; unreadable or absent EXIF gives empty results."""
    try:
        ex = img.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block must not fail the photo
        return {"exif_error": "unreadable EXIF block"}, None, None
    if not ex:
        return {}, None, None
    meta: dict[str, Any] = {}
    for key, tag in (
        ("camera_make", TAG_MAKE),
        ("camera_model", TAG_MODEL),
        ("software", TAG_SOFTWARE),
    ):
        if (val := _text(ex.get(tag))) is not None:
            meta[key] = val
    if (o := ex.get(TAG_ORIENTATION)) is not None:
        with contextlib.suppress(TypeError, ValueError):
            meta["orientation"] = int(o)
    sub = ex.get_ifd(IFD_EXIF)
    taken = _exif_time(sub.get(TAG_DATETIME_ORIGINAL)) or _exif_time(ex.get(TAG_DATETIME))
    if taken:
        meta["datetime_original"] = taken
    gps: dict[str, float] | None = None
    g = ex.get_ifd(IFD_GPS)
    if g and 2 in g and 4 in g:
        try:
            lat = _dms_to_deg(g[2], g.get(1, "N"))
            lon = _dms_to_deg(g[4], g.get(3, "E"))
        except (TypeError, ValueError, ZeroDivisionError):
            meta["gps_error"] = "unreadable GPS coordinates"
        else:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
                meta["gps_error"] = f"implausible GPS coordinates ({lat}, {lon})"
            else:
                gps = {"lat": round(lat, 7), "lon": round(lon, 7)}
                if 6 in g:
                    try:
                        alt = _num(g[6])
                        ref = g.get(5, b"\x00")
                        if ref in (1, b"\x01"):
                            alt = -alt
                        gps["altitude"] = round(alt, 2)
                    except (TypeError, ValueError, ZeroDivisionError):
                        pass
                if 31 in g:  # GPSHPositioningError (metres)
                    with contextlib.suppress(TypeError, ValueError, ZeroDivisionError):
                        gps["accuracy"] = round(_num(g[31]), 2)
                meta["gps_latitude"] = gps["lat"]
                meta["gps_longitude"] = gps["lon"]
    return meta, gps, taken


def open_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    formats: Collection[str] = tuple(SUPPORTED_FORMATS),
) -> Image.Image:
    """Open ``data`` with Pillow (header only, no pixel decoding) and check what the pipeline can
    process: one of ``formats``, at most ``max_pixels`` (decompression bomb guard), no CMYK, no
    16-bit/float, a supported colour mode. Raises :class:`BadImageError` with the reason. The one
    header check of the pipeline and of the upload validation (``include.webapp.validation``)."""
    if not data:
        raise BadImageError("not an image: the file is empty", "empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(
            f"too large: {exc} (decompression bomb guard)", "too_many_pixels"
        ) from None
    except UnidentifiedImageError:
        raise BadImageError("not an image: unrecognised file format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"not an image: {exc}") from None
    if img.format not in formats:
        raise BadImageError(
            f"unsupported image format {img.format} ({', '.join(formats)} only)",
            "unsupported_format",
        )
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BadImageError("not an image: zero width or height")
    if w * h > max_pixels:
        raise BadImageError(
            f"too large: {w}x{h} = {w * h / 1e6:.1f} MP exceeds the {max_pixels / 1e6:.0f} MP limit "
            "(decompression bomb guard)",
            "too_many_pixels",
        )
    if img.mode == "CMYK":
        raise BadImageError(
            "unsupported colour mode CMYK: convert the photo to RGB", "unsupported_mode"
        )
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F") or img.mode.startswith("I;"):
        raise BadImageError(
            f"unsupported 16-bit/float image (mode {img.mode}): export as 8-bit RGB",
            "unsupported_mode",
        )
    if img.mode not in SUPPORTED_MODES:
        raise BadImageError(f"unsupported colour mode {img.mode}", "unsupported_mode")
    return img


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Validate the header and read EXIF without decoding the pixels."""
    img = open_image(data, max_pixels)
    meta, gps, taken = read_exif(img)
    return ImageInfo(
        format=img.format or "",
        content_type=SUPPORTED_FORMATS[img.format or ""],
        extension=EXTENSIONS[img.format or ""],
        width=img.size[0],
        height=img.size[1],
        mode=img.mode,
        exif=meta,
        gps=gps,
        taken_at=taken,
    )


def decode_rgb(
    data: bytes, max_long_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Image.Image, float]:
    """Decode to upright RGB, reduced so the long side is about ``max_long_side`` (JPEG DCT
    scaling when possible: 1/2, 1/4, 1/8 decode much faster than full size).

    Returns ``(image, scale)`` where ``scale`` = original pixels per returned pixel. Truncated
    or corrupt pixel data raises :class:`BadImageError`.
    """
    img = open_image(data, max_pixels)
    w, h = img.size
    if max_long_side and img.format == "JPEG" and max(w, h) > max_long_side:
        k = 1
        while k < 8 and max(w, h) / (k * 2) >= max_long_side:
            k *= 2
        if k > 1:
            img.draft("RGB", (w // k, h // k))
    try:
        img.load()
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg:
            raise BadImageError(f"truncated image data ({msg})") from None
        raise BadImageError(f"corrupt image data: {msg}") from None
    except (SyntaxError, ValueError) as exc:
        raise BadImageError(f"corrupt image data: {exc}") from None
    img = ImageOps.exif_transpose(img) or img
    if img.mode != "RGB":
        img = (
            img.convert("RGBA").convert("RGB")
            if img.mode in ("P", "LA", "RGBA")
            else img.convert("RGB")
        )
    if max_long_side and max(img.size) > max_long_side:
        k = max(img.size) // max_long_side
        if k >= 2:
            img = img.reduce(k)
        if max(img.size) > 1.1 * max_long_side:  # finish with a (cheap) bilinear resize
            f = max_long_side / max(img.size)
            size = (max(1, round(img.width * f)), max(1, round(img.height * f)))
            img = img.resize(size, Image.Resampling.BILINEAR)
    # scale: original long side / decoded long side (orientation-independent)
    scale = max(w, h) / max(img.size)
    return img, scale


def thumbnail_bytes(
    img: Image.Image, size: int = 300, fmt: str = "JPEG", quality: int = 80
) -> bytes:
    """The seed's ``size`` x ``size`` gallery thumbnail (centre crop, so the grid is regular),
    JPEG quality 80 as in the seed, or WebP."""
    t = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    t.save(buf, fmt, quality=quality)
    return buf.getvalue()
