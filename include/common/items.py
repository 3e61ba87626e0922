"""Read and write the per-item ledger (:class:`include.common.models.ItemRecord`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from include.common.db import upsert
from include.common.models import ItemRecord, ItemStatus


def record_item(
    session: Session,
    *,
    pipeline: str,
    kind: str,
    key: str,
    status: str,
    checksum: str | None = None,
    error: str | None = None,
    detail: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> None:
    """Insert or update one item; ``attempts`` counts how often it was recorded as processing/failed."""
    if status not in ItemStatus.ALL:
        raise ValueError(f"unknown status {status!r}")
    upsert(
        session,
        ItemRecord,
        {
            "pipeline": pipeline,
            "kind": kind,
            "item_key": key,
            "status": status,
            "checksum": checksum,
            "error": error,
            "detail": detail,
            "run_id": run_id,
            "attempts": 0,
        },
        conflict_cols=("pipeline", "kind", "item_key"),
        update_cols=("status", "checksum", "error", "detail", "run_id"),
    )
    if status in (ItemStatus.PROCESSING, ItemStatus.FAILED):
        session.execute(
            update(ItemRecord)
            .where(
                ItemRecord.pipeline == pipeline,
                ItemRecord.kind == kind,
                ItemRecord.item_key == key,
            )
            .values(attempts=ItemRecord.attempts + 1)
        )


def get_item(session: Session, pipeline: str, kind: str, key: str) -> ItemRecord | None:
    return session.scalar(
        select(ItemRecord).where(
            ItemRecord.pipeline == pipeline, ItemRecord.kind == kind, ItemRecord.item_key == key
        )
    )


def keys_with_status(
    session: Session, pipeline: str, kind: str, statuses: Iterable[str] = (ItemStatus.DONE,)
) -> set[str]:
    rows = session.scalars(
        select(ItemRecord.item_key).where(
            ItemRecord.pipeline == pipeline,
            ItemRecord.kind == kind,
            ItemRecord.status.in_(list(statuses)),
        )
    )
    return set(rows)


def status_counts(session: Session, pipeline: str, kind: str) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.execute(
        select(ItemRecord.status, func.count())
        .where(ItemRecord.pipeline == pipeline, ItemRecord.kind == kind)
        .group_by(ItemRecord.status)
    )
    return {status: int(n) for status, n in rows}
