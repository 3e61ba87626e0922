"""Check uploaded photos by their content, never by their name or declared type.

Order of the checks (cheapest first, each with its own clear reason):

1. size: empty, or more than :data:`Limits.max_file_bytes` (20 MB) → ``too_large`` (HTTP 413);
2. magic bytes: only JPEG (``FF D8 FF``) and PNG (``89 50 4E 47 0D 0A 1A 0A``) → ``unsupported_type``
   (HTTP 415), whatever the file name or the browser's ``Content-Type`` say;
3. header — the pipeline's own check, :func:`include.photos.exif.open_image`, so an accepted
   photo is one the pipeline can process: Pillow opens it, the format matches the magic bytes,
   the pixel count is at most :data:`Limits.max_pixels` (decompression-bomb guard) →
   ``too_many_pixels`` (413), CMYK and 16-bit/float images → ``unsupported_mode`` (422);
4. structure: ``Image.verify()`` (PNG: every chunk CRC up to IEND) and a walk over the JPEG marker
   segments that requires the end-of-image marker after the scan — truncated or mangled files →
   ``corrupt`` (422) without decoding pixels; with ``decode_check`` also a (reduced) decode that
   catches broken compressed data behind a sound structure.

Batch rules (1–100 files, 500 MB in total) are checked by :func:`check_batch`. Nothing here touches
the file system: the bytes are in memory and the original name is only kept as a label.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

MB = 1024 * 1024

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "HEIF": "image/heic"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "HEIF": "heic"}
# ISO-BMFF brands of HEIC/HEIF still images (``ftyp`` box at offset 4)
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"heif"}


@dataclass(frozen=True)
class Limits:
    """Upload limits (seed: 1–100 photos, 20 MB each, 500 MB in total; 50 MP per photo)."""

    max_files: int = 100
    max_file_bytes: int = 20 * MB
    max_total_bytes: int = 500 * MB
    max_pixels: int = 50_000_000
    # also decode every photo at upload (JPEG reduced 1/8): catches broken compressed data whose
    # structure is sound (e.g. a PNG with valid CRCs but a bad zlib stream) at ~35 ms per 12 MP
    # JPEG. Off by default: the pipeline decodes anyway and fails that photo's job with the
    # reason, and without it a 100-photo upload is checked in well under the seed's 500 ms.
    # (libjpeg tolerates a JPEG cut short before a kept EOI, so decoding adds little for JPEG.)
    decode_check: bool = False

    @classmethod
    def from_env(cls) -> Limits:
        """Limits overridable through ``IMAGING_WEBAPP_MAX_{FILES,FILE_MB,TOTAL_MB,PIXELS}``."""
        env = os.environ.get
        return cls(
            max_files=int(env("IMAGING_WEBAPP_MAX_FILES", cls.max_files)),
            max_file_bytes=int(float(env("IMAGING_WEBAPP_MAX_FILE_MB", 20)) * MB),
            max_total_bytes=int(float(env("IMAGING_WEBAPP_MAX_TOTAL_MB", 500)) * MB),
            max_pixels=int(env("IMAGING_WEBAPP_MAX_PIXELS", cls.max_pixels)),
            decode_check=env("IMAGING_WEBAPP_DECODE_CHECK", "").lower() in ("1", "true", "yes"),
        )


class Code:
    """Why a file (or the whole upload) was refused, and the HTTP status it maps to."""

    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNSUPPORTED_TYPE = "unsupported_type"
    CORRUPT = "corrupt"
    UNSUPPORTED_MODE = "unsupported_mode"
    EMPTY = "empty"
    NO_FILES = "no_files"
    TOO_MANY_FILES = "too_many_files"
    TOTAL_TOO_LARGE = "total_too_large"

    HTTP = {
        TOO_LARGE: 413,
        TOO_MANY_PIXELS: 413,
        TOTAL_TOO_LARGE: 413,
        UNSUPPORTED_TYPE: 415,
        CORRUPT: 422,
        UNSUPPORTED_MODE: 422,
        EMPTY: 422,
        NO_FILES: 422,
        TOO_MANY_FILES: 422,
    }


# include.photos.exif.BadImageError.kind -> Code
BAD_KIND_CODES = {
    "empty": Code.EMPTY,
    "corrupt": Code.CORRUPT,
    "unsupported_format": Code.UNSUPPORTED_TYPE,
    "too_many_pixels": Code.TOO_MANY_PIXELS,
    "unsupported_mode": Code.UNSUPPORTED_MODE,
}


@dataclass(frozen=True)
class Rejection:
    """One refused file: its position in the upload, its (display-only) name, code and reason."""

    index: int
    filename: str
    code: str
    reason: str

    @property
    def http_status(self) -> int:
        return Code.HTTP[self.code]

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "filename": self.filename,
            "code": self.code,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ValidPhoto:
    """An accepted photo: the bytes plus what the content says it is."""

    index: int
    filename: str  # display label only, never a path
    data: bytes = field(repr=False)
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    mode: str
    sha256: str
    size: int = -1  # bytes; kept when ``data`` is dropped

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.data))

    def without_data(self) -> ValidPhoto:
        """The same result without the bytes (read them again when needed)."""
        return replace(self, data=b"", size=self.size)


class BatchError(ValueError):
    """The upload as a whole is refused (no files, too many files, too many bytes)."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason

    @property
    def http_status(self) -> int:
        return Code.HTTP[self.code]


def display_name(name: str | None, index: int) -> str:
    """A printable label for a user-supplied file name (control characters removed, bounded)."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    return text[:200] or f"file-{index + 1}"


def sniff(data: bytes) -> str | None:
    """``"JPEG"``, ``"PNG"``, ``"HEIF"`` or ``None`` from the first bytes."""
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "HEIF"
    return None


def _human(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n} bytes"


def jpeg_structure_error(data: bytes) -> str | None:
    """Walk the JPEG marker segments from SOI to the first SOS (start of scan); the entropy-coded
    data must be followed by an EOI marker. ``None`` when the structure is sound, else the reason.

    Inside entropy-coded data every ``FF`` byte is followed by ``00`` or a restart marker, so an
    ``FF D9`` after the scan header is the real end of image; data after it (camera trailers) is
    allowed. This catches truncated uploads in microseconds, without decoding a pixel.
    """
    n, i = len(data), 2
    while i < n:
        if data[i] != 0xFF:
            return f"corrupt JPEG structure: no marker at byte {i}"
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            continue
        if marker == 0xD9:
            return "corrupt JPEG structure: end of image before any image data"
        if i + 2 > n:
            break
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            return f"corrupt JPEG structure: bad segment length at byte {i}"
        if marker == 0xDA:  # SOS: the scan data follows its header
            start = i + length
            if start >= n or data.rfind(b"\xff\xd9", start) < 0:
                return "truncated image data: the JPEG has no end-of-image marker after its scan"
            return None
        i += length
    return "truncated image data: the JPEG ends inside its headers"


def too_large(
    index: int, filename: str | None, size: int, limits: Limits | None = None
) -> Rejection:
    """The rejection of a file over the per-file limit (used before reading it)."""
    limits = limits or Limits()
    return Rejection(
        index,
        display_name(filename, index),
        Code.TOO_LARGE,
        f"{_human(size)} exceeds the {_human(limits.max_file_bytes)} limit per photo",
    )


def validate_photo(
    data: bytes, filename: str | None = None, index: int = 0, limits: Limits | None = None
) -> ValidPhoto | Rejection:
    """Validate one uploaded file by content. Returns a :class:`ValidPhoto` or a :class:`Rejection`
    (never raises for bad input)."""
    from PIL import Image

    from include.photos.exif import BadImageError, open_image

    limits = limits or Limits()
    name = display_name(filename, index)

    def reject(code: str, reason: str) -> Rejection:
        return Rejection(index, name, code, reason)

    if not data:
        return reject(Code.EMPTY, "the file is empty")
    if len(data) > limits.max_file_bytes:
        return too_large(index, filename, len(data), limits)
    kind = sniff(data)
    if kind is None:
        return reject(
            Code.UNSUPPORTED_TYPE,
            "not a JPEG, PNG or HEIC image (checked by content: the first bytes are "
            f"{data[:8].hex(' ')})",
        )
    try:  # the pipeline's own header checks: what passes here, the pipeline can process
        img = open_image(data, limits.max_pixels, formats=(kind,))
    except BadImageError as exc:
        if exc.kind == "corrupt":
            return reject(Code.CORRUPT, f"starts like a {kind} file, but {exc}")
        return reject(BAD_KIND_CODES[exc.kind], str(exc))
    w, h = img.size
    mode = img.mode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data)).verify()  # PNG: every chunk's CRC and IEND
            problem = jpeg_structure_error(data) if kind == "JPEG" else None
            if problem is None and limits.decode_check:
                full = Image.open(io.BytesIO(data))
                if kind == "JPEG":
                    full.draft("RGB", (max(1, w // 8), max(1, h // 8)))
                full.load()
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc)
        reason = "truncated" if "truncated" in msg else "corrupt"
        return reject(Code.CORRUPT, f"{reason} image data: {msg}")
    except Exception as exc:  # noqa: BLE001 - any decoder error is a per-file rejection
        return reject(Code.CORRUPT, f"corrupt image data: {type(exc).__name__}: {exc}")
    if problem is not None:
        return reject(Code.CORRUPT, problem)
    return ValidPhoto(
        index=index,
        filename=name,
        data=data,
        format=kind,
        content_type=CONTENT_TYPES[kind],
        extension=EXTENSIONS[kind],
        width=w,
        height=h,
        mode=mode,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def check_batch(sizes: Sequence[int], limits: Limits | None = None) -> None:
    """Refuse the whole upload when it has no file, more than ``max_files`` files or more than
    ``max_total_bytes`` bytes. Raises :class:`BatchError`."""
    limits = limits or Limits()
    if not sizes:
        raise BatchError(Code.NO_FILES, f"no files: send 1 to {limits.max_files} photos as 'files'")
    if len(sizes) > limits.max_files:
        raise BatchError(
            Code.TOO_MANY_FILES,
            f"{len(sizes)} files: at most {limits.max_files} photos per upload",
        )
    total = sum(sizes)
    if total > limits.max_total_bytes:
        raise BatchError(
            Code.TOTAL_TOO_LARGE,
            f"{_human(total)} in total exceeds the {_human(limits.max_total_bytes)} limit per upload",
        )


def validate_batch(
    files: Sequence[tuple[str | None, bytes]], limits: Limits | None = None
) -> tuple[list[ValidPhoto], list[Rejection]]:
    """Check the batch rules, then every file: the good ones go on, each bad one gets its reason."""
    limits = limits or Limits()
    check_batch([len(d) for _, d in files], limits)
    ok: list[ValidPhoto] = []
    bad: list[Rejection] = []
    for i, (name, data) in enumerate(files):
        res = validate_photo(data, name, i, limits)
        (ok if isinstance(res, ValidPhoto) else bad).append(res)  # type: ignore[arg-type]
    return ok, bad


def validate_all(
    files: Sequence[tuple[int, str | None, bytes | Callable[[], bytes]]],
    limits: Limits | None = None,
    workers: int | None = None,
    keep_data: bool = True,
) -> list[ValidPhoto | Rejection]:
    """:func:`validate_photo` for ``(index, name, bytes or a reader)`` items in a thread pool
    (Pillow's decoders and hashlib release the GIL). Keeps the order.

    With readers and ``keep_data=False`` at most ``workers`` files are in memory at once: the
    accepted photos come back without their bytes (the caller reads them again to store them),
    so a 500 MB upload does not need 500 MB of RAM.
    """
    limits = limits or Limits()
    workers = workers or min(8, os.cpu_count() or 1)

    def one(item: tuple[int, str | None, bytes | Callable[[], bytes]]) -> ValidPhoto | Rejection:
        index, name, src = item
        res = validate_photo(src() if callable(src) else src, name, index, limits)
        return res.without_data() if isinstance(res, ValidPhoto) and not keep_data else res

    if workers <= 1 or len(files) <= 1:
        return [one(f) for f in files]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(files))) as pool:
        return list(pool.map(one, files))


def rejection_status(rejections: Sequence[Rejection]) -> int:
    """The HTTP status when *every* file was refused: the shared status when they agree, else 422."""
    statuses = {r.http_status for r in rejections}
    return statuses.pop() if len(statuses) == 1 else 422
