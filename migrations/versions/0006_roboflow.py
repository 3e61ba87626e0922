"""roboflow: upload batches and images

Revision ID: 0006_roboflow
Revises: 0001_common
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_roboflow"
down_revision = "0001_common"
branch_labels = ("roboflow",)
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "roboflow_batches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("batch_key", sa.String(300), nullable=False),
        sa.Column("split", sa.String(16), nullable=False),
        sa.Column("dataset_dir", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n_images", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_completed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("run_id", sa.String(250), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", JSONType, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_roboflow_batches"),
        sa.UniqueConstraint("project", "batch_key", name="uq_roboflow_batches_project_batch_key"),
    )
    op.create_index("ix_roboflow_batches_status", "roboflow_batches", ["status"])
    op.create_table(
        "roboflow_images",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("image_key", sa.String(1024), nullable=False),
        sa.Column("batch_key", sa.String(300), nullable=False),
        sa.Column("split", sa.String(16), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("label_path", sa.String(2048), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("remote_id", sa.String(200), nullable=True),
        sa.Column("duplicate", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(250), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_roboflow_images"),
        sa.UniqueConstraint("project", "image_key", name="uq_roboflow_images_project_image_key"),
    )
    op.create_index("ix_roboflow_images_status", "roboflow_images", ["status"])
    op.create_index(
        "ix_roboflow_images_project_batch_key", "roboflow_images", ["project", "batch_key"]
    )


def downgrade() -> None:
    op.drop_table("roboflow_images")
    op.drop_table("roboflow_batches")
