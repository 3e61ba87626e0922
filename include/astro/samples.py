"""Deterministic sample data for the astrophotography pipelines (demo setup, tests, benchmark).

* :func:`write_fits` / :func:`write_xisf` - minimal, dependency-free writers (numpy only) of a 2-D
  frame with header keywords (FITS: 16-bit with BZERO 32768; XISF: monolithic, Float32 attachment).
* :func:`star_field` - a small frame with Gaussian stars (width from the HFR) and noise.
* :func:`sky_frame` - a light that looks like one (one sky per target, dithered, Moffat stars,
  nebulosity, clouds and trails from the name's STARS/RMSAC) for the blink page.
* :func:`generate_raw_tree` - a NINA output tree for three rigs (C8E, SQA55, DWARFIII): lights with
  ``HFR/STARS/RMSAC/TEMP`` tokens (including empty ones like ``HFR__``), BIAS/DARK/FLAT frames, a
  ``_stash`` folder and bad files (unparseable name, truncated FITS, not-a-FITS).
* :func:`generate_library` - master BIAS/DARK/FLAT frames (XISF) in ``_Bias Library``,
  ``_Dark Library``, ``_Flat Stash`` for calibration distribution (one rig is left without flats so
  the run summary reports MISSING masters).
* :func:`generate_demo` - both, returns the DAG conf ``{"raw_dir", "library_dir", "rigs"}``.
* :func:`generate_bulk` - N NINA-named FITS lights for the header-scan benchmark.

Everything is a pure function of the arguments (fixed seeds, fixed timestamps): two runs produce
byte-identical trees.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from include.astro import layout

NIGHT = "2026-11-20"

C8E = "C8E@f10.0+ZWO ASI2600MM Pro"
SQA55 = "SQA55@f5.3+ATR585M"
DWARF = "DWARFIII@f4.3+DWARFIII"
SAMPLE_RIGS = (C8E, SQA55, DWARF)


def _card(key: str, value: Any, comment: str = "") -> bytes:
    if isinstance(value, bool):
        v = "T".rjust(20)
    elif isinstance(value, int):
        v = str(value).rjust(20)
    elif isinstance(value, float):
        v = repr(value).upper().rjust(20)
    else:
        s = str(value).replace("'", "''")
        v = f"'{s:<8}'"
    text = f"{key:<8}= {v}"
    if comment:
        text += f" / {comment}"
    if len(text) > 80:
        raise ValueError(f"card too long for {key}")
    return text.ljust(80).encode("ascii")


def fits_bytes(data: np.ndarray, keywords: Mapping[str, Any]) -> bytes:
    """A single-HDU FITS file: 16-bit unsigned pixels stored as BITPIX 16 + BZERO 32768."""
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError("expected a 2-D frame")
    cards = [
        _card("SIMPLE", True),
        _card("BITPIX", 16),
        _card("NAXIS", 2),
        _card("NAXIS1", int(arr.shape[1])),
        _card("NAXIS2", int(arr.shape[0])),
        _card("BZERO", 32768),
        _card("BSCALE", 1),
    ]
    for k, v in keywords.items():
        if v is None:
            continue
        cards.append(_card(k, v))
    cards.append(b"END".ljust(80))
    header = b"".join(cards)
    header += b" " * (-len(header) % 2880)
    pix = (np.clip(arr, 0, 65535).astype(np.int32) - 32768).astype(">i2").tobytes()
    pix += b"\0" * (-len(pix) % 2880)
    return header + pix


def write_fits(path: str | os.PathLike[str], data: np.ndarray, keywords: Mapping[str, Any]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(fits_bytes(data, keywords))
    return p


def _fits_value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, int | float):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def xisf_bytes(data: np.ndarray, keywords: Mapping[str, Any]) -> bytes:
    """A monolithic XISF 1.0 file with one Float32 grayscale image and FITSKeyword elements."""
    arr = np.ascontiguousarray(np.asarray(data, dtype="<f4"))
    h, w = arr.shape
    kws = "".join(
        f'<FITSKeyword name={quoteattr(k)} value={quoteattr(_fits_value_text(v))} comment=""/>'
        for k, v in keywords.items()
        if v is not None
    )

    def xml(pos: int) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<xisf version="1.0" xmlns="http://www.pixinsight.com/xisf">'
            f'<Image geometry="{w}:{h}:1" sampleFormat="Float32" colorSpace="Gray" '
            f'location="attachment:{pos:010d}:{arr.nbytes:010d}">{kws}</Image></xisf>'
        ).encode()

    probe = xml(0)
    pos = 16 + len(probe)
    pos += -pos % 4096
    body = xml(pos)
    assert len(body) == len(probe)
    head = b"XISF0100" + struct.pack("<II", len(body), 0) + body
    head += b"\0" * (pos - len(head))
    return head + arr.tobytes()


def write_xisf(path: str | os.PathLike[str], data: np.ndarray, keywords: Mapping[str, Any]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(xisf_bytes(data, keywords))
    return p


def star_field(seed: int, hfr: float | None, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Background + noise + ~8 Gaussian stars whose half-flux radius is about ``hfr`` pixels."""
    rng = np.random.default_rng(seed)
    h, w = shape
    img = rng.normal(1200.0, 25.0, size=shape)
    sigma = max(0.6, (hfr or 2.5) / 1.1774)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(8):
        y, x = rng.uniform(4, h - 4), rng.uniform(4, w - 4)
        amp = rng.uniform(3000, 20000)
        img += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return np.clip(img, 0, 65535).astype(np.uint16)


def star_frame(
    seed: int,
    shape: tuple[int, int],
    n_stars: int,
    sigma: float = 1.8,
    elongation: float = 1.0,
    background: float = 1000.0,
    noise: float = 20.0,
) -> np.ndarray:
    """A large synthetic light (uint16): background + Gaussian noise + ``n_stars`` Gaussian stars
    of width ``sigma`` (x-axis stretched by ``elongation``: trails). Stars are added as 25 px
    stamps, so a 26 Mpx frame with thousands of stars takes about a second to make."""
    rng = np.random.default_rng(seed)
    h, w = shape
    img = rng.normal(background, noise, size=shape).astype(np.float32)
    half = 12
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    ys = rng.uniform(half, h - half - 1, n_stars)
    xs = rng.uniform(half, w - half - 1, n_stars)
    amps = rng.uniform(300, 20000, n_stars).astype(np.float32)
    for y, x, a in zip(ys, xs, amps, strict=True):
        iy, ix = int(y), int(x)
        dy, dx = y - iy, x - ix
        g = np.exp(
            -((yy - dy) ** 2 / (2 * sigma**2) + (xx - dx) ** 2 / (2 * (sigma * elongation) ** 2))
        )
        img[iy - half : iy + half + 1, ix - half : ix + half + 1] += a * g
    return np.clip(img, 0, 65535).astype(np.uint16)


MOFFAT_BETA = 4.765  # Trujillo et al. 2001: a typical seeing-limited star
# flux-weighted mean radius (NINA's HFR) of a Moffat profile in units of its alpha
MOFFAT_MEAN_RADIUS = 0.5095


def sky_frame(
    field_seed: int,
    frame_seed: int,
    shape: tuple[int, int],
    hfr: float | None,
    stars: int | None = None,
    rmsac: float | None = None,
) -> np.ndarray:
    """A light that looks like one (uint16): the same sky for every frame of one ``field_seed``
    (stars with a power-law brightness, faint nebulosity, a sky gradient), shifted by a small
    dither per ``frame_seed``, with Moffat stars whose half-flux radius is ``hfr`` pixels.

    NINA's name decides the frame's quality: a low ``stars`` count dims the stars and brightens
    the sky (thin clouds), a guiding error ``rmsac`` over 1.5" stretches the stars along x
    (trails). Stars are added as stamps: a 600x800 frame takes a few tens of milliseconds."""
    field = np.random.default_rng(field_seed)
    frame = np.random.default_rng(frame_seed)
    h, w = shape
    n_field = max(40, int(h * w / 1200))
    ys = field.uniform(0, h, n_field)
    xs = field.uniform(0, w, n_field)
    amps = (60.0 / field.uniform(0.004, 1.0, n_field) ** 0.75).astype(np.float32)
    transparency = 1.0 if not stars else float(np.clip(stars / 800.0, 0.15, 1.0))
    dy, dx = frame.uniform(-3, 3, 2)
    # sky: pedestal + gradient + nebulosity (same for the field) + cloud glow
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = 1000.0 + 60.0 * (yy / h) + 30.0 * (xx / w) + 350.0 * (1.0 - transparency)
    for _ in range(4):
        cy, cx = field.uniform(0, h), field.uniform(0, w)
        sy, sx = field.uniform(0.08, 0.3) * h, field.uniform(0.08, 0.3) * w
        sky += field.uniform(40, 160) * np.exp(
            -(((yy - cy - dy) / sy) ** 2 + ((xx - cx - dx) / sx) ** 2) / 2
        )
    img = frame.normal(sky, 14.0).astype(np.float32)
    alpha = max(0.8, (hfr or 2.5) / MOFFAT_MEAN_RADIUS)
    stretch = float(np.clip((rmsac or 0.0) / 0.6, 1.0, 3.0)) if (rmsac or 0) > 1.5 else 1.0
    half = int(min(40, max(8, 4 * alpha * stretch)))
    sy_, sx_ = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    for y, x, a in zip(ys + dy, xs + dx, amps * transparency, strict=True):
        iy, ix = int(round(y)), int(round(x))
        y0, y1, x0, x1 = iy - half, iy + half + 1, ix - half, ix + half + 1
        if y1 <= 0 or x1 <= 0 or y0 >= h or x0 >= w:
            continue
        r2 = (sy_ - (y - iy)) ** 2 + ((sx_ - (x - ix)) / stretch) ** 2
        psf = a * (1 + r2 / alpha**2) ** -MOFFAT_BETA
        cy0, cx0 = max(0, -y0), max(0, -x0)
        cy1, cx1 = psf.shape[0] - max(0, y1 - h), psf.shape[1] - max(0, x1 - w)
        img[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)] += psf[cy0:cy1, cx0:cx1]
    return np.clip(img, 0, 65535).astype(np.uint16)


def flat_field(seed: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    vignette = 1.0 - 0.3 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2)
    return np.clip(rng.normal(30000.0, 150.0, size=shape) * vignette, 0, 65535).astype(np.uint16)


def dark_field(seed: int, level: float, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 12.0, size=shape), 0, 65535).astype(np.uint16)


def _fmt_metric(key: str, value: Any) -> str:
    return f"{key}_" + ("" if value is None else str(value))


@dataclass(frozen=True)
class SampleLight:
    """One light of the sample tree (values as written into the name/header)."""

    rig: str
    target_dir: str | None  # folder above DATE_ (None: target only in the OBJECT header)
    obj: str  # OBJECT header
    filter_name: str  # as NINA writes it (Ha, O3, L, '')
    exp: str  # as in the name, e.g. '300.00s'
    time: str  # UTC HH:MM:SS on the morning after NIGHT
    hfr: str | None
    stars: int | None
    rmsac: str | None
    temp: str
    settemp_in_name: bool = True


def _rig_parts(rig: str) -> tuple[str, str, str]:
    optic, rest = rig.split("@f", 1)
    fratio, camera = rest.split("+", 1)
    return optic, fratio, camera


RIG_CAMERA_SETTINGS: dict[str, dict[str, Any]] = {
    C8E: {"SET-TEMP": -10.0, "GAIN": 100, "OFFSET": 50, "READOUTM": None},
    SQA55: {"SET-TEMP": -5.0, "GAIN": 100, "OFFSET": 20, "READOUTM": "Normal"},
    DWARF: {"SET-TEMP": None, "GAIN": 60, "OFFSET": None, "READOUTM": None},
}

SAMPLE_LIGHTS: tuple[SampleLight, ...] = (
    # C8E, Ha: 2 of 7 flagged (HFR 4.80 > 4.6, RMS 2.50 > 2): 28.6% < 30% -> auto reject in
    # pass 1; HFR__/STARS__ (empty values) never reject
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "Ha", "300.00s", "03:00:00", "2.10", 812, "0.61", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "Ha", "300.00s", "03:05:10", "2.31", 790, "0.58", "-9.9"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "Ha", "300.00s", "03:10:20", "4.80", 301, "0.70", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "Ha", "300.00s", "03:15:30", None, None, "0.66", "-10.1"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "Ha", "300.00s", "03:20:40", "2.20", 805, "2.50", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "Ha", "300.00s", "03:30:00", "2.40", 770, "0.63", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "Ha", "300.00s", "03:35:10", "2.25", 801, "0.60", "-10.0"
    ),
    # C8E, O3: 3 of 5 over 4.6 (60% -> approval); pass 2 (5.5) flags only the 6.00
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "O3", "300.00s", "04:00:00", "2.50", 700, "0.60", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "O3", "300.00s", "04:05:10", "4.90", 410, "0.62", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "O3", "300.00s", "04:10:20", "5.00", 400, "0.64", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "O3", "300.00s", "04:15:30", "2.60", 690, "0.59", "-10.0"
    ),
    SampleLight(
        C8E, "NGC 7000", "NGC 7000", "O3", "300.00s", "04:20:40", "6.00", 150, "0.65", "-10.0"
    ),
    # SQA55, L, panel from the target folder; one frame without SETTEMP in its path (header fallback)
    SampleLight(
        SQA55,
        "M 42 Panel 1",
        "M 42 Panel 1",
        "L",
        "120.00s",
        "05:00:00",
        "1.90",
        1500,
        "0.80",
        "-5.0",
    ),
    SampleLight(
        SQA55,
        "M 42 Panel 1",
        "M 42 Panel 1",
        "L",
        "120.00s",
        "05:02:10",
        "2.00",
        1490,
        "0.82",
        "-5.0",
    ),
    SampleLight(
        SQA55,
        "M 42 Panel 1",
        "M 42 Panel 1",
        "L",
        "120.00s",
        "05:04:20",
        "1.95",
        1510,
        "0.79",
        "-5.1",
        False,
    ),
    SampleLight(
        SQA55,
        "M 42 Panel 1",
        "M 42 Panel 1",
        "L",
        "120.00s",
        "05:06:30",
        "2.05",
        1480,
        "0.81",
        "-5.0",
    ),
    # DWARFIII: no guiding (RMSAC__), no set temp; target only in the header
    SampleLight(DWARF, None, "M 45", "", "15.00s", "02:00:00", "3.10", 400, None, "21.0"),
    SampleLight(DWARF, None, "M 45", "", "15.00s", "02:00:20", "3.20", 390, None, "21.0"),
    SampleLight(DWARF, None, "M 45", "", "15.00s", "02:00:40", "3.00", 410, None, "21.0"),
)


def _light_path(raw_dir: Path, s: SampleLight, index: int) -> Path:
    cam = RIG_CAMERA_SETTINGS[s.rig]
    base = raw_dir / s.rig / "LIGHT"
    if s.target_dir:
        base = base / s.target_dir
    group = f"FILTER_{s.filter_name}_EXP_{s.exp}"
    if s.settemp_in_name and cam["SET-TEMP"] is not None:
        group += f"_SETTEMP_{cam['SET-TEMP']:.2f}"
    if cam["GAIN"] is not None:
        group += f"_GAIN_{cam['GAIN']}"
    if cam["OFFSET"] is not None:
        group += f"_OFFSET_{cam['OFFSET']}"
    if cam["READOUTM"]:
        group += f"_READOUTM_{cam['READOUTM']}"
    stamp = f"2026-11-21_{s.time.replace(':', '-')}"
    name = "_".join(
        [
            stamp,
            _fmt_metric("HFR", s.hfr),
            _fmt_metric("STARS", s.stars),
            _fmt_metric("RMSAC", s.rmsac),
            _fmt_metric("TEMP", s.temp),
            f"{index:04d}",
        ]
    )
    return base / f"DATE_{NIGHT}" / group / f"{name}.fits"


def _light_header(s: SampleLight) -> dict[str, Any]:
    optic, fratio, camera = _rig_parts(s.rig)
    cam = RIG_CAMERA_SETTINGS[s.rig]
    return {
        "IMAGETYP": "LIGHT",
        "DATE-OBS": f"2026-11-21T{s.time}.000",
        "EXPOSURE": float(s.exp.rstrip("s")),
        "OBJECT": s.obj,
        "FILTER": s.filter_name or None,
        "TELESCOP": optic,
        "FOCRATIO": float(fratio),
        "INSTRUME": camera,
        "SET-TEMP": cam["SET-TEMP"],
        "CCD-TEMP": float(s.temp),
        "GAIN": cam["GAIN"],
        "OFFSET": cam["OFFSET"],
        "READOUTM": cam["READOUTM"],
    }


def _light_data(s: SampleLight, i: int, shape: tuple[int, int] | None) -> np.ndarray:
    hfr = float(s.hfr) if s.hfr else None
    if shape is None:
        return star_field(1000 + i, hfr)
    field = sum(map(ord, f"{s.rig}/{s.obj}"))  # one sky per rig and target
    rms = float(s.rmsac) if s.rmsac else None
    return sky_frame(field, 1000 + i, shape, hfr, s.stars, rms)


def generate_raw_tree(
    raw_dir: str | os.PathLike[str], light_shape: tuple[int, int] | None = None
) -> dict[str, list[str]]:
    """Write the NINA raw tree; returns ``{"lights", "calibration", "bad", "stash"}`` relative paths.

    ``light_shape`` (rows, columns): lights of that size drawn by :func:`sky_frame` (one sky per
    target, Moffat stars, clouds and trails from the name's STARS and RMSAC), e.g. ``(600, 800)``
    for a blink page worth looking at; default: 48x64 :func:`star_field` frames (fast)."""
    raw = Path(raw_dir)
    out: dict[str, list[str]] = {"lights": [], "calibration": [], "bad": [], "stash": []}
    for i, s in enumerate(SAMPLE_LIGHTS):
        p = _light_path(raw, s, i + 1)
        write_fits(p, _light_data(s, i, light_shape), _light_header(s))
        out["lights"].append(str(p.relative_to(raw)))

    def calib(rig: str, typ: str, group: str, time: str, n: int, extra: dict[str, Any]) -> None:
        optic, fratio, camera = _rig_parts(rig)
        cam = RIG_CAMERA_SETTINGS[rig]
        for k in range(n):
            t = f"{time[:-2]}{int(time[-2:]) + 10 * k:02d}"
            name = f"2026-11-21_{t.replace(':', '-')}_{typ}_{k + 1:04d}.fits"
            p = raw / rig / typ / f"DATE_{NIGHT}" / group / name
            hdr = {
                "IMAGETYP": typ,
                "DATE-OBS": f"2026-11-21T{t}.000",
                "TELESCOP": optic,
                "FOCRATIO": float(fratio),
                "INSTRUME": camera,
                "SET-TEMP": cam["SET-TEMP"],
                "GAIN": cam["GAIN"],
                "OFFSET": cam["OFFSET"],
                "READOUTM": cam["READOUTM"],
                **extra,
            }
            data = flat_field(k) if typ == "FLAT" else dark_field(k, 900.0)
            write_fits(p, data, hdr)
            out["calibration"].append(str(p.relative_to(raw)))

    calib(
        C8E,
        "DARK",
        "EXP_300.00s_SETTEMP_-10.00_GAIN_100_OFFSET_50",
        "11:00:00",
        3,
        {"EXPOSURE": 300.0},
    )
    calib(
        C8E, "BIAS", "EXP_0.00s_SETTEMP_-10.00_GAIN_100_OFFSET_50", "11:30:00", 2, {"EXPOSURE": 0.0}
    )
    calib(
        SQA55,
        "FLAT",
        "FILTER_L_EXP_1.50s_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal",
        "06:00:00",
        3,
        {"EXPOSURE": 1.5, "FILTER": "L"},
    )

    # bad input
    bad_dir = (
        raw
        / C8E
        / "LIGHT"
        / "NGC 7000"
        / f"DATE_{NIGHT}"
        / "FILTER_Ha_EXP_300.00s_SETTEMP_-10.00_GAIN_100_OFFSET_50"
    )
    trunc = bad_dir / "2026-11-21_03-25-50_HFR_2.20_STARS_800_RMSAC_0.60_TEMP_-10.0_0099.fits"
    s0 = SAMPLE_LIGHTS[0]
    full = fits_bytes(
        star_field(99, 2.2), {**_light_header(s0), "DATE-OBS": "2026-11-21T03:25:50.000"}
    )
    trunc.write_bytes(full[: 2880 + 1000])
    out["bad"].append(str(trunc.relative_to(raw)))
    junk = raw / C8E / "LIGHT" / "NGC 7000" / f"DATE_{NIGHT}" / "notes_0001.fits"
    junk.write_bytes(b"this is not a FITS file\n" * 10)
    out["bad"].append(str(junk.relative_to(raw)))
    noname = raw / "unsorted" / "capture_0001.fits"
    write_fits(noname, dark_field(5, 800.0), {"DATE-OBS": "2026-11-21T01:00:00.000"})
    out["bad"].append(str(noname.relative_to(raw)))
    stash = raw / "_stash" / "2026-11-19_22-00-00_LIGHT_0001.fits"
    write_fits(stash, dark_field(6, 800.0), {"IMAGETYP": "LIGHT"})
    out["stash"].append(str(stash.relative_to(raw)))
    return out


@dataclass(frozen=True)
class SampleMaster:
    rel: str  # path below library_dir
    keywords: dict[str, Any]


def sample_masters() -> tuple[SampleMaster, ...]:
    """Masters of the sample library (paths follow :func:`include.astro.layout.master_dest`)."""
    d, b, f = layout.DARK_LIBRARY, layout.BIAS_LIBRARY, layout.FLAT_STASH
    zwo, atr = "ZWO ASI2600MM Pro", "ATR585M"
    c8 = {"INSTRUME": zwo, "SET-TEMP": -10.0, "GAIN": 100, "OFFSET": 50}
    sq = {"INSTRUME": atr, "SET-TEMP": -5.0, "GAIN": 100, "OFFSET": 20, "READOUTM": "Normal"}
    return (
        SampleMaster(
            f"{d}/{zwo}/masterDark_EXPOSURE_300.00_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
            {"IMAGETYP": "Master Dark", "EXPOSURE": 300.0, **c8},
        ),
        SampleMaster(
            f"{d}/{zwo}/masterDark_EXPOSURE_180.00_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
            {"IMAGETYP": "Master Dark", "EXPOSURE": 180.0, **c8},
        ),
        SampleMaster(
            f"{b}/{zwo}/masterBias_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
            {"IMAGETYP": "Master Bias", "EXPOSURE": 0.0, **c8},
        ),
        SampleMaster(
            f"{f}/{zwo}/C8E/DATE_{NIGHT}/masterFlat_FILTER_H_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
            {"IMAGETYP": "Master Flat", "TELESCOP": "C8E", "FILTER": "Ha", **c8},
        ),
        SampleMaster(
            f"{f}/{zwo}/C8E/DATE_{NIGHT}/masterFlat_FILTER_O_SETTEMP_-10.00_GAIN_100_OFFSET_50.xisf",
            {"IMAGETYP": "Master Flat", "TELESCOP": "C8E", "FILTER": "O3", **c8},
        ),
        # SQA55: a dark without exposure (scaled dark) -> bias needed
        SampleMaster(
            f"{d}/{atr}/masterDark_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal.xisf",
            {"IMAGETYP": "Master Dark", **sq},
        ),
        SampleMaster(
            f"{b}/{atr}/masterBias_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal.xisf",
            {"IMAGETYP": "Master Bias", **sq},
        ),
        SampleMaster(
            f"{f}/{atr}/SQA55/DATE_{NIGHT}/masterFlat_FILTER_L_SETTEMP_-5.00_GAIN_100_OFFSET_20_READOUTM_Normal.xisf",
            {"IMAGETYP": "Master Flat", "TELESCOP": "SQA55", "FILTER": "L", **sq},
        ),
        # DWARFIII: dark only (its flat is MISSING)
        SampleMaster(
            f"{d}/DWARFIII/DWARFIII/masterDark_EXPOSURE_15.00_GAIN_60.xisf",
            {"IMAGETYP": "Master Dark", "INSTRUME": "DWARFIII", "EXPOSURE": 15.0, "GAIN": 60},
        ),
    )


def generate_library(library_dir: str | os.PathLike[str]) -> list[str]:
    """Write the sample masters; returns their paths relative to ``library_dir``."""
    lib = Path(library_dir)
    out = []
    for i, m in enumerate(sample_masters()):
        data = dark_field(200 + i, 0.5).astype("f4") / 65535.0
        write_xisf(lib / m.rel, data, m.keywords)
        out.append(m.rel)
    return out


def generate_demo(
    dest: str | os.PathLike[str], light_shape: tuple[int, int] | None = None
) -> dict[str, str]:
    """Raw tree in ``dest/raw`` (lights of ``light_shape``, see :func:`generate_raw_tree`) and
    master library in ``dest/library``; returns the DAG conf."""
    d = Path(dest)
    generate_raw_tree(d / "raw", light_shape)
    generate_library(d / "library")
    return {"raw_dir": str(d / "raw"), "library_dir": str(d / "library"), "rigs": ""}


def generate_bulk(
    dest: str | os.PathLike[str], n: int, shape: tuple[int, int] = (32, 32)
) -> list[Path]:
    """``n`` NINA-named FITS lights (C8E rig, one folder per 100) for the header-scan benchmark."""
    d = Path(dest)
    data = star_field(7, 2.5, shape)
    paths = []
    for i in range(n):
        s = SAMPLE_LIGHTS[i % 5]
        hh, rem = divmod(i, 3600)
        mm, ss = divmod(rem, 60)
        hdr = {**_light_header(s), "DATE-OBS": f"2026-11-21T{hh % 24:02d}:{mm:02d}:{ss:02d}.000"}
        folder = (
            d
            / C8E
            / "LIGHT"
            / "NGC 7000"
            / f"DATE_{NIGHT}"
            / f"FILTER_Ha_EXP_300.00s_B{i // 100:03d}"
        )
        name = f"2026-11-21_{hh % 24:02d}-{mm:02d}-{ss:02d}_HFR_2.{i % 90 + 10}_STARS_{500 + i % 300}_RMSAC_0.6_TEMP_-10.0_{i:05d}.fits"
        p = folder / name
        write_fits(p, data, hdr)
        paths.append(p)
    return paths
