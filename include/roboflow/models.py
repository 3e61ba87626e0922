"""Tables of the Roboflow upload pipeline (``roboflow_upload``).

* ``roboflow_batches`` — one row per planned upload batch (unique per project and batch key); the
  seed's ``{submitted, completed, failed, pending}`` are batch states. A batch is ``completed`` only
  when every one of its images is confirmed by the API.
* ``roboflow_images`` — one row per image file (unique per project and image key
  ``<dataset name>/<path in the dataset>``) with its content hash, split, batch, the API's image id
  once confirmed, attempts and the last error. A ``duplicate`` answer confirms the image.

Scan problems (bad files) go to the shared ledger ``item_records`` (pipeline ``roboflow_upload``,
kind ``scan_error``) and run statistics to kind ``run_stats``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from include.common.db import Base, JSONType, TimestampMixin

PIPELINE = "roboflow_upload"


class Status:
    PENDING = "pending"  # planned, not sent yet
    SUBMITTED = "submitted"  # sent (or being sent), not confirmed yet
    COMPLETED = "completed"  # confirmed by the API (success or duplicate)
    FAILED = "failed"  # gave up after retries, or rejected by the API

    ALL = (PENDING, SUBMITTED, COMPLETED, FAILED)


class RoboflowBatch(TimestampMixin, Base):
    __tablename__ = "roboflow_batches"
    __table_args__ = (UniqueConstraint("project", "batch_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(200))
    batch_key: Mapped[str] = mapped_column(String(300))
    split: Mapped[str] = mapped_column(String(16))
    dataset_dir: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), index=True)
    n_images: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_completed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class RoboflowImage(TimestampMixin, Base):
    __tablename__ = "roboflow_images"
    __table_args__ = (
        UniqueConstraint("project", "image_key"),
        Index("ix_roboflow_images_project_batch_key", "project", "batch_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(200))
    image_key: Mapped[str] = mapped_column(String(1024))
    batch_key: Mapped[str] = mapped_column(String(300))
    split: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(2048))
    label_path: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    remote_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
