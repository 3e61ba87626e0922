"""Tables shared by every pipeline.

``item_records`` is the per-item ledger that keeps every pipeline idempotent: one row per
(pipeline, kind, item_key) — a processed timelapse folder, an uploaded batch, a hashed image, a
moved frame — with its status, checksum and details. A step asks the ledger what is done, does the
rest, and records each item only after its effect is durable (write-then-commit).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from include.common.db import Base, JSONType, TimestampMixin


class ItemStatus:
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"

    ALL = (PENDING, PROCESSING, DONE, FAILED, SKIPPED)


class ItemRecord(TimestampMixin, Base):
    __tablename__ = "item_records"
    __table_args__ = (UniqueConstraint("pipeline", "kind", "item_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    item_key: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(32), index=True)
    checksum: Mapped[str | None] = mapped_column(String(128), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
