"""Equipment profiles, locations and filters of the catalog: load the config file, upsert it.

The config (YAML or JSON, default :data:`DEFAULT_EQUIPMENT_FILE`) is validated item by item: a bad
profile or location is reported with its reason and skipped; the others are loaded. Loading is an
upsert on natural keys, so rerunning ``astro_setup`` with an edited file updates rows in place.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from include.astro.models import (
    AstroCamera,
    AstroFilter,
    AstroLocation,
    AstroOptic,
    AstroProfile,
)
from include.common.db import upsert

DEFAULT_EQUIPMENT_FILE = Path(__file__).with_name("equipment.yaml")
PROFILE_NAME = re.compile(r"^(?P<optic>[^@+]+)@f(?P<fratio>[^+]+)\+(?P<camera>.+)$")


class EquipmentError(ValueError):
    """The config file cannot be used at all (unreadable, not a mapping)."""


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    optic: str
    fratio: str
    camera: str
    filters: tuple[str, ...]

    @property
    def filter_names(self) -> str:
        names = ",".join(self.filters)
        # origin rule: with the full LRGBSHO wheel, O is prioritised over S and S over H
        return "L,R,G,B,O,S,H" if names == "L,R,G,B,S,H,O" else names


@dataclass(frozen=True)
class Location:
    name: str
    latitude: float
    longitude: float
    bortle: int | None = None
    magnitude: float | None = None


@dataclass
class Equipment:
    profiles: list[Profile] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    filters: dict[str, int | None] = field(default_factory=dict)
    default_location: str | None = None
    location_match_degrees: float = 0.25
    errors: list[str] = field(default_factory=list)
    source: str = ""

    def profile_for_rig(self, rig: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == rig), None)


def parse_profile_name(name: str) -> tuple[str, str, str]:
    m = PROFILE_NAME.match(name.strip())
    if not m:
        raise ValueError(f"profile name {name!r} is not '<optic>@f<ratio>+<camera>'")
    return m["optic"], m["fratio"], m["camera"]


def parse_equipment(data: Mapping[str, Any], source: str = "") -> Equipment:
    if not isinstance(data, Mapping):
        raise EquipmentError(f"{source or 'equipment config'}: expected a mapping at the top level")
    eq = Equipment(source=source)
    seen: set[str] = set()
    for i, item in enumerate(data.get("profiles") or []):
        where = f"profiles[{i}]"
        try:
            if not isinstance(item, Mapping):
                raise ValueError("expected a mapping")
            name = str(item["name"])
            optic, fratio, camera = parse_profile_name(name)
            pid = str(item.get("id") or "").strip()
            if not pid:
                raise ValueError("missing id (the NINA profile GUID)")
            if pid in seen:
                raise ValueError(f"duplicate id {pid}")
            filters = tuple(str(f).strip() for f in item.get("filters") or [])
            eq.profiles.append(Profile(pid, name, optic, fratio, camera, filters))
            seen.add(pid)
        except (KeyError, ValueError, TypeError) as exc:
            eq.errors.append(f"{where}: {exc}")
    for i, item in enumerate(data.get("locations") or []):
        where = f"locations[{i}]"
        try:
            if not isinstance(item, Mapping):
                raise ValueError("expected a mapping")
            lat, lon = float(item["latitude"]), float(item["longitude"])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"latitude/longitude out of range ({lat}, {lon})")
            bortle = item.get("bortle")
            if bortle is not None and not 1 <= int(bortle) <= 9:
                raise ValueError(f"bortle {bortle} not in 1..9")
            mag = item.get("magnitude")
            eq.locations.append(
                Location(
                    str(item["name"]),
                    lat,
                    lon,
                    None if bortle is None else int(bortle),
                    None if mag is None else float(mag),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            eq.errors.append(f"{where}: {exc}")
    for name, astrobin in (data.get("filters") or {}).items():
        try:
            eq.filters[str(name)] = None if astrobin is None else int(astrobin)
        except (TypeError, ValueError):
            eq.errors.append(f"filters.{name}: AstroBin id {astrobin!r} is not a number")
    eq.default_location = data.get("default_location") or (
        eq.locations[0].name if eq.locations else None
    )
    eq.location_match_degrees = float(data.get("location_match_degrees", 0.25))
    return eq


def load_equipment(path: str | os.PathLike[str] | None = None) -> Equipment:
    p = Path(path) if path else DEFAULT_EQUIPMENT_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EquipmentError(f"cannot read equipment config {p}: {exc.strerror or exc}") from exc
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EquipmentError(f"{p}: invalid JSON ({exc})") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise EquipmentError(f"{p}: invalid YAML ({exc})") from exc
    return parse_equipment(data or {}, source=str(p))


# ----------------------------------------------------------------------------- database


def camera_id(session: Session, name: str) -> int:
    upsert(session, AstroCamera, {"name": name}, ["name"], update_cols=[])
    return session.scalar(select(AstroCamera.id).where(AstroCamera.name == name))


def optic_id(session: Session, name: str, fratio: str) -> int:
    upsert(
        session,
        AstroOptic,
        {"name": name, "focal_ratio": fratio},
        ["name", "focal_ratio"],
        update_cols=[],
    )
    return session.scalar(
        select(AstroOptic.id).where(AstroOptic.name == name, AstroOptic.focal_ratio == fratio)
    )


def target_id(session: Session, name: str) -> int:
    from include.astro.models import AstroTarget

    upsert(session, AstroTarget, {"name": name}, ["name"], update_cols=[])
    return session.scalar(select(AstroTarget.id).where(AstroTarget.name == name))


def filter_id(session: Session, name: str, astrobin_id: int | None = None) -> int:
    upsert(
        session,
        AstroFilter,
        {"name": name, "astrobin_id": astrobin_id},
        ["name"],
        update_cols=[] if astrobin_id is None else ["astrobin_id"],
    )
    return session.scalar(select(AstroFilter.id).where(AstroFilter.name == name))


def location_id(session: Session, loc: Location, *, update: bool = True) -> int:
    """Upsert a location (``update=False``: insert if missing, never modify - for lookups)."""
    upsert(
        session,
        AstroLocation,
        {
            "name": loc.name,
            "latitude": loc.latitude,
            "longitude": loc.longitude,
            "bortle": loc.bortle,
            "magnitude": loc.magnitude,
        },
        ["name"],
        update_cols=None if update else [],
    )
    return session.scalar(select(AstroLocation.id).where(AstroLocation.name == loc.name))


def apply_equipment(session: Session, eq: Equipment) -> dict[str, Any]:
    """Upsert filters, locations, cameras, optics and profiles. Returns counts and item errors."""
    for name, astrobin in sorted(eq.filters.items()):
        filter_id(session, name, astrobin)
    for loc in eq.locations:
        location_id(session, loc)
    errors = list(eq.errors)
    n_profiles = 0
    for p in eq.profiles:
        cam = camera_id(session, p.camera)
        opt = optic_id(session, p.optic, p.fratio)
        clash = session.scalar(
            select(AstroProfile.id).where(
                AstroProfile.optic_id == opt, AstroProfile.camera_id == cam, AstroProfile.id != p.id
            )
        )
        if clash is not None:
            errors.append(f"profile {p.name}: rig already registered under id {clash}; skipped")
            continue
        upsert(
            session,
            AstroProfile,
            {
                "id": p.id,
                "name": p.name,
                "filter_names": p.filter_names,
                "optic_id": opt,
                "camera_id": cam,
            },
            ["id"],
        )
        n_profiles += 1
    return {
        "profiles": n_profiles,
        "locations": len(eq.locations),
        "filters": len(eq.filters),
        "errors": errors,
    }


def nearest_location(
    locations: list[Location], lat: float, lon: float, max_degrees: float
) -> Location | None:
    best, best_d = None, math.inf
    for loc in locations:
        d = math.hypot(loc.latitude - lat, (loc.longitude - lon) * math.cos(math.radians(lat)))
        if d < best_d:
            best, best_d = loc, d
    return best if best is not None and best_d <= max_degrees else None


def equipment_from_db(session: Session) -> Equipment:
    """Locations and filters as stored by ``astro_setup`` (used to place frames and fill CSVs)."""
    eq = Equipment(source="app database")
    for loc in session.scalars(select(AstroLocation).order_by(AstroLocation.id)):
        eq.locations.append(
            Location(loc.name, loc.latitude, loc.longitude, loc.bortle, loc.magnitude)
        )
    for f in session.scalars(select(AstroFilter).order_by(AstroFilter.name)):
        eq.filters[f.name] = f.astrobin_id
    n_profiles = session.scalar(select(func.count()).select_from(AstroProfile)) or 0
    eq.default_location = eq.locations[0].name if eq.locations else None
    if not n_profiles:
        eq.errors.append("no equipment profiles in the catalog (run astro_setup)")
    return eq
