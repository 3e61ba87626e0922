"""design: crop-alias hashes of stored designs and NAS files (nullable: rows stored before are
backfilled from their NAS file by ``pipeline.backfill_nas``)

Revision ID: 0008_design_crop_alias
Revises: 0007_design_best_copy
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_design_crop_alias"
down_revision = "0007_design_best_copy"
branch_labels = None
depends_on = None

TABLES = ("design_images", "design_nas_files")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("alias_phash", sa.String(64), nullable=True))
            batch.add_column(sa.Column("alias_dhash", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("alias_dhash")
            batch.drop_column("alias_phash")
