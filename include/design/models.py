"""Tables of the design pipeline (migrations ``0005_design``, ``0007_design_best_copy``,
``0008_design_crop_alias``).

The seed stored one combined hash string and inserted with ``ON CONFLICT (phash) DO NOTHING``
without any unique index on ``phash`` (PostgreSQL rejects that statement). Here pHash and dHash
are separate 64-hex-digit columns and ``(shop, phash, dhash)`` is a real unique constraint, so the
insert is ``ON CONFLICT (shop, phash, dhash) DO NOTHING`` and two racing runs cannot both store the
same image. Near-duplicates (not bit-identical hashes) are found by the index before the insert.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from include.common.db import Base, JSONType, TimestampMixin


class DesignImage(TimestampMixin, Base):
    """A design stored on the NAS (one row per distinct image and shop)."""

    __tablename__ = "design_images"
    __table_args__ = (UniqueConstraint("shop", "phash", "dhash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop: Mapped[str] = mapped_column(String(128), index=True)
    template: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source_name: Mapped[str] = mapped_column(String(512))
    source_sha256: Mapped[str] = mapped_column(String(64), index=True)
    phash: Mapped[str] = mapped_column(String(64))
    dhash: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str] = mapped_column(String(144))
    nas_path: Mapped[str] = mapped_column(String(1024))
    format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    # the crop alias' pHash/dHash (hashing.crop_alias, migration 0008): written at insert time;
    # rows stored before it are filled from the NAS file by pipeline.backfill_nas
    alias_phash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    alias_dhash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the source file's quality facts (include.design.quality.Quality): is a later upload better?
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class DesignShopLock(Base):
    """One row per shop, updated at the start of the duplicate check + insert transaction: the row
    lock (PostgreSQL) or the database write lock (SQLite) serializes the check and the insert per
    shop until commit, so two simultaneous runs never store two copies of one design."""

    __tablename__ = "design_shop_locks"

    shop: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(250), nullable=True)
    taken: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class DesignReplacement(TimestampMixin, Base):
    """A later upload that is a better copy of a stored design, and the human answer (approval
    task): ``pending`` until answered, then ``keep`` or ``replace``, ``replaced`` once applied. The
    answer is data: a rerun or a later upload of the same file finds it and does not ask again."""

    __tablename__ = "design_replacements"
    __table_args__ = (UniqueConstraint("shop", "design_image_id", "candidate_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop: Mapped[str] = mapped_column(String(128), index=True)
    design_image_id: Mapped[int] = mapped_column(ForeignKey("design_images.id", ondelete="CASCADE"))
    candidate_sha256: Mapped[str] = mapped_column(String(64))
    candidate_name: Mapped[str] = mapped_column(String(512))
    run_id: Mapped[str] = mapped_column(String(250))  # the run that found (and asks about) it
    candidate: Mapped[dict[str, Any]] = mapped_column(JSONType)  # hashes, quality, prepared file
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # pending | keep | replace | replaced
    answered_by: Mapped[str | None] = mapped_column(String(250), nullable=True)
    old_nas_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    new_nas_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class DesignNasFile(TimestampMixin, Base):
    """Hashes of files found on the NAS (backfilled once; rehashed only when size/mtime change)."""

    __tablename__ = "design_nas_files"
    __table_args__ = (UniqueConstraint("path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop: Mapped[str] = mapped_column(String(128), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    phash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dhash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    colour: Mapped[str | None] = mapped_column(String(144), nullable=True)
    alias_phash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # crop alias
    alias_dhash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class DesignDuplicate(TimestampMixin, Base):
    """An upload skipped as a near-duplicate, with what it duplicates."""

    __tablename__ = "design_duplicates"
    __table_args__ = (UniqueConstraint("run_id", "source_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(250))
    shop: Mapped[str] = mapped_column(String(128), index=True)
    source_name: Mapped[str] = mapped_column(String(512))
    source_sha256: Mapped[str] = mapped_column(String(64))
    matched_kind: Mapped[str] = mapped_column(String(16))  # database | nas | run
    matched_ref: Mapped[str] = mapped_column(String(1024))
    design_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("design_images.id", ondelete="SET NULL"), nullable=True
    )
    key_distance: Mapped[int] = mapped_column(Integer)
    phash_distance: Mapped[int] = mapped_column(Integer)
    dhash_distance: Mapped[int] = mapped_column(Integer)
    colour_distance: Mapped[float] = mapped_column(Float)


class DesignMockup(TimestampMixin, Base):
    __tablename__ = "design_mockups"
    __table_args__ = (UniqueConstraint("design_image_id", "template", "mockup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    design_image_id: Mapped[int] = mapped_column(ForeignKey("design_images.id", ondelete="CASCADE"))
    template: Mapped[str] = mapped_column(String(128))
    mockup: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))


class DesignListing(TimestampMixin, Base):
    """One Etsy listing per design: the row is claimed (``pending``) before the listing is created,
    so a retry finds it and never creates a second listing."""

    __tablename__ = "design_listings"
    __table_args__ = (UniqueConstraint("design_image_id"), UniqueConstraint("idempotency_tag"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    design_image_id: Mapped[int] = mapped_column(ForeignKey("design_images.id", ondelete="CASCADE"))
    shop: Mapped[str] = mapped_column(String(128))
    idempotency_tag: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(16))  # pending | created | complete | outbox | failed
    listing_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outbox_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    images: Mapped[list[Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
