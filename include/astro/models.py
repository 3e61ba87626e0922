"""Astrophotography catalog tables on the app database (PostgreSQL or SQLite).

The origin's ``astrophotography.sqlite`` schema (camera, optic, profile, location, target, filter,
accepted_data) with an ``astro_`` prefix, because every domain shares one app database. One
``astro_accepted_data`` row is one light set in ``20_Data``: unique on (camera, optic, location,
target, filter, date, panel, exposure, raw directory), holding its frame count and integration time.
Exposure is the normalised ``%.2f`` text used everywhere in the astro pipelines (exact matching).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from include.common.db import Base, JSONType, TimestampMixin


class AstroCamera(TimestampMixin, Base):
    __tablename__ = "astro_camera"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class AstroOptic(TimestampMixin, Base):
    __tablename__ = "astro_optic"
    __table_args__ = (UniqueConstraint("name", "focal_ratio"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    focal_ratio: Mapped[str] = mapped_column(String(16))


class AstroProfile(TimestampMixin, Base):
    """A NINA profile ``<optic>@f<ratio>+<camera>``; ``id`` is the NINA profile GUID (the Target
    Scheduler's ``profileId``)."""

    __tablename__ = "astro_profile"
    __table_args__ = (UniqueConstraint("optic_id", "camera_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    filter_names: Mapped[str] = mapped_column(String(300), default="", server_default="")
    optic_id: Mapped[int] = mapped_column(ForeignKey("astro_optic.id"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("astro_camera.id"))


class AstroLocation(TimestampMixin, Base):
    __tablename__ = "astro_location"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    bortle: Mapped[int | None] = mapped_column(Integer, nullable=True)
    magnitude: Mapped[float | None] = mapped_column(Float, nullable=True)  # SQM mag/arcsec²


class AstroTarget(TimestampMixin, Base):
    __tablename__ = "astro_target"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)


class AstroFilter(TimestampMixin, Base):
    __tablename__ = "astro_filter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    astrobin_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


ACCEPTED_KEY = (
    "camera_id",
    "optic_id",
    "location_id",
    "target_id",
    "filter_id",
    "date",
    "panel_name",
    "shutter_time_seconds",
    "raw_directory",
)


class AstroAcceptedData(TimestampMixin, Base):
    __tablename__ = "astro_accepted_data"
    __table_args__ = (UniqueConstraint(*ACCEPTED_KEY, name="uq_astro_accepted_data_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("astro_camera.id"))
    optic_id: Mapped[int] = mapped_column(ForeignKey("astro_optic.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("astro_location.id"))
    target_id: Mapped[int] = mapped_column(ForeignKey("astro_target.id"))
    filter_id: Mapped[int] = mapped_column(ForeignKey("astro_filter.id"))
    date: Mapped[str] = mapped_column(String(10))  # night date YYYY-MM-DD
    panel_name: Mapped[str] = mapped_column(String(64), default="", server_default="")
    shutter_time_seconds: Mapped[str] = mapped_column(String(16))  # "%.2f"
    raw_directory: Mapped[str] = mapped_column(String(1024), index=True)
    rig: Mapped[str] = mapped_column(String(300), index=True)
    accepted_count: Mapped[int] = mapped_column(Integer)
    integration_seconds: Mapped[float] = mapped_column(Float)
    hfr_median: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
