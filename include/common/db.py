"""The app database: one SQLAlchemy 2 declarative base for every pipeline, engines, sessions, and a
portable upsert that works on PostgreSQL and SQLite.

Domain packages declare their tables in ``include/<domain>/models.py`` on :class:`Base`; Alembic
(``migrations/``) discovers them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL, JSON elsewhere.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TimestampMixin:
    """Audit timestamps set by the database (never used for pipeline logic)."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


def load_all_models() -> MetaData:
    """Import ``include.<domain>.models`` for every domain so that ``Base.metadata`` is complete."""
    import include

    for mod in pkgutil.iter_modules(include.__path__):
        if not mod.ispkg:
            continue
        for name in (f"include.{mod.name}.models",):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
    return Base.metadata


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def configure_engine(engine: Engine) -> Engine:
    """Apply the settings every app-DB engine needs (SQLite: WAL, FKs, busy timeout)."""
    if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_pragmas):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


_ENGINES: dict[str, Engine] = {}


def make_engine(url: str) -> Engine:
    """One pooled engine per URL and process."""
    engine = _ENGINES.get(url)
    if engine is None:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        engine = configure_engine(create_engine(url, **kwargs))
        _ENGINES[url] = engine
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: commit on success, roll back on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def upsert(
    session: Session,
    model: Any,
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    conflict_cols: Iterable[str],
    update_cols: Iterable[str] | None = None,
) -> None:
    """``INSERT ... ON CONFLICT (conflict_cols) DO UPDATE`` on PostgreSQL and SQLite.

    ``update_cols=None`` updates every non-conflict column given in the rows; an empty list means
    ``DO NOTHING`` (safe when two runs race to insert the same item).
    """
    if isinstance(rows, Mapping):
        rows = [rows]
    if not rows:
        return
    table = getattr(model, "__table__", model)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(list(rows))
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(list(rows))
    else:  # pragma: no cover - only the two supported dialects
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    conflict = list(conflict_cols)
    if update_cols is None:
        update_cols = [c for c in rows[0] if c not in conflict]
    update_cols = list(update_cols)
    if not update_cols:
        stmt = stmt.on_conflict_do_nothing(index_elements=conflict)
    else:
        values = {c: stmt.excluded[c] for c in update_cols}
        if "updated_at" in table.c and "updated_at" not in values:
            values["updated_at"] = func.now()
        stmt = stmt.on_conflict_do_update(index_elements=conflict, set_=values)
    session.execute(stmt)
