"""Rig configuration: cull thresholds, approval percentages and calibration matching properties.

The bundled default (``rigs_default.yaml`` next to this module) describes the seed's rigs; an
installation passes its own YAML/JSON file as the DAG param ``rigs``. Unknown rigs found in the raw
data get :data:`FALLBACK` settings (moderate cull, standard properties) so nothing is silently lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.astro.frames import PROPERTY_ALIASES, Frame, TokenPattern
from include.astro.matching import RIG_PROPERTIES

DEFAULT_RIGS_FILE = Path(__file__).with_name("rigs_default.yaml")
KNOWN_PROPERTIES = RIG_PROPERTIES - {"type"}  # the matching keys (include.astro.matching)


class RigConfigError(ValueError):
    """The rig configuration file is invalid (message says where)."""


@dataclass(frozen=True)
class CullPass:
    """One cull pass: reject when ``hfr > max_hfr`` or ``rmsac > max_rms``; ask when the rejected
    share of a directory is >= ``auto_percent``."""

    name: str
    max_hfr: float | None
    max_rms: float | None
    auto_percent: float

    def flags(self, frame: Frame) -> str | None:
        """The reason a frame fails this pass, or None. A missing value never rejects."""
        reasons = []
        if self.max_hfr is not None and frame.hfr is not None and frame.hfr > self.max_hfr:
            if frame.hfr_src == "measured":
                reasons.append(f"HFR (measured) {frame.hfr:.2f} > {self.max_hfr:g}")
            else:
                reasons.append(f"HFR {frame.hfr_text} > {self.max_hfr:g}")
        if self.max_rms is not None and frame.rmsac is not None and frame.rmsac > self.max_rms:
            reasons.append(f"RMS {frame.rmsac_text} > {self.max_rms:g}")
        return "; ".join(reasons) or None


@dataclass(frozen=True)
class RigConfig:
    name: str
    cull: tuple[CullPass, ...]
    dark_properties: tuple[str, ...]
    flat_properties: tuple[str, ...]
    bias_properties: tuple[str, ...]
    library_subdir: str | None = None


@dataclass(frozen=True)
class RigsConfig:
    rigs: Mapping[str, RigConfig]
    token_pattern: TokenPattern = field(default_factory=TokenPattern)
    night_offset_hours: float = 12.0
    sync_stop_command: tuple[str, ...] | None = None
    sync_start_command: tuple[str, ...] | None = None
    source: str = ""

    def for_rig(self, name: str) -> RigConfig:
        """The rig's settings, or the fallback (named like the rig) for an unknown rig."""
        cfg = self.rigs.get(name)
        if cfg is not None:
            return cfg
        return RigConfig(
            name=name,
            cull=FALLBACK.cull,
            dark_properties=FALLBACK.dark_properties,
            flat_properties=FALLBACK.flat_properties,
            bias_properties=FALLBACK.bias_properties,
        )


FALLBACK = RigConfig(
    name="*",
    cull=(CullPass("moderate", 4.0, 2.0, 30.0), CullPass("strict", 5.0, 2.0, 100.0)),
    dark_properties=("exposure", "settemp", "camera", "gain", "offset", "imagetyp"),
    flat_properties=("date", "optic", "filter", "settemp", "camera", "gain", "offset", "imagetyp"),
    bias_properties=("settemp", "camera", "gain", "offset", "imagetyp"),
)


def _props(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RigConfigError(f"{where}: expected a list of property names")
    out = []
    for p in value:
        name = PROPERTY_ALIASES.get(str(p), str(p))
        if name not in KNOWN_PROPERTIES:
            raise RigConfigError(f"{where}: unknown property {p!r}")
        out.append(name)
    return tuple(out)


def _opt_float(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RigConfigError(f"{where}: not a number: {value!r}") from None


def _command(value: Any, where: str) -> tuple[str, ...] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(str(v) for v in value)
    raise RigConfigError(f"{where}: expected a command list")


def parse_rigs(data: Mapping[str, Any], source: str = "") -> RigsConfig:
    """Validate a loaded config mapping."""
    if not isinstance(data, Mapping) or not isinstance(data.get("rigs"), list):
        raise RigConfigError(f"{source}: expected a mapping with a 'rigs' list")
    rigs: dict[str, RigConfig] = {}
    for i, r in enumerate(data["rigs"]):
        where = f"{source}: rigs[{i}]"
        if not isinstance(r, Mapping) or not r.get("name"):
            raise RigConfigError(f"{where}: a rig needs a name")
        name = str(r["name"])
        passes = []
        for j, c in enumerate(r.get("cull") or []):
            w = f"{where}.cull[{j}]"
            if not isinstance(c, Mapping):
                raise RigConfigError(f"{w}: expected a mapping")
            auto = _opt_float(c.get("auto_percent", 100), w)
            passes.append(
                CullPass(
                    name=str(c.get("name") or f"pass{j + 1}"),
                    max_hfr=_opt_float(c.get("max_hfr"), w),
                    max_rms=_opt_float(c.get("max_rms"), w),
                    auto_percent=100.0 if auto is None else auto,
                )
            )
        rigs[name] = RigConfig(
            name=name,
            cull=tuple(passes),
            dark_properties=_props(
                r.get("dark_properties", FALLBACK.dark_properties), f"{where}.dark"
            ),
            flat_properties=_props(
                r.get("flat_properties", FALLBACK.flat_properties), f"{where}.flat"
            ),
            bias_properties=_props(
                r.get("bias_properties", FALLBACK.bias_properties), f"{where}.bias"
            ),
            library_subdir=(str(r["library_subdir"]) if r.get("library_subdir") else None),
        )
    sync = data.get("sync") or {}
    return RigsConfig(
        rigs=rigs,
        token_pattern=TokenPattern.from_config(data.get("token_pattern")),
        night_offset_hours=float(data.get("night_offset_hours", 12.0)),
        sync_stop_command=_command(sync.get("stop_command"), f"{source}: sync.stop_command"),
        sync_start_command=_command(sync.get("start_command"), f"{source}: sync.start_command"),
        source=source,
    )


def load_rigs(path: str | os.PathLike[str] | None = None) -> RigsConfig:
    """Load a YAML or JSON rig configuration (``None``/empty → the bundled default)."""
    p = Path(path) if path else DEFAULT_RIGS_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RigConfigError(f"cannot read rig configuration {p}: {exc.strerror or exc}") from exc
    if p.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RigConfigError(f"{p}: invalid YAML ({exc})") from exc
    return parse_rigs(data, source=str(p))
