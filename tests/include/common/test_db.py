"""The app database on both dialects: migrations match the models, upserts and the item ledger."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from include.common.db import load_all_models, make_engine, session_scope, upsert
from include.common.items import get_item, keys_with_status, record_item, status_counts
from include.common.models import ItemRecord, ItemStatus


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(
        "pg_app_db_url" if request.param == "postgresql" else "sqlite_app_db_url"
    )


def test_migrations_match_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    metadata = load_all_models()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, metadata)
    # index/constraint naming differences across dialects are not schema drift
    drift = [
        d for d in diff if not (isinstance(d, tuple) and d[0] in ("remove_index", "add_index"))
    ]
    summary = [_describe(d) for d in drift]
    assert summary == [], f"models and migrations differ on {engine.dialect.name}: {summary}"


def _describe(d: object) -> str:
    if isinstance(d, tuple):
        op, *rest = d
        names = [getattr(x, "name", None) or getattr(x, "key", None) for x in rest]
        return f"{op} " + " ".join(str(n) for n in names if n)
    if isinstance(d, list):  # column modifications come as lists of tuples
        return "; ".join(f"{x[0]} {x[2]}.{x[3]}" for x in d if isinstance(x, tuple) and len(x) > 3)
    return repr(d)


def test_item_ledger_upsert_and_attempts(db_url: str) -> None:
    engine = make_engine(db_url)
    key = f"folder-{db_url[-12:]}"
    with session_scope(engine) as s:
        record_item(s, pipeline="reef", kind="folder", key=key, status=ItemStatus.PROCESSING)
    with session_scope(engine) as s:
        record_item(
            s, pipeline="reef", kind="folder", key=key, status=ItemStatus.FAILED, error="boom"
        )
    with session_scope(engine) as s:
        record_item(
            s,
            pipeline="reef",
            kind="folder",
            key=key,
            status=ItemStatus.DONE,
            checksum="abc",
            detail={"files": 3},
        )
    with session_scope(engine) as s:
        item = get_item(s, "reef", "folder", key)
        assert item is not None
        assert (item.status, item.attempts, item.checksum, item.error, item.detail) == (
            "done",
            2,
            "abc",
            None,
            {"files": 3},
        )
        assert key in keys_with_status(s, "reef", "folder")
        assert status_counts(s, "reef", "folder")["done"] >= 1
        n = s.scalar(select(func.count()).select_from(ItemRecord).where(ItemRecord.item_key == key))
        assert n == 1


def test_record_item_rejects_unknown_status(db_url: str) -> None:
    with session_scope(make_engine(db_url)) as s, pytest.raises(ValueError):
        record_item(s, pipeline="x", kind="y", key="z", status="finished")


def test_upsert_do_nothing_keeps_first(db_url: str) -> None:
    engine = make_engine(db_url)
    row = {
        "pipeline": "t",
        "kind": "k",
        "item_key": f"race-{db_url[-8:]}",
        "status": "done",
        "attempts": 0,
    }
    with session_scope(engine) as s:
        upsert(s, ItemRecord, row, ("pipeline", "kind", "item_key"), update_cols=[])
        upsert(
            s,
            ItemRecord,
            {**row, "status": "failed"},
            ("pipeline", "kind", "item_key"),
            update_cols=[],
        )
    with session_scope(engine) as s:
        assert get_item(s, "t", "k", row["item_key"]).status == "done"


def test_session_scope_rolls_back(db_url: str) -> None:
    engine = make_engine(db_url)
    key = f"rollback-{db_url[-8:]}"
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        record_item(s, pipeline="t", kind="k", key=key, status="done")
        raise RuntimeError("crash before commit")
    with session_scope(engine) as s:
        assert get_item(s, "t", "k", key) is None
