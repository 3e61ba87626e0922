"""astro: catalog of equipment, locations, targets, filters and accepted light sets

Revision ID: 0002_astro
Revises: 0001_common
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_astro"
down_revision = "0001_common"
branch_labels = ("astro",)
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
        "astro_camera",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_astro_camera"),
        sa.UniqueConstraint("name", name="uq_astro_camera_name"),
    )
    op.create_table(
        "astro_optic",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("focal_ratio", sa.String(16), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_astro_optic"),
        sa.UniqueConstraint("name", "focal_ratio", name="uq_astro_optic_name_focal_ratio"),
    )
    op.create_table(
        "astro_location",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("bortle", sa.Integer(), nullable=True),
        sa.Column("magnitude", sa.Float(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_astro_location"),
        sa.UniqueConstraint("name", name="uq_astro_location_name"),
    )
    op.create_table(
        "astro_target",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(300), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_astro_target"),
        sa.UniqueConstraint("name", name="uq_astro_target_name"),
    )
    op.create_table(
        "astro_filter",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("astrobin_id", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_astro_filter"),
        sa.UniqueConstraint("name", name="uq_astro_filter_name"),
    )
    op.create_table(
        "astro_profile",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("filter_names", sa.String(300), server_default="", nullable=False),
        sa.Column("optic_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_astro_profile"),
        sa.UniqueConstraint("optic_id", "camera_id", name="uq_astro_profile_optic_id_camera_id"),
        sa.UniqueConstraint("name", name="uq_astro_profile_name"),
        sa.ForeignKeyConstraint(
            ["optic_id"], ["astro_optic.id"], name="fk_astro_profile_optic_id_astro_optic"
        ),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["astro_camera.id"], name="fk_astro_profile_camera_id_astro_camera"
        ),
    )
    op.create_table(
        "astro_accepted_data",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("optic_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("filter_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("panel_name", sa.String(64), server_default="", nullable=False),
        sa.Column("shutter_time_seconds", sa.String(16), nullable=False),
        sa.Column("raw_directory", sa.String(1024), nullable=False),
        sa.Column("rig", sa.String(300), nullable=False),
        sa.Column("accepted_count", sa.Integer(), nullable=False),
        sa.Column("integration_seconds", sa.Float(), nullable=False),
        sa.Column("hfr_median", sa.Float(), nullable=True),
        sa.Column("detail", JSONType, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_astro_accepted_data"),
        sa.UniqueConstraint(
            "camera_id",
            "optic_id",
            "location_id",
            "target_id",
            "filter_id",
            "date",
            "panel_name",
            "shutter_time_seconds",
            "raw_directory",
            name="uq_astro_accepted_data_key",
        ),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["astro_camera.id"], name="fk_astro_accepted_data_camera_id_astro_camera"
        ),
        sa.ForeignKeyConstraint(
            ["optic_id"], ["astro_optic.id"], name="fk_astro_accepted_data_optic_id_astro_optic"
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["astro_location.id"],
            name="fk_astro_accepted_data_location_id_astro_location",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["astro_target.id"], name="fk_astro_accepted_data_target_id_astro_target"
        ),
        sa.ForeignKeyConstraint(
            ["filter_id"], ["astro_filter.id"], name="fk_astro_accepted_data_filter_id_astro_filter"
        ),
    )
    op.create_index(
        "ix_astro_accepted_data_raw_directory", "astro_accepted_data", ["raw_directory"]
    )
    op.create_index("ix_astro_accepted_data_rig", "astro_accepted_data", ["rig"])


def downgrade() -> None:
    op.drop_table("astro_accepted_data")
    op.drop_table("astro_profile")
    op.drop_table("astro_filter")
    op.drop_table("astro_target")
    op.drop_table("astro_location")
    op.drop_table("astro_optic")
    op.drop_table("astro_camera")
