"""The design tables as migrated (0005_design) on both dialects: the model matches the migration,
and the unique constraints the pipeline relies on are real."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from include.common.db import load_all_models, make_engine, session_scope, upsert
from include.design.models import DesignImage, DesignListing


def _row(**kw: object) -> dict[str, object]:
    base = {
        "shop": "m-shop", "template": "t", "user_id": None, "source_name": "a.png", "source_sha256": "0" * 64,
        "phash": "a" * 64, "dhash": "b" * 64, "colour": "80" * 72, "nas_path": "m-shop/t/a.png",
        "format": "PNG", "width": 10, "height": 10, "run_id": "r",
    }  # fmt: skip
    return {**base, **kw}


@pytest.mark.parametrize("url_fixture", ["pg_app_db_url", "sqlite_app_db_url"])
def test_models_match_migration_and_constraints_hold(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    engine = make_engine(request.getfixturevalue(url_fixture))
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), load_all_models())
    assert [d for d in diffs if "design_" in str(d)] == []
    shop = f"m-shop-{url_fixture[:2]}"
    with session_scope(engine) as s:
        upsert(
            s,
            DesignImage,
            [_row(shop=shop), _row(shop=shop, source_name="b.png")],
            ("shop", "phash", "dhash"),
            [],
        )
        assert (
            s.scalar(select(func.count()).select_from(DesignImage).where(DesignImage.shop == shop))
            == 1
        )
        upsert(s, DesignImage, _row(shop=shop, dhash="c" * 64), ("shop", "phash", "dhash"), [])
        ids = s.scalars(select(DesignImage.id).where(DesignImage.shop == shop)).all()
        assert len(ids) == 2
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add_all(
            [
                DesignImage(**_row(shop=shop, dhash="d" * 64)),
                DesignImage(**_row(shop=shop, dhash="d" * 64)),
            ]
        )
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add_all(
            [
                DesignListing(
                    design_image_id=ids[0], shop=shop, idempotency_tag=f"t-{shop}", state="pending"
                ),
                DesignListing(
                    design_image_id=ids[0], shop=shop, idempotency_tag=f"u-{shop}", state="pending"
                ),
            ]
        )
