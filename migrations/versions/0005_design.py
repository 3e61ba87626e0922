"""design: images (separate pHash/dHash, unique per shop), NAS hashes, duplicates, mockups,
Etsy listings

Revision ID: 0005_design
Revises: 0001_common
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_design"
down_revision = "0001_common"
branch_labels = ("design",)
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
        "design_images",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("template", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("source_name", sa.String(512), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("phash", sa.String(64), nullable=False),
        sa.Column("dhash", sa.String(64), nullable=False),
        sa.Column("colour", sa.String(144), nullable=False),
        sa.Column("nas_path", sa.String(1024), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_design_images"),
        sa.UniqueConstraint("shop", "phash", "dhash", name="uq_design_images_shop_phash_dhash"),
    )
    op.create_index("ix_design_images_shop", "design_images", ["shop"])
    op.create_index("ix_design_images_source_sha256", "design_images", ["source_sha256"])

    op.create_table(
        "design_nas_files",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("phash", sa.String(64), nullable=True),
        sa.Column("dhash", sa.String(64), nullable=True),
        sa.Column("colour", sa.String(144), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_design_nas_files"),
        sa.UniqueConstraint("path", name="uq_design_nas_files_path"),
    )
    op.create_index("ix_design_nas_files_shop", "design_nas_files", ["shop"])

    op.create_table(
        "design_duplicates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("source_name", sa.String(512), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("matched_kind", sa.String(16), nullable=False),
        sa.Column("matched_ref", sa.String(1024), nullable=False),
        sa.Column("design_image_id", sa.Integer(), nullable=True),
        sa.Column("key_distance", sa.Integer(), nullable=False),
        sa.Column("phash_distance", sa.Integer(), nullable=False),
        sa.Column("dhash_distance", sa.Integer(), nullable=False),
        sa.Column("colour_distance", sa.Float(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_design_duplicates"),
        sa.ForeignKeyConstraint(
            ["design_image_id"],
            ["design_images.id"],
            name="fk_design_duplicates_design_image_id_design_images",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint(
            "run_id", "source_name", name="uq_design_duplicates_run_id_source_name"
        ),
    )
    op.create_index("ix_design_duplicates_shop", "design_duplicates", ["shop"])

    op.create_table(
        "design_mockups",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("design_image_id", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(128), nullable=False),
        sa.Column("mockup", sa.String(128), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_design_mockups"),
        sa.ForeignKeyConstraint(
            ["design_image_id"],
            ["design_images.id"],
            name="fk_design_mockups_design_image_id_design_images",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "design_image_id",
            "template",
            "mockup",
            name="uq_design_mockups_design_image_id_template_mockup",
        ),
    )

    op.create_table(
        "design_listings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("design_image_id", sa.Integer(), nullable=False),
        sa.Column("shop", sa.String(128), nullable=False),
        sa.Column("idempotency_tag", sa.String(20), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=True),
        sa.Column("outbox_path", sa.String(1024), nullable=True),
        sa.Column("images", JSONType, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_design_listings"),
        sa.ForeignKeyConstraint(
            ["design_image_id"],
            ["design_images.id"],
            name="fk_design_listings_design_image_id_design_images",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("design_image_id", name="uq_design_listings_design_image_id"),
        sa.UniqueConstraint("idempotency_tag", name="uq_design_listings_idempotency_tag"),
    )


def downgrade() -> None:
    op.drop_table("design_listings")
    op.drop_table("design_mockups")
    op.drop_table("design_duplicates")
    op.drop_table("design_nas_files")
    op.drop_table("design_images")
