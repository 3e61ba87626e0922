"""photos: warehouses, storage locations (GPS areas, config, calibration), upload sessions, jobs,
s3_images and photo_processing_sessions with warning states

Revision ID: 0004_photos
Revises: 0001_common
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_photos"
down_revision = "0001_common"
branch_labels = ("photos",)
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
        "warehouses",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("area_polygon", JSONType, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_warehouses"),
        sa.UniqueConstraint("code", name="uq_warehouses_code"),
    )
    op.create_table(
        "storage_locations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("area_polygon", JSONType, nullable=False),
        sa.Column("config", JSONType, nullable=True),
        sa.Column("calibration", JSONType, nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_storage_locations"),
        sa.UniqueConstraint("code", name="uq_storage_locations_code"),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["warehouses.id"],
            name="fk_storage_locations_warehouse_id_warehouses",
        ),
    )
    op.create_index("ix_storage_locations_warehouse_id", "storage_locations", ["warehouse_id"])

    op.create_table(
        "photo_upload_sessions",
        sa.Column("upload_session_id", sa.Uuid(), nullable=False),
        sa.Column("uploaded_by", sa.String(255), nullable=True),
        sa.Column("upload_source", sa.String(50), nullable=False),
        sa.Column("source_ref", sa.String(1024), nullable=True),
        sa.Column("storage_location_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(50), server_default="pending", nullable=False),
        sa.Column("total_files", sa.Integer(), server_default="0", nullable=False),
        sa.Column("summary", JSONType, nullable=True),
        sa.Column("dag_run_id", sa.String(250), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("upload_session_id", name="pk_photo_upload_sessions"),
        sa.ForeignKeyConstraint(
            ["storage_location_id"],
            ["storage_locations.id"],
            name="fk_photo_upload_sessions_location",
        ),
    )
    op.create_index("ix_photo_upload_sessions_status", "photo_upload_sessions", ["status"])

    op.create_table(
        "photo_jobs",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("upload_session_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(20), server_default="ingest", nullable=False),
        sa.Column("image_id", sa.Uuid(), nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("source_ref", sa.String(1024), nullable=False),
        sa.Column("staged_key", sa.String(1024), nullable=True),
        sa.Column("status", sa.String(50), server_default="pending", nullable=False),
        sa.Column("progress_percent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("processing_session_id", sa.Uuid(), nullable=True),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("dag_run_id", sa.String(250), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("job_id", name="pk_photo_jobs"),
        sa.ForeignKeyConstraint(
            ["upload_session_id"],
            ["photo_upload_sessions.upload_session_id"],
            name="fk_photo_jobs_upload_session",
        ),
        sa.UniqueConstraint(
            "upload_session_id", "source_ref", name="uq_photo_jobs_upload_session_id_source_ref"
        ),
    )
    op.create_index("ix_photo_jobs_upload_session_id", "photo_jobs", ["upload_session_id"])
    op.create_index("ix_photo_jobs_status", "photo_jobs", ["status"])
    op.create_index("ix_photo_jobs_image_id", "photo_jobs", ["image_id"])

    op.create_table(
        "s3_images",
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column("s3_bucket", sa.String(255), nullable=False),
        sa.Column("s3_key_original", sa.String(512), nullable=False),
        sa.Column("s3_key_thumbnail", sa.String(512), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("width_px", sa.Integer(), nullable=True),
        sa.Column("height_px", sa.Integer(), nullable=True),
        sa.Column("exif_metadata", JSONType, nullable=True),
        sa.Column("gps_coordinates", JSONType, nullable=True),
        sa.Column("upload_source", sa.String(50), nullable=True),
        sa.Column("uploaded_by", sa.String(255), nullable=True),
        sa.Column("status", sa.String(50), server_default="uploaded", nullable=False),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("processing_status_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("original_filename", sa.String(255), nullable=True),
        sa.Column("image_kind", sa.String(20), server_default="original", nullable=False),
        sa.Column("upload_session_id", sa.Uuid(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("image_id", name="pk_s3_images"),
        sa.UniqueConstraint("s3_key_original", name="uq_s3_images_s3_key_original"),
    )
    op.create_index("idx_s3_images_status", "s3_images", ["status"])
    op.create_index("idx_s3_images_uploaded_by", "s3_images", ["uploaded_by"])
    op.create_index("idx_s3_images_created_at", "s3_images", ["created_at"])
    op.create_index("idx_s3_images_sha256", "s3_images", ["sha256"])

    op.create_table(
        "photo_processing_sessions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("storage_location_id", sa.Integer(), nullable=True),
        sa.Column("original_image_id", sa.Uuid(), nullable=False),
        sa.Column("processed_image_id", sa.Uuid(), nullable=True),
        sa.Column("total_detected", sa.Integer(), nullable=True),
        sa.Column("total_estimated", sa.Integer(), nullable=True),
        sa.Column("total_empty_containers", sa.Integer(), nullable=True),
        sa.Column("avg_confidence", sa.Numeric(5, 4), nullable=True),
        sa.Column("category_counts", JSONType, nullable=True),
        sa.Column("status", sa.String(50), server_default="pending", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("validated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("validated_by", sa.String(255), nullable=True),
        sa.Column("validation_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manual_adjustments", JSONType, nullable=True),
        sa.Column("needs_location", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("needs_config", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "needs_calibration", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("warning_details", JSONType, nullable=True),
        sa.Column("location_source", sa.String(20), nullable=True),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("quality_band", sa.String(16), nullable=True),
        sa.Column("detector_backend", sa.String(32), nullable=True),
        sa.Column("regions", JSONType, nullable=True),
        sa.Column("upload_session_id", sa.Uuid(), nullable=True),
        sa.Column("trigger", sa.String(20), server_default="ingest", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("dag_run_id", sa.String(250), nullable=True),
        sa.Column("processing_seconds", sa.Float(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_photo_processing_sessions"),
        sa.UniqueConstraint("session_id", name="uq_photo_processing_sessions_session_id"),
        sa.ForeignKeyConstraint(
            ["storage_location_id"],
            ["storage_locations.id"],
            name="fk_photo_sessions_location",
        ),
        sa.ForeignKeyConstraint(
            ["original_image_id"],
            ["s3_images.image_id"],
            name="fk_photo_sessions_original_image",
        ),
        sa.ForeignKeyConstraint(
            ["processed_image_id"],
            ["s3_images.image_id"],
            name="fk_photo_sessions_processed_image",
        ),
    )
    op.create_index("idx_sessions_status", "photo_processing_sessions", ["status"])
    op.create_index(
        "idx_sessions_storage_location", "photo_processing_sessions", ["storage_location_id"]
    )
    op.create_index(
        "idx_sessions_original_image", "photo_processing_sessions", ["original_image_id"]
    )
    op.create_index("idx_sessions_created_at", "photo_processing_sessions", ["created_at"])


def downgrade() -> None:
    op.drop_table("photo_processing_sessions")
    op.drop_table("s3_images")
    op.drop_table("photo_jobs")
    op.drop_table("photo_upload_sessions")
    op.drop_table("storage_locations")
    op.drop_table("warehouses")
