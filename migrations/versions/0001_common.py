"""common: the per-item ledger

Revision ID: 0001_common
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_common"
down_revision = None
branch_labels = ("common",)
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "item_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("item_key", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("checksum", sa.String(128), nullable=True),
        sa.Column("run_id", sa.String(250), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", JSONType, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_item_records"),
        sa.UniqueConstraint(
            "pipeline", "kind", "item_key", name="uq_item_records_pipeline_kind_item_key"
        ),
    )
    op.create_index("ix_item_records_pipeline", "item_records", ["pipeline"])
    op.create_index("ix_item_records_status", "item_records", ["status"])


def downgrade() -> None:
    op.drop_table("item_records")
