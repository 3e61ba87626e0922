"""Alembic environment of the app database. Every domain's tables live on ``include.common.db.Base``;
each domain has its own migration branch (``branch_labels``) off ``0001_common``, and the setup
upgrades to ``heads``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from include.common.db import configure_engine, load_all_models

config = context.config
target_metadata = load_all_models()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    url = url or os.environ.get("IMAGING_DB_URL")
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set IMAGING_DB_URL")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = configure_engine(create_engine(_url(), poolclass=pool.NullPool))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
