"""design: quality facts of stored designs, per-shop lock rows, better-copy replacements

Revision ID: 0007_design_best_copy
Revises: 0005_design
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_design_best_copy"
down_revision = "0005_design"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("design_images") as batch:
        batch.add_column(sa.Column("quality", JSONType, nullable=True))

    op.create_table(
        "design_shop_locks",
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(250), nullable=True),
        sa.Column("taken", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("shop", name="pk_design_shop_locks"),
    )

    op.create_table(
        "design_replacements",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("design_image_id", sa.Integer(), nullable=False),
        sa.Column("candidate_sha256", sa.String(64), nullable=False),
        sa.Column("candidate_name", sa.String(512), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("candidate", JSONType, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("answered_by", sa.String(250), nullable=True),
        sa.Column("old_nas_path", sa.String(1024), nullable=True),
        sa.Column("new_nas_path", sa.String(1024), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_design_replacements"),
        sa.ForeignKeyConstraint(
            ["design_image_id"],
            ["design_images.id"],
            name="fk_design_replacements_design_image_id_design_images",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "shop",
            "design_image_id",
            "candidate_sha256",
            name="uq_design_replacements_shop_design_image_id_candidate_sha256",
        ),
    )
    op.create_index("ix_design_replacements_shop", "design_replacements", ["shop"])


def downgrade() -> None:
    op.drop_index("ix_design_replacements_shop", table_name="design_replacements")
    op.drop_table("design_replacements")
    op.drop_table("design_shop_locks")
    with op.batch_alter_table("design_images") as batch:
        batch.drop_column("quality")
