"""Warehouses and storage locations: upsert by code (demo setup, tests, admin scripts) and load
the active areas for geolocation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from include.common.db import upsert
from include.photos.geolocate import LocationArea, validate_polygon
from include.photos.models import StorageLocation, Warehouse


def upsert_site(
    session: Session,
    warehouses: Iterable[Mapping[str, Any]],
    locations: Iterable[Mapping[str, Any]],
) -> dict[str, int]:
    """Create or update warehouses (``code``, ``name``, ``area_polygon``) and locations (``code``,
    ``warehouse`` code, ``name``, ``area_polygon``, ``config``, ``calibration``). Returns
    ``{location code: id}``. Invalid polygons raise ``ValueError`` naming the location."""
    for w in warehouses:
        if w.get("area_polygon"):
            validate_polygon(w["area_polygon"])
        upsert(
            session,
            Warehouse,
            {"code": w["code"], "name": w["name"], "area_polygon": w.get("area_polygon")},
            conflict_cols=("code",),
        )
    session.flush()
    wh_ids = dict(session.execute(select(Warehouse.code, Warehouse.id)).tuples().all())
    for loc in locations:
        try:
            validate_polygon(loc["area_polygon"])
        except ValueError as exc:
            raise ValueError(f"storage location {loc['code']}: {exc}") from None
        if loc["warehouse"] not in wh_ids:
            raise ValueError(
                f"storage location {loc['code']}: unknown warehouse {loc['warehouse']}"
            )
        upsert(
            session,
            StorageLocation,
            {
                "code": loc["code"],
                "warehouse_id": wh_ids[loc["warehouse"]],
                "name": loc["name"],
                "area_polygon": loc["area_polygon"],
                "config": loc.get("config"),
                "calibration": loc.get("calibration"),
                "active": bool(loc.get("active", True)),
            },
            conflict_cols=("code",),
        )
    session.flush()
    return dict(session.execute(select(StorageLocation.code, StorageLocation.id)).tuples().all())


def _area(loc: StorageLocation, wh_name: str | None) -> LocationArea:
    return LocationArea(
        id=loc.id,
        code=loc.code,
        name=loc.name,
        polygon=validate_polygon(loc.area_polygon),
        config=loc.config,
        calibration=loc.calibration,
        warehouse_name=wh_name,
    )


def load_areas(session: Session) -> list[LocationArea]:
    """Every active storage location with a valid polygon (invalid ones are skipped)."""
    rows = session.execute(
        select(StorageLocation, Warehouse.name)
        .join(Warehouse, Warehouse.id == StorageLocation.warehouse_id)
        .where(StorageLocation.active.is_(True))
        .order_by(StorageLocation.id)
    ).all()
    out = []
    for loc, wh in rows:
        try:
            out.append(_area(loc, wh))
        except (ValueError, TypeError, IndexError):
            continue
    return out


def get_area(session: Session, location_id: int) -> LocationArea | None:
    row = session.execute(
        select(StorageLocation, Warehouse.name)
        .join(Warehouse, Warehouse.id == StorageLocation.warehouse_id)
        .where(StorageLocation.id == location_id)
    ).first()
    if row is None:
        return None
    loc, wh = row
    try:
        return _area(loc, wh)
    except (ValueError, TypeError, IndexError):
        return LocationArea(loc.id, loc.code, loc.name, (), loc.config, loc.calibration, wh)
