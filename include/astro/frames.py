"""Parse astrophotography frames (NINA output, the rig tree, master libraries) into :class:`Frame`.

Sources, in order of precedence ("first value wins"):

1. ``KEY_value`` tokens in the path and file name, from the root down
   (``DATE_``, ``FILTER_``, ``EXP_``/``EXPOSURE_``, ``SETTEMP_``/``SET-TEMP_``, ``GAIN_``, ``OFFSET_``,
   ``READOUTM_``, ``HFR_``, ``STARS_``, ``RMSAC_``, ``TEMP_``, ``PANEL_``, plus ``TYPE_``/``IMAGETYP_``,
   ``OBJECT_``, ``TELESCOP_``, ``FOCRATIO_``, ``INSTRUME_``). Empty values such as ``HFR__`` are allowed
   and mean "no value" (they are *not* looked up in the header).
2. The rig folder ``<optic>@f<ratio>+<camera>``; a type word (``LIGHT``/``DARK``/``FLAT``/``BIAS``/
   ``DARKFLAT``) as a folder or name part; ``masterDark``-style name prefixes; the datetime at the start
   of NINA names (``2026-11-21_03-12-45`` or ``2026-11-21T03-12-45``); the target = the folder just
   above the first ``DATE_`` folder.
3. The FITS header (or the XISF ``FITSKeyword`` list) for values still missing.

Normalisation follows the origin scripts: IMAGETYP upper case (``Light Frame`` → ``LIGHT``), exposure,
settemp and temp as ``%.2f`` (a trailing ``s`` on exposures is dropped), filter aliases ``Ha→H``,
``O3→O``, ``S2→S``, ``BaaderUVIRCut→UVIR``, ``OptolongLeXtreme→LeXtr``, empty → ``RGB``; the night date
is ``DATE_`` or the date of ``DATE-OBS - night_offset_hours``; OBJECT ``"<t> Panel <n>"`` → target
``<t>``, panel ``<n>`` (single quotes stripped); the DWARFIII camera implies f/4.3.

The token table is configurable through :class:`TokenPattern` (rig folder regex, datetime regex,
key aliases, separator).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime as _dt
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from include.astro.headers import SIZE_KEYS, HeaderError, HeaderValue, read_header

LIGHT = "LIGHT"
TYPE_WORDS = ("LIGHT", "DARK", "FLAT", "BIAS", "DARKFLAT")
FILTER_ALIASES = {
    "Ha": "H",
    "O3": "O",
    "S2": "S",
    "BaaderUVIRCut": "UVIR",
    "OptolongLeXtreme": "LeXtr",
    "": "RGB",
}
# name token → Frame field
DEFAULT_KEYS: dict[str, str] = {
    "DATE": "date",
    "FILTER": "filter",
    "EXP": "exposure",
    "EXPOSURE": "exposure",
    "EXPTIME": "exposure",
    "SETTEMP": "settemp",
    "SET-TEMP": "settemp",
    "GAIN": "gain",
    "OFFSET": "offset",
    "READOUTM": "readoutmode",
    "READOUTMODE": "readoutmode",
    "HFR": "hfr",
    "STARS": "stars",
    "RMSAC": "rmsac",
    "TEMP": "temp",
    "PANEL": "panel",
    "TYPE": "imagetyp",
    "IMAGETYP": "imagetyp",
    "OBJECT": "target",
    "TELESCOP": "optic",
    "FOCRATIO": "fratio",
    "INSTRUME": "camera",
}
# FITS keyword → Frame field (first listed keyword present wins)
HEADER_KEYS: dict[str, tuple[str, ...]] = {
    "imagetyp": ("IMAGETYP", "FRAME"),
    "optic": ("TELESCOP",),
    "fratio": ("FOCRATIO",),
    "camera": ("INSTRUME",),
    "target": ("OBJECT",),
    "filter": ("FILTER",),
    "exposure": ("EXPOSURE", "EXPTIME"),
    "settemp": ("SET-TEMP", "SETTEMP"),
    "gain": ("GAIN",),
    "offset": ("OFFSET",),
    "readoutmode": ("READOUTM",),
    "temp": ("CCD-TEMP",),
    "hfr": ("HFR",),
    "stars": ("STARS",),
    "rmsac": ("RMSAC",),
}
# every keyword the parser reads (the header scan parses only these)
HEADER_READ_KEYS = (
    frozenset(k for kws in HEADER_KEYS.values() for k in kws) | {"DATE-OBS"} | SIZE_KEYS
)
CONSTANTS_BY_CAMERA: dict[str, dict[str, str]] = {"DWARFIII": {"fratio": "4.3"}}

_STAGE_DIRS = ("10_Blink", "20_Data")
_LIBRARY_DIR_NAMES = ("_Bias Library", "_Dark Library", "_Flat Stash")
_MASTER_PREFIX = re.compile(r"^master(Bias|Dark|Flat|DarkFlat)(?:_|$)", re.IGNORECASE)


class RigId(NamedTuple):
    optic: str
    fratio: str
    camera: str

    @property
    def name(self) -> str:
        return f"{self.optic}@f{self.fratio}+{self.camera}"


@dataclass(frozen=True)
class TokenPattern:
    """How names are tokenised. ``keys`` maps a name token (upper case) to a :class:`Frame` field."""

    keys: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    separator: str = "_"
    rig_regex: str = r"^(?P<optic>[^@/\\]+)@f(?P<fratio>[^+/\\]+)\+(?P<camera>[^/\\]+)$"
    datetime_regex: str = (
        r"(?P<d>\d{4}-\d{2}-\d{2})[_T ](?P<h>\d{2})[-:]?(?P<m>\d{2})[-:]?(?P<s>\d{2})"
    )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> TokenPattern:
        """Build from a config mapping (``keys`` are merged into the defaults)."""
        if not cfg:
            return cls()
        keys = dict(DEFAULT_KEYS)
        keys.update({str(k).upper(): str(v) for k, v in (cfg.get("keys") or {}).items()})
        kw: dict[str, Any] = {"keys": keys}
        for name in ("separator", "rig_regex", "datetime_regex"):
            if cfg.get(name):
                kw[name] = str(cfg[name])
        return cls(**kw)


DEFAULT_PATTERN = TokenPattern()


class FrameError(ValueError):
    """A frame that cannot be parsed; ``reason`` is the per-item message."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{reason}: {path}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """One normalised frame. Strings are normalised texts (``exposure="300.00"``); ``None`` = unknown."""

    path: str
    imagetyp: str | None = None
    optic: str | None = None
    fratio: str | None = None
    camera: str | None = None
    target: str | None = None
    date: str | None = None  # night date YYYY-MM-DD
    datetime: str | None = None  # YYYY-MM-DDTHH-MM-SS (file-name safe)
    filter: str | None = None
    exposure: str | None = None
    settemp: str | None = None
    gain: str | None = None
    offset: str | None = None
    readoutmode: str | None = None
    hfr: float | None = None
    stars: int | None = None
    rmsac: float | None = None
    temp: str | None = None
    panel: str | None = None
    # the metric texts as written (``3.70`` stays ``3.70`` in renamed files)
    hfr_src: str | None = field(default=None, compare=False, repr=False)
    rmsac_src: str | None = field(default=None, compare=False, repr=False)

    @property
    def rig(self) -> RigId | None:
        if self.optic and self.fratio and self.camera:
            return RigId(self.optic, self.fratio, self.camera)
        return None

    @property
    def rig_name(self) -> str:
        return f"{self.optic}@f{self.fratio}+{self.camera}"

    @property
    def is_light(self) -> bool:
        return self.imagetyp == LIGHT

    @property
    def is_master(self) -> bool:
        return bool(self.imagetyp and self.imagetyp.startswith("MASTER "))

    @property
    def hfr_text(self) -> str | None:
        if self.hfr is None:
            return None
        return self.hfr_src if _same_number(self.hfr_src, self.hfr) else _num_text(self.hfr)

    @property
    def rmsac_text(self) -> str | None:
        if self.rmsac is None:
            return None
        return self.rmsac_src if _same_number(self.rmsac_src, self.rmsac) else _num_text(self.rmsac)

    def get(self, prop: str) -> str | None:
        """Property by matching name as text (aliases ``type``→imagetyp, ``exposureseconds``→exposure,
        ``focal_ratio``→fratio)."""
        prop = PROPERTY_ALIASES.get(prop, prop)
        value = getattr(self, prop)
        if value is None:
            return None
        if isinstance(value, float):
            return _num_text(value)
        return str(value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Frame:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_path(self, path: str | os.PathLike[str]) -> Frame:
        return replace(self, path=str(path))


PROPERTY_ALIASES = {
    "type": "imagetyp",
    "exposureseconds": "exposure",
    "focal_ratio": "fratio",
    "targetname": "target",
}

REQUIRED = {
    "LIGHT": ("optic", "fratio", "camera", "target", "date", "datetime", "filter", "exposure"),
    "FLAT": ("camera", "date", "datetime", "filter", "exposure"),
    "DARK": ("camera", "date", "datetime", "exposure"),
    "BIAS": ("camera", "date", "datetime"),
    "DARKFLAT": ("camera", "date", "datetime", "exposure"),
}


def _num_text(v: float) -> str:
    return repr(float(v))


def _same_number(text: str | None, value: float) -> bool:
    if not text:
        return False
    try:
        return float(text) == float(value)
    except ValueError:
        return False


_QUOTES = "'\"\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb`"
# what file managers append to a copied file: "name (1)", "name - Copy", "name copy 2"
_COPY_SUFFIX = re.compile(r"(?:\s*\(\d+\)|\s*-\s*copy(?:\s*\(\d+\))?|\s+copy(?:\s+\d+)?)+$", re.I)


def normalize_target(value: str) -> str:
    """Target text as the catalog and NINA's scheduler match it: Unicode NFC (macOS folder names
    are NFD), no quotes of any kind, single spaces."""
    import unicodedata

    v = unicodedata.normalize("NFC", str(value))
    v = v.translate({ord(c): None for c in _QUOTES})
    return " ".join(v.split())


def _f2(text: str) -> str:
    t = text.strip()
    if t.lower().endswith("s"):
        t = t[:-1]
    return f"{float(t):.2f}"


def _intish(text: str) -> str:
    t = text.strip()
    try:
        f = float(t)
    except ValueError:
        return t
    return str(int(f)) if f.is_integer() else repr(f)


def normalize_imagetyp(value: str) -> str:
    v = " ".join(str(value).upper().split())
    for suffix in (" FRAME", " FIELD"):
        if v.endswith(suffix):
            v = v[: -len(suffix)]
    return v


def normalize_filter(value: str) -> str:
    v = str(value).strip()
    return FILTER_ALIASES.get(v, v)


def split_target(value: str) -> tuple[str, str | None]:
    """``"M 31 Panel 2"`` → ``("M 31", "2")``; quotes are stripped, Unicode is NFC."""
    target, panel = normalize_target(value), None
    m = re.match(r"^(.*) Panel (.*)$", target)
    if m:
        target, panel = m.group(1).strip(), m.group(2).strip() or None
    return target, panel


def night_date(obs: str, night_offset_hours: float = 12.0) -> str:
    """Night date of a ``DATE-OBS`` timestamp: the date of ``obs - night_offset_hours``."""
    t = parse_timestamp(obs)
    return (t - timedelta(hours=night_offset_hours)).strftime("%Y-%m-%d")


def parse_timestamp(value: str) -> _dt:
    v = str(value).strip().rstrip("Z")
    if "." in v:
        v = v.split(".", 1)[0]
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H-%M-%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return _dt.strptime(v, fmt)
        except ValueError:
            continue
    raise ValueError(f"unrecognised timestamp {value!r}")


def _normalize_field(name: str, value: str) -> Any:
    """Text value of a field → normalised value; '' → None (filter: '' → RGB)."""
    if name == "filter":
        return normalize_filter(value)
    v = value.strip()
    if v == "":
        return None
    if name in ("exposure", "settemp", "temp"):
        return _f2(v)
    if name in ("hfr", "rmsac"):
        return float(v)
    if name == "stars":
        return int(float(v))
    if name in ("gain", "offset"):
        return _intish(v)
    if name == "imagetyp":
        return normalize_imagetyp(v)
    if name == "date":
        return parse_timestamp(v).strftime("%Y-%m-%d")
    if name == "fratio":
        return v
    return v


def parse_name(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    pattern: TokenPattern = DEFAULT_PATTERN,
) -> dict[str, str]:
    """Raw (un-normalised) field texts found in the path below ``root`` and the file name.

    Keys are :class:`Frame` field names plus ``datetime`` (``YYYY-MM-DDTHH-MM-SS``). Empty values are
    kept as ``""``. First value wins."""
    p = Path(path)
    if root is not None:
        try:
            parts = list(p.relative_to(root).parts)
        except ValueError:
            parts = list(p.parts)
    else:
        parts = list(p.parts)
    if not parts:
        return {}
    parts[-1] = os.path.splitext(parts[-1])[0]
    stem = _COPY_SUFFIX.sub("", parts[-1])
    out_suffix = parts[-1][len(stem) :].strip()
    parts[-1] = stem
    keys = {k.upper(): v for k, v in pattern.keys.items()}
    rig_re = re.compile(pattern.rig_regex)
    out: dict[str, str] = {}
    if out_suffix:
        out["__name_suffix__"] = out_suffix
    sep = pattern.separator
    first_date_index: int | None = None
    for idx, comp in enumerate(parts):
        is_file = idx == len(parts) - 1
        m = rig_re.match(comp)
        if m and not is_file:
            for k in ("optic", "fratio", "camera"):
                out.setdefault(k, m.group(k).strip())
            continue
        if is_file:
            mm = _MASTER_PREFIX.match(comp)
            if mm:
                out.setdefault("imagetyp", "MASTER " + mm.group(1).upper())
        tokens = comp.split(sep)
        i = 0
        while i < len(tokens):
            tok = tokens[i].upper()
            if tok in keys:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                if nxt.upper() in keys and nxt != "":
                    value = ""  # "HFR_STARS_12": HFR has no value
                    i += 1
                else:
                    value = nxt
                    i += 2
                field_name = keys[tok]
                out.setdefault(field_name, value)
                if field_name == "date" and first_date_index is None and not is_file:
                    first_date_index = idx
                continue
            if tok in TYPE_WORDS:
                out.setdefault("imagetyp", tok)
            i += 1
        if is_file:
            dm = re.search(pattern.datetime_regex, comp)
            if dm:
                out.setdefault("datetime", f"{dm['d']}T{dm['h']}-{dm['m']}-{dm['s']}")
    if "imagetyp" not in out and any(c in _STAGE_DIRS for c in parts[:-1]):
        out["imagetyp"] = LIGHT  # the rig tree's stage folders hold lights (and named masters)
    in_library = any(c in _LIBRARY_DIR_NAMES for c in parts)
    is_master = out.get("imagetyp", "").upper().startswith("MASTER")
    if (
        first_date_index is not None
        and first_date_index > 0
        and "target" not in out
        and not in_library
        and not is_master
    ):
        cand = parts[first_date_index - 1]
        if (
            cand.upper() not in TYPE_WORDS
            and not rig_re.match(cand)
            and not any(t.upper() in keys for t in cand.split(sep))
            and cand not in _STAGE_DIRS
        ):
            # the folder only names the target when neither the name nor the header does
            out["__target_folder__"] = cand
    return out


def _header_text(value: HeaderValue) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value)


def fields_from_header(cards: Mapping[str, HeaderValue]) -> dict[str, str]:
    """Raw field texts from FITS/XISF cards (see :data:`HEADER_KEYS`, plus ``DATE-OBS``)."""
    out: dict[str, str] = {}
    for name, kws in HEADER_KEYS.items():
        for kw in kws:
            text = _header_text(cards.get(kw))
            if text is not None and text.strip() != "":
                out[name] = text
                break
    obs = _header_text(cards.get("DATE-OBS"))
    if obs:
        out["__date_obs__"] = obs
    return out


def build_frame(
    path: str | os.PathLike[str],
    name_fields: Mapping[str, str],
    header_fields: Mapping[str, str] | None = None,
    night_offset_hours: float = 12.0,
) -> Frame:
    """Combine name and header texts (name first), normalise and validate.

    Raises :class:`FrameError` with the missing/invalid field names."""
    header_fields = header_fields or {}
    raw: dict[str, str] = dict(header_fields)
    raw.pop("__date_obs__", None)
    raw.update(name_fields)  # name wins, including explicit empty values
    folder_target = raw.pop("__target_folder__", None)
    suffix = raw.pop("__name_suffix__", None)
    if folder_target and not (raw.get("target") or "").strip():
        raw["target"] = folder_target  # the OBJECT header beats the folder name
    obs = header_fields.get("__date_obs__")
    values: dict[str, Any] = {}
    bad: list[str] = []
    for name, text in raw.items():
        if name == "datetime":
            continue
        if name not in Frame.__dataclass_fields__:
            continue
        try:
            values[name] = _normalize_field(name, text)
        except (ValueError, TypeError):
            hint = ""
            if name in name_fields and " " in text.strip():
                hint = " (text after the last KEY_value token of the file name?)"
            bad.append(f"{name}={text!r}{hint}")
        else:
            if name in ("hfr", "rmsac") and values[name] is not None:
                values[name + "_src"] = text.strip()
    if "datetime" in raw:
        values["datetime"] = raw["datetime"]
    elif obs:
        try:
            values["datetime"] = parse_timestamp(obs).strftime("%Y-%m-%dT%H-%M-%S")
        except ValueError:
            bad.append(f"DATE-OBS={obs!r}")
    if values.get("date") is None and "date" not in name_fields:
        if obs:
            try:
                values["date"] = night_date(obs, night_offset_hours)
            except ValueError:
                if f"DATE-OBS={obs!r}" not in bad:
                    bad.append(f"DATE-OBS={obs!r}")
        elif values.get("datetime"):
            values["date"] = night_date(values["datetime"], night_offset_hours)
    if values.get("target"):
        target, panel = split_target(values["target"])
        values["target"] = target or None
        if panel and not values.get("panel"):
            values["panel"] = panel
    if values.get("filter") is None:
        values["filter"] = "RGB" if values.get("imagetyp") in ("LIGHT", "FLAT") else None
    cam = values.get("camera")
    if cam in CONSTANTS_BY_CAMERA and not str(values.get("imagetyp") or "").startswith("MASTER"):
        for k, v in CONSTANTS_BY_CAMERA[cam].items():
            values.setdefault(k, v)
            if values[k] is None:
                values[k] = v
    if bad:
        msg = "invalid value(s) " + ", ".join(sorted(bad))
        if suffix:
            msg += f" (ignored file-name suffix {suffix!r})"
        raise FrameError(path, msg)
    imagetyp = values.get("imagetyp")
    if not imagetyp:
        raise FrameError(path, "unknown frame type (no IMAGETYP in name or header)")
    base = imagetyp.replace("MASTER ", "")
    if not imagetyp.startswith("MASTER "):
        need = REQUIRED.get(base)
        if need is None:
            raise FrameError(path, f"unsupported frame type {imagetyp!r}")
        missing = [n for n in need if values.get(n) in (None, "")]
        if missing:
            raise FrameError(path, "missing required value(s) " + ", ".join(missing))
    return Frame(path=str(path), **values)


def parse_frame(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    pattern: TokenPattern = DEFAULT_PATTERN,
    use_header: bool = True,
    night_offset_hours: float = 12.0,
) -> Frame:
    """Parse one frame: name tokens first, then header values for what is missing.

    With ``use_header`` the header is always read (it is cheap, see :mod:`include.astro.headers`) so
    that corrupt or truncated files are detected here; a header error becomes a :class:`FrameError`.
    """
    name_fields = parse_name(path, root, pattern)
    header_fields: dict[str, str] = {}
    if use_header:
        try:
            header_fields = fields_from_header(read_header(path, keys=HEADER_READ_KEYS))
        except HeaderError as exc:
            raise FrameError(path, exc.reason) from exc
    return build_frame(path, name_fields, header_fields, night_offset_hours)


def try_parse_frame(path: str | os.PathLike[str], **kwargs: Any) -> tuple[Frame | None, str | None]:
    """``(frame, None)`` or ``(None, reason)`` - for per-item error reporting."""
    try:
        return parse_frame(path, **kwargs), None
    except FrameError as exc:
        return None, exc.reason
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
