"""Find raw calibration frames (BIAS, DARK, FLAT) and group them for integration into masters.

A frame's properties are parsed exactly as the lights pipeline parses frames
(:func:`include.astro.frames.build_frame`: ``KEY_value`` tokens in the path first, then the FITS
header - ``IMAGETYP``, ``INSTRUME``, ``TELESCOP``, ``FOCRATIO``, ``GAIN``, ``OFFSET``, ``SET-TEMP``,
``EXPOSURE``, ``FILTER``, ``DATE-OBS``, ``READOUTM``), so master properties and light properties
are normalised the same way.

Grouping keys (one master per group) are the properties the lights pipeline matches masters on:

* BIAS: camera, gain, offset, settemp, readout mode
* DARK: the bias key + exposure (``DARKFLAT`` frames are darks)
* FLAT: the bias key + optic, focal ratio, filter, night date (flats are normalised, so their
  exposure may vary within a group)

Bad frames never stop the scan: an unreadable frame becomes a :class:`FrameError` attached to the
group it would belong to (when its path tells enough) or to the scan's ``errors``; a group with a
corrupt frame, mixed frame sizes or too few frames is marked invalid with a clear reason and no
master is made for it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.astro.matching import MASTER_KEYS

CAL_TYPES = ("BIAS", "DARK", "FLAT")
FITS_SUFFIXES = (".fits", ".fit", ".fts")
SCANNED_SUFFIXES = (*FITS_SUFFIXES, ".xisf")  # XISF frames are found and reported, not integrated
# One master per distinct value of these properties: exactly the properties the lights pipeline
# matches masters on (darks: exposure, settemp, camera, gain, offset, readout mode; flats: date,
# optic, filter, settemp, camera, gain, offset, readout mode; bias: no exposure).
GROUP_PROPS = MASTER_KEYS  # defined once, in include.astro.matching
TYPE_ALIASES = {"DARKFLAT": "DARK"}  # dark flats are darks at the flats' exposure


@dataclass(frozen=True)
class CalFrame:
    """A raw calibration frame: the lights pipeline's normalised :class:`Frame` fields we group on,
    its raw ``DATE-OBS`` and its image geometry."""

    path: str
    imagetyp: str
    camera: str | None = None
    optic: str | None = None
    fratio: str | None = None
    gain: str | None = None
    offset: str | None = None
    settemp: str | None = None
    exposure: str | None = None
    filter: str | None = None
    date: str | None = None
    readoutmode: str | None = None
    date_obs: str | None = None
    width: int = 0
    height: int = 0
    bitpix: int = 0

    def prop(self, name: str) -> str | None:
        return getattr(self, name)


@dataclass
class FrameError:
    path: str
    reason: str


@dataclass
class CalGroup:
    """Frames that integrate into one master."""

    imagetyp: str
    props: dict[str, str | None]
    frames: list[CalFrame] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return group_key(self.imagetyp, self.props)

    @property
    def group_id(self) -> str:
        digest = hashlib.sha1(self.key.encode()).hexdigest()[:8]
        parts = [self.imagetyp.lower()]
        for name in ("camera", "filter", "exposure", "date"):
            v = self.props.get(name)
            if v:
                parts.append(str(v))
        slug = re.sub(r"[^A-Za-z0-9.+-]+", "-", "_".join(parts)).strip("-")
        return f"{slug}_{digest}"

    @property
    def date_obs(self) -> str | None:
        """The earliest ``DATE-OBS`` of the group (written into the master's header)."""
        stamps = sorted(f.date_obs for f in self.frames if f.date_obs)
        return stamps[0] if stamps else None

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "imagetyp": self.imagetyp,
            "props": dict(self.props),
            "date_obs": self.date_obs,
            "frames": [f.path for f in self.frames],
            "n_frames": len(self.frames),
            "shape": [self.frames[0].height, self.frames[0].width] if self.frames else None,
            "errors": [asdict(e) for e in self.errors],
            "problems": list(self.problems),
            "valid": self.valid,
        }


def group_key(imagetyp: str, props: dict[str, str | None]) -> str:
    return "|".join([imagetyp] + [f"{k}={props.get(k) or ''}" for k in GROUP_PROPS[imagetyp]])


def _cal_type(imagetyp: str | None) -> str | None:
    if not imagetyp:
        return None
    t = TYPE_ALIASES.get(imagetyp, imagetyp)
    return t if t in CAL_TYPES else None


def read_frame(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> CalFrame:
    """Parse one raw calibration frame (names first, then the header, like the lights pipeline).

    Raises ``ValueError`` with a clear reason for a frame that cannot be integrated (unreadable or
    truncated file, no 2-D image, not a calibration frame, missing properties)."""
    from include.astro.frames import build_frame, fields_from_header, parse_name
    from include.astro.headers import HeaderError, read_header

    if not str(path).lower().endswith(FITS_SUFFIXES):
        raise ValueError("only FITS frames can be integrated (convert XISF frames to FITS)")
    try:
        cards = read_header(path)  # also detects truncated data
    except HeaderError as exc:
        raise ValueError(exc.reason) from exc
    if int(cards.get("NAXIS") or 0) != 2:
        raise ValueError(f"expected a 2-D image, NAXIS={cards.get('NAXIS')}")
    frame = build_frame(path, parse_name(path, root), fields_from_header(cards))
    imagetyp = _cal_type(frame.imagetyp)
    if imagetyp is None:
        raise ValueError(f"not a raw calibration frame (IMAGETYP={frame.imagetyp!r})")
    obs = cards.get("DATE-OBS")
    return CalFrame(
        path=str(path),
        imagetyp=imagetyp,
        camera=frame.camera,
        optic=frame.optic,
        fratio=frame.fratio,
        gain=frame.gain,
        offset=frame.offset,
        settemp=frame.settemp,
        exposure=frame.exposure,
        filter=frame.filter if imagetyp == "FLAT" else None,
        date=frame.date,
        readoutmode=frame.readoutmode,
        date_obs=str(obs) if obs else None,
        width=int(cards["NAXIS1"]),
        height=int(cards["NAXIS2"]),
        bitpix=int(cards["BITPIX"]),
    )


def iter_frame_paths(root: str | os.PathLike[str], skip_dirs: Iterable[str] = ()) -> list[Path]:
    """FITS files under ``root`` in a stable order; hidden and ``_``-prefixed folders (work areas,
    stashes) are skipped."""
    root = Path(root)
    skip = set(skip_dirs)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")) and d not in skip)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.lower().endswith(SCANNED_SUFFIXES):
                out.append(Path(dirpath) / name)
    return out


@dataclass
class ScanResult:
    groups: list[CalGroup]
    errors: list[FrameError]  # frames that could not be attached to any group

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "errors": [asdict(e) for e in self.errors],
        }


def group_frames(
    root: str | os.PathLike[str], *, min_frames: int = 3, skip_dirs: Iterable[str] = ()
) -> ScanResult:
    """Scan ``root`` and group every calibration frame; validate each group.

    A frame that cannot be read is attached to every group its path agrees with (the properties
    its name tells), so those groups are held back rather than integrated without it; when no group
    agrees it forms an invalid group of its own, or - when even the camera is unknown - it is
    reported in ``ScanResult.errors``."""
    groups: dict[str, CalGroup] = {}
    broken: list[tuple[FrameError, dict[str, str | None], str | None]] = []
    for path in iter_frame_paths(root, skip_dirs):
        try:
            frame = read_frame(path, root)
        except (ValueError, OSError, KeyError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            gprops, imagetyp = _props_from_name(path, root)
            broken.append((FrameError(str(path), reason), gprops, imagetyp))
            continue
        gprops = {k: frame.prop(k) for k in GROUP_PROPS[frame.imagetyp]}
        key = group_key(frame.imagetyp, gprops)
        groups.setdefault(key, CalGroup(frame.imagetyp, gprops)).frames.append(frame)
    loose: list[FrameError] = []
    for err, gprops, imagetyp in broken:
        if imagetyp is None or not gprops.get("camera"):
            loose.append(err)
            continue
        known = {k: v for k, v in gprops.items() if v is not None}
        matches = [
            g
            for g in groups.values()
            if g.imagetyp == imagetyp and all(g.props.get(k) == v for k, v in known.items())
        ]
        if not matches:
            matches = [groups.setdefault(group_key(imagetyp, gprops), CalGroup(imagetyp, gprops))]
        for g in matches:
            g.errors.append(err)
    result = sorted(groups.values(), key=lambda g: (CAL_TYPES.index(g.imagetyp), g.key))
    for g in result:
        validate_group(g, min_frames=min_frames)
    return ScanResult(result, loose)


def _props_from_name(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None
) -> tuple[dict[str, str | None], str | None]:
    """Group properties told by the path alone (for frames whose header cannot be read)."""
    from include.astro.frames import FrameError as ParseError
    from include.astro.frames import build_frame, parse_name

    folder: dict[str, str] = {}
    for part in Path(path).parts:  # calibration input area: .../<TYPE>/<optic>+<camera>/...
        m = re.fullmatch(r"([^+@/\\]+)\+([^/\\]+)", part)
        if m:
            folder = {"optic": m.group(1), "camera": m.group(2)}
            break
    try:
        frame = build_frame(path, parse_name(path, root), folder)
    except (ParseError, ValueError):
        return {}, None
    imagetyp = _cal_type(frame.imagetyp)
    if imagetyp is None:
        return {}, None
    return {k: getattr(frame, k) for k in GROUP_PROPS[imagetyp]}, imagetyp


def validate_group(group: CalGroup, *, min_frames: int = 3) -> None:
    problems: list[str] = []
    if group.errors:
        problems.append(
            f"{len(group.errors)} corrupt/unreadable frame(s): "
            + "; ".join(f"{Path(e.path).name}: {e.reason}" for e in group.errors)
        )
    if len(group.frames) < min_frames:
        problems.append(f"too few frames: {len(group.frames)} < {min_frames}")
    shapes = sorted({(f.height, f.width) for f in group.frames})
    if len(shapes) > 1:
        problems.append(f"mismatched frame sizes: {', '.join(f'{h}x{w}' for h, w in shapes)}")
    bitpixes = sorted({f.bitpix for f in group.frames})
    if len(bitpixes) > 1:
        problems.append(f"mixed BITPIX: {bitpixes}")
    if not group.props.get("camera"):
        problems.append("camera unknown (no INSTRUME header and no rig folder)")
    group.problems = problems


def _preview(path: str, size: int) -> Any:
    """A stretched 8-bit preview of a frame (streaming read: see :mod:`include.astro.preview`;
    16-bit NINA frames with ``BZERO=32768`` work, astropy's memmap refuses them)."""
    from include.astro.preview import preview_image

    return preview_image(path, size)


def contact_sheet(
    group: CalGroup | dict[str, Any],
    out_path: str | os.PathLike[str],
    *,
    thumb: int = 320,
    max_frames: int = 24,
    columns: int = 4,
) -> str:
    """A PNG grid of stretched previews of the group's frames (for the blink approval)."""
    from PIL import Image, ImageDraw

    from include.common.files import atomic_write_bytes

    g = group.to_dict() if isinstance(group, CalGroup) else group
    paths = list(g["frames"])[:max_frames]
    n = max(1, len(paths))
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    label_h = 28
    sheet = Image.new("L", (cols * thumb, rows * (thumb + label_h) + 18), color=0)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), f"{g['group_id']} ({g['n_frames']} frames)", fill=255)
    for i, p in enumerate(paths):
        x, y = (i % cols) * thumb, 18 + (i // cols) * (thumb + label_h)
        try:
            sheet.paste(_preview(p, thumb), (x, y))
        except Exception as exc:  # a broken frame shows as a labelled blank tile
            draw.text((x + 4, y + 4), f"unreadable: {type(exc).__name__}", fill=255)
        name = Path(p).name
        draw.text((x + 2, y + thumb), name[:52], fill=200)
        if len(name) > 52:
            draw.text((x + 2, y + thumb + 13), name[52:104], fill=200)
    import io

    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(out_path, buf.getvalue())
    return str(out_path)
