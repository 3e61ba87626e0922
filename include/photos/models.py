"""Tables of the plant photo pipeline (``photo_ingest`` / ``photo_reprocess``).

The upload/gallery web app (issue 7) reads and writes these tables; the contract is:

* ``warehouses`` / ``storage_locations`` — where photos are taken. A storage location has a GPS
  area (``area_polygon``: a closed ring of ``[lon, lat]`` pairs, WGS84), an optional ``config``
  (what is on the shelf: ``{"container": "tray", "cells": [rows, cols], "detector": "classical"}``)
  and an optional ``calibration`` (density parameters: ``{"avg_plant_area_px": 5200,
  "reference_width_px": 4000}`` — the average plant area measured on photos that wide). Missing
  config/calibration gives the ``needs_config`` / ``needs_calibration`` warning states.
* ``photo_upload_sessions`` — one upload (a web upload of 1-100 photos, or a folder import). The
  web app creates the row (``status="pending"``), stages every file in S3 under
  ``temp_uploads/<upload_session_id>/<job_id>.<ext>`` and creates one ``photo_jobs`` row per file
  (``staged_key`` set, ``image_id`` chosen by the app), then triggers ``photo_ingest`` with
  ``{"upload_session_id": ...}`` (``include.webapp.staging``; rows from ``include.photos.jobs``). ``summary`` holds the session aggregate after the run.
* ``photo_jobs`` — the per-photo job the status endpoint polls: ``status`` is one of
  :data:`JobStatus.ALL` (pending, processing, completed, failed and the three warning states),
  ``progress_percent``, ``error_message``, and ``result`` (session id, totals, location).
* ``s3_images`` — every image object in S3 (originals and annotated images), as in the seed.
* ``photo_processing_sessions`` — one ML run of one original; reprocessing adds a new row (the
  history is kept), so the newest row per ``original_image_id`` is the current result.

Deviations from the seed: there is no ``users`` table (Airflow owns authentication), so
``uploaded_by`` / ``validated_by`` are user names (strings) instead of integer foreign keys.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from include.common.db import Base, JSONType, TimestampMixin

# Namespace of every deterministic id of this domain (uuid5).
PHOTOS_NS = uuid.UUID("6b0c7c52-2f4e-5d7e-9a51-3c1f0d5e8a01")


def det_uuid(*parts: object) -> uuid.UUID:
    """A deterministic UUID from ``parts`` (rerunning a step yields the same ids)."""
    return uuid.uuid5(PHOTOS_NS, "|".join(str(p) for p in parts))


class ImageStatus:
    """``s3_images.status`` (seed: uploaded|processing|ready|failed; plus ``warning``)."""

    UPLOADED = "uploaded"
    PROCESSING = "processing"
    READY = "ready"
    WARNING = "warning"  # processed, but a warning state needs a human (see error_details)
    FAILED = "failed"

    ALL = (UPLOADED, PROCESSING, READY, WARNING, FAILED)


class Warning_:
    """The seed's warning states, in order of precedence."""

    NEEDS_LOCATION = "needs_location"  # no GPS, or GPS outside every storage location
    # no plants found, or a count far from the location's recent counts: a human checks it
    NEEDS_REVIEW = "needs_review"
    NEEDS_CONFIG = "needs_config"  # the storage location has no configuration
    NEEDS_CALIBRATION = "needs_calibration"  # no density parameters: no estimation

    ALL = (NEEDS_LOCATION, NEEDS_REVIEW, NEEDS_CONFIG, NEEDS_CALIBRATION)


class SessionStatus:
    """``photo_processing_sessions.status``."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    NEEDS_LOCATION = Warning_.NEEDS_LOCATION
    NEEDS_CONFIG = Warning_.NEEDS_CONFIG
    NEEDS_CALIBRATION = Warning_.NEEDS_CALIBRATION

    WARNINGS = Warning_.ALL
    FINAL = (COMPLETED, FAILED, *Warning_.ALL)
    ALL = (PENDING, PROCESSING, *FINAL)


class JobStatus(SessionStatus):
    """``photo_jobs.status`` (what the status endpoint shows): same values as the sessions."""


class UploadStatus:
    """``photo_upload_sessions.status``."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"  # every job completed
    COMPLETED_WITH_WARNINGS = "completed_with_warnings"  # some jobs in a warning state
    PARTIAL = "partial"  # some jobs failed, others did not
    FAILED = "failed"  # every job failed

    ALL = (PENDING, PROCESSING, COMPLETED, COMPLETED_WITH_WARNINGS, PARTIAL, FAILED)


class Warehouse(TimestampMixin, Base):
    __tablename__ = "warehouses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    # Optional outline of the whole site: [[lon, lat], ...]
    area_polygon: Mapped[list[list[float]] | None] = mapped_column(JSONType, nullable=True)


class StorageLocation(TimestampMixin, Base):
    __tablename__ = "storage_locations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    # GPS area: closed ring [[lon, lat], ...] (first point may or may not be repeated)
    area_polygon: Mapped[list[list[float]]] = mapped_column(JSONType)
    # What is stored here and how to analyse it; NULL -> needs_config
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # Density parameters for estimation; NULL or without avg_plant_area_px -> needs_calibration
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class PhotoUploadSession(TimestampMixin, Base):
    __tablename__ = "photo_upload_sessions"

    upload_session_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    uploaded_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    upload_source: Mapped[str] = mapped_column(String(50))  # web | mobile | api | dir
    source_ref: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    storage_location_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_locations.id", name="fk_photo_upload_sessions_location"), nullable=True
    )
    status: Mapped[str] = mapped_column(
        String(50), default=UploadStatus.PENDING, server_default=UploadStatus.PENDING, index=True
    )
    total_files: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    dag_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)


class PhotoJob(TimestampMixin, Base):
    __tablename__ = "photo_jobs"
    __table_args__ = (
        UniqueConstraint("upload_session_id", "source_ref"),
        Index("ix_photo_jobs_image_id", "image_id"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    upload_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("photo_upload_sessions.upload_session_id", name="fk_photo_jobs_upload_session"),
        nullable=True,
        index=True,
    )
    kind: Mapped[str] = mapped_column(
        String(20), default="ingest", server_default="ingest"
    )  # ingest | reprocess
    image_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    filename: Mapped[str] = mapped_column(String(255))
    # where the file is: an S3 key under temp_uploads/ (web) or a local path (folder import)
    source_ref: Mapped[str] = mapped_column(String(1024))
    staged_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    status: Mapped[str] = mapped_column(
        String(50), default=JobStatus.PENDING, server_default=JobStatus.PENDING, index=True
    )
    progress_percent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    processing_session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    dag_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)


class S3Image(TimestampMixin, Base):
    __tablename__ = "s3_images"
    __table_args__ = (
        Index("idx_s3_images_status", "status"),
        Index("idx_s3_images_uploaded_by", "uploaded_by"),
        Index("idx_s3_images_created_at", "created_at"),
        Index("idx_s3_images_sha256", "sha256"),
    )

    image_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    s3_bucket: Mapped[str] = mapped_column(String(255))
    s3_key_original: Mapped[str] = mapped_column(String(512), unique=True)
    s3_key_thumbnail: Mapped[str | None] = mapped_column(String(512), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    width_px: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height_px: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exif_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # {lat, lon, altitude, accuracy}
    gps_coordinates: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    upload_source: Mapped[str | None] = mapped_column(String(50), nullable=True)
    uploaded_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(
        String(50), default=ImageStatus.UPLOADED, server_default=ImageStatus.UPLOADED
    )
    error_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    processing_status_updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # additions: content hash, original file name, what this object is
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    original_filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    image_kind: Mapped[str] = mapped_column(
        String(20), default="original", server_default="original"
    )  # original | annotated
    upload_session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class PhotoProcessingSession(TimestampMixin, Base):
    __tablename__ = "photo_processing_sessions"
    __table_args__ = (
        Index("idx_sessions_status", "status"),
        Index("idx_sessions_storage_location", "storage_location_id"),
        Index("idx_sessions_original_image", "original_image_id"),
        Index("idx_sessions_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    storage_location_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_locations.id", name="fk_photo_sessions_location"), nullable=True
    )
    original_image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("s3_images.image_id", name="fk_photo_sessions_original_image")
    )
    processed_image_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("s3_images.image_id", name="fk_photo_sessions_processed_image"), nullable=True
    )
    total_detected: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_estimated: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_empty_containers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    avg_confidence: Mapped[float | None] = mapped_column(Numeric(5, 4), nullable=True)
    category_counts: Mapped[dict[str, int] | None] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(
        String(50), default=SessionStatus.PENDING, server_default=SessionStatus.PENDING
    )
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    validated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    validated_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    validation_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    manual_adjustments: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # additions: warning states, where the location came from, quality, provenance
    needs_location: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    needs_config: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    needs_calibration: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    warning_details: Mapped[dict[str, str] | None] = mapped_column(JSONType, nullable=True)
    location_source: Mapped[str | None] = mapped_column(String(20), nullable=True)  # gps | manual
    quality_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_band: Mapped[str | None] = mapped_column(String(16), nullable=True)
    detector_backend: Mapped[str | None] = mapped_column(String(32), nullable=True)
    regions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    upload_session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    trigger: Mapped[str] = mapped_column(
        String(20), default="ingest", server_default="ingest"
    )  # ingest | reprocess
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    dag_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    processing_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
