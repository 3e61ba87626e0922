"""Apply the app database's Alembic migrations (``migrations/``) programmatically."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from include.common.settings import PROJECT_ROOT


def alembic_config(url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, target: str = "heads") -> None:
    """Bring the database at ``url`` to the newest revision of every domain branch."""
    command.upgrade(alembic_config(url), target)


if __name__ == "__main__":  # python -m include.common.migrate URL
    import sys

    upgrade(sys.argv[1])
