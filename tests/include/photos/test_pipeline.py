"""The ingest/reprocess steps against real PostgreSQL and the real local S3 server, without
Airflow (the DAG end-to-end tests are in tests/e2e/test_photo_*.py)."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from include.common.db import make_engine, session_scope
from include.common.retry import reset_breakers
from include.photos import pipeline as P
from include.photos.analyze import count_error
from include.photos.models import (
    PhotoJob,
    PhotoProcessingSession,
    PhotoUploadSession,
    S3Image,
    StorageLocation,
)
from include.photos.samples import (
    generate_demo,
    jpeg_bytes,
    make_exif,
    seed_demo_site,
    tray_image,
)
from include.photos.storage import temp_upload_key
from tests.include.photos.ingest_steps import run_ingest


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate_demo(
        tmp_path_factory.mktemp("photos") / "incoming", n_good=2, width=1200, height=900
    )


@pytest.fixture(params=["postgresql", "sqlite"])
def env(request: pytest.FixtureRequest, s3_server: Any, demo: dict[str, Any]) -> dict[str, Any]:
    """Both app-DB dialects (PostgreSQL in production, SQLite in the embedded demo)."""
    reset_breakers()
    url = request.getfixturevalue(
        "pg_app_db_url" if request.param == "postgresql" else "sqlite_app_db_url"
    )
    engine = make_engine(url)
    ids = seed_demo_site(engine, demo)
    assert demo["photo_ingest"]["source_dir"] == demo["dir"]
    return {"engine": engine, "s3": s3_server.client(), "ids": ids}


def _run_all(env: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return run_ingest(env["engine"], env["s3"], **kw)


def _keys(client: Any) -> list[str]:
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="imaging"):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def test_folder_import_statuses_counts_objects_and_rerun(
    env: dict[str, Any], demo: dict[str, Any]
) -> None:
    engine, s3 = env["engine"], env["s3"]
    prep = _run_all(env, source_dir=demo["dir"], uploaded_by="alice")
    assert prep["total"] == len(demo["photos"])
    expected = {p["filename"]: p for p in demo["photos"]}
    with session_scope(engine) as s:
        jobs = {
            j.filename: j
            for j in s.scalars(
                select(PhotoJob).where(
                    PhotoJob.upload_session_id == uuid.UUID(prep["upload_session_id"])
                )
            )
        }
        assert set(jobs) == set(expected)
        for name, exp in expected.items():
            job = jobs[name]
            assert job.status == exp["expect"], (name, job.status, job.error_message)
            if exp["expect"] == "failed":
                assert exp["reason"].lower() in (job.error_message or "").lower(), job.error_message
                continue
            res = job.result
            assert res is not None and job.progress_percent == 100
            total = res["total_detected"] + res["total_estimated"]
            assert count_error(total, exp["plants"]) <= 0.1, (name, total, exp["plants"])
            image = s.get(S3Image, job.image_id)
            # EXIF capture date, else the run's date
            day = "2026/11/20" if image.exif_metadata else "2026/11/21"
            assert image.s3_key_original.startswith(f"originals/{day}/")
            assert image.s3_key_original.endswith(f"{image.image_id}.jpg")
            assert image.uploaded_by == "alice" and image.width_px == 1200
            sess = s.scalar(
                select(PhotoProcessingSession).where(
                    PhotoProcessingSession.session_id == job.processing_session_id
                )
            )
            assert sess.status == exp["expect"]
            assert sess.needs_location == (exp["expect"] == "needs_location")
            assert sess.needs_config == (exp["expect"] == "needs_config")
            if exp["expect"] == "completed":
                assert image.status == "ready" and sess.quality_band in ("high", "medium")
                assert sess.total_empty_containers == exp["empty_containers"]
                assert sess.storage_location_id == env["ids"]["WH-A-R1"]
                assert sess.location_source == "gps"
            else:
                assert image.status == "warning"
                assert image.error_details.startswith(exp["expect"])
        assert "no EXIF" in jobs["no_gps.jpg"].result["warnings"]["needs_location"]
        assert (
            "outside every storage location"
            in jobs["outside_site.jpg"].result["warnings"]["needs_location"]
        )
        up = s.get(PhotoUploadSession, uuid.UUID(prep["upload_session_id"]))
        assert up.status == "partial" and up.summary["failed"] == 5
        assert up.summary["completed"] == 2 and up.summary["warnings"] == 4
        n_rows = s.scalar(select(func.count()).select_from(S3Image))
        n_sessions = s.scalar(select(func.count()).select_from(PhotoProcessingSession))
    keys = _keys(s3)
    good = [p for p in demo["photos"] if p["expect"] != "failed"]
    assert len([k for k in keys if k.startswith("originals/")]) >= len(good)
    assert len([k for k in keys if k.startswith("thumbnails/")]) >= len(good)
    thumb = next(k for k in keys if k.startswith("thumbnails/"))
    thumb_img = Image.open(io.BytesIO(s3.get_object(Bucket="imaging", Key=thumb)["Body"].read()))
    assert thumb_img.size == (300, 300)

    # rerun: nothing new in S3 or the database, statuses unchanged
    _run_all(env, source_dir=demo["dir"], uploaded_by="alice")
    assert sorted(_keys(s3)) == sorted(keys)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(S3Image)) == n_rows
        assert s.scalar(select(func.count()).select_from(PhotoProcessingSession)) == n_sessions


def test_reprocess_after_fixing_configuration_keeps_history(
    env: dict[str, Any], demo: dict[str, Any]
) -> None:
    engine, s3 = env["engine"], env["s3"]
    _run_all(env, source_dir=demo["dir"])
    with session_scope(engine) as s:
        job = s.scalar(select(PhotoJob).where(PhotoJob.filename == "unconfigured_rack.jpg"))
        image_id = job.image_id
        loc = s.get(StorageLocation, env["ids"]["WH-A-R2"])
        loc.config = {"container": "tray", "cells": [6, 8]}
        loc.calibration = {"avg_plant_area_px": 4000.0}
    jid = P.prepare_reprocess(
        engine,
        image_id=str(image_id),
        storage_location_id=None,
        reason="configured R2",
        run_id="manual__fix",
    )
    out = P.process_chunk(
        engine,
        s3,
        "imaging",
        [jid],
        run_id="manual__fix",
        trigger="reprocess",
        reason="configured R2",
    )
    assert out["results"][0]["status"] == "completed"
    # manual location for the photo without GPS
    with session_scope(engine) as s:
        nogps = s.scalar(
            select(PhotoJob).where(PhotoJob.filename == "no_gps.jpg", PhotoJob.kind == "ingest")
        ).image_id
    jid2 = P.prepare_reprocess(
        engine,
        image_id=str(nogps),
        storage_location_id=env["ids"]["WH-A-R1"],
        reason="assigned",
        run_id="manual__fix",
    )

    def reprocess_nogps() -> dict[str, Any]:
        return P.process_chunk(
            engine,
            s3,
            "imaging",
            [jid2],
            override_location_id=env["ids"]["WH-A-R1"],
            run_id="manual__fix",
            trigger="reprocess",
        )["results"][0]

    assert reprocess_nogps()["status"] == "completed"
    assert reprocess_nogps().get("skipped") is True  # idempotent rerun of the same run
    with session_scope(engine) as s:
        hist = s.scalars(
            select(PhotoProcessingSession)
            .where(PhotoProcessingSession.original_image_id == nogps)
            .order_by(PhotoProcessingSession.id)
        ).all()
        assert [h.status for h in hist] == ["needs_location", "completed"]
        assert hist[-1].location_source == "manual" and hist[-1].trigger == "reprocess"
        assert s.get(S3Image, nogps).status == "ready"
    with pytest.raises(LookupError):
        P.prepare_reprocess(
            engine, image_id=str(uuid.uuid4()), storage_location_id=None, reason=None, run_id="x"
        )


def test_web_upload_session_from_staged_objects(env: dict[str, Any]) -> None:
    engine, s3 = env["engine"], env["s3"]
    sid = uuid.uuid4()
    img, truth = tray_image(77, 1200, 900)
    data = jpeg_bytes(img, make_exif((-34.603722, -58.381592)))
    s3.put_object(Bucket="imaging", Key=temp_upload_key(sid, "IMG 1.jpg"), Body=data)
    s3.put_object(Bucket="imaging", Key=temp_upload_key(sid, "broken.jpg"), Body=data[:5000])
    with session_scope(engine) as s:  # what the upload API does
        s.add(PhotoUploadSession(upload_session_id=sid, uploaded_by="bob", upload_source="web"))
    prep = run_ingest(engine, s3, upload_session_id=str(sid), run_id="r")
    assert prep["total"] == 2
    summary = prep["summary"]
    assert summary["by_status"] == {"completed": 1, "failed": 1}
    with session_scope(engine) as s:
        jobs = {
            j.filename: j
            for j in s.scalars(select(PhotoJob).where(PhotoJob.upload_session_id == sid))
        }
        assert "truncated" in jobs["broken.jpg"].error_message
        ok = jobs["IMG_1.jpg"]
        assert (
            count_error(ok.result["total_detected"] + ok.result["total_estimated"], truth.plants)
            <= 0.1
        )
        assert s.get(S3Image, ok.image_id).upload_source == "web"
    with pytest.raises(LookupError):
        P.prepare_upload(engine, upload_session_id=str(uuid.uuid4()))


def test_missing_source_file_fails_only_that_photo(env: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    img, _ = tray_image(5, 600, 450, (3, 4), pots=0)
    (folder / "a.jpg").write_bytes(jpeg_bytes(img, None))
    (folder / "b.jpg").write_bytes(jpeg_bytes(img.rotate(180), None))
    prep = P.prepare_upload(env["engine"], source_dir=str(folder), run_id="r")
    (folder / "b.jpg").unlink()  # vanished between listing and staging
    st = P.stage_chunk(
        env["engine"], env["s3"], "imaging", prep["chunks"][0], run_date="2026-11-21"
    )
    assert len(st["staged"]) == 1 and st["failed"] == 1
    with session_scope(env["engine"]) as s:
        b = s.scalar(select(PhotoJob).where(PhotoJob.source_ref == str(folder / "b.jpg")))
        assert b.status == "failed" and "missing" in b.error_message


def test_prepare_upload_rejects_bad_parameters(env: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        P.prepare_upload(env["engine"])
    with pytest.raises(ValueError, match="exactly one"):
        P.prepare_upload(
            env["engine"], source_dir=str(tmp_path), upload_session_id=str(uuid.uuid4())
        )
    with pytest.raises(FileNotFoundError):
        P.prepare_upload(env["engine"], source_dir=str(tmp_path / "missing"))
    with pytest.raises(LookupError, match="storage location 424242"):
        P.prepare_upload(env["engine"], source_dir=str(tmp_path), storage_location_id=424242)
    empty = P.prepare_upload(env["engine"], source_dir=str(tmp_path))
    assert empty["total"] == 0 and empty["chunks"] == []


def test_unprocessed_photos_show_as_pending_in_the_aggregate(
    env: dict[str, Any], tmp_path: Path
) -> None:
    # what ``aggregate`` sees when a chunk failed for good: it then fails the DAG run
    folder = tmp_path / "stuck"
    folder.mkdir()
    img, _ = tray_image(6, 600, 450, (3, 4), pots=0)
    (folder / "a.jpg").write_bytes(jpeg_bytes(img, None))
    prep = P.prepare_upload(env["engine"], source_dir=str(folder), run_id="r")
    summary = P.finish_upload(env["engine"], prep["upload_session_id"])
    assert summary["pending"] == 1 and summary["status"] == "processing"


def test_no_plants_is_needs_review_shown_by_the_gallery_error_filter_and_summarised(
    env: dict[str, Any], tmp_path: Path
) -> None:
    """A photo with nothing green: never "completed" (today it is reported as success). The run
    goes through the shared S3Hook store; its summary counts per photo and links the gallery."""
    from include.common.storage import s3_store
    from include.photos.summary import run_summary
    from include.webapp.queries import STATUS_FILTERS

    engine = env["engine"]
    folder = tmp_path / "empty_tray"
    folder.mkdir()
    grey = Image.new("RGB", (1200, 900), (120, 110, 100))
    (folder / "bare_soil.jpg").write_bytes(jpeg_bytes(grey, make_exif(None)))
    img, truth = tray_image(14, 1200, 900, (4, 6), pots=0)
    (folder / "tray.jpg").write_bytes(jpeg_bytes(img, make_exif(None)))
    (folder / "notes.txt").write_text("not a photo")
    store = s3_store("imaging_s3", "imaging")
    prep = run_ingest(
        engine,
        store,
        source_dir=str(folder),
        run_id="manual__review",
        storage_location_id=env["ids"]["WH-A-R1"],
    )
    with session_scope(engine) as s:
        jobs = {
            j.filename: j
            for j in s.scalars(
                select(PhotoJob).where(
                    PhotoJob.upload_session_id == uuid.UUID(prep["upload_session_id"])
                )
            )
        }
        bare = jobs["bare_soil.jpg"]
        assert bare.status == "needs_review", bare.status
        assert "no plants" in bare.result["warnings"]["needs_review"]
        image = s.get(S3Image, bare.image_id)
        assert image.status in STATUS_FILTERS["errors"]
        assert jobs["notes.txt"].status == "failed"  # no file is dropped silently
        assert "not an image" in jobs["notes.txt"].error_message
    summary = run_summary(
        engine,
        dag_id="photo_ingest",
        run_id="manual__review",
        upload_session_id=prep["upload_session_id"],
        base_url="http://airflow.example",
    )
    assert summary.counts["photos"] == 3
    assert [e.item for e in summary.errors] == ["notes.txt"]
    assert any("bare_soil.jpg: needs_review" in w for w in summary.warnings)
    assert summary.links[0].url == (
        f"http://airflow.example/photos/gallery?upload_session_id={prep['upload_session_id']}"
    )
    rows = {r["photo"]: r for r in summary.sections[0].rows}
    assert rows["bare_soil.jpg"]["plants"] == 0
    link = rows["bare_soil.jpg"]["image"]  # each photo opens its page in the photos app
    assert link.url == f"http://airflow.example/photos/photo/{bare.image_id}"
    assert abs(rows["tray.jpg"]["plants"] - truth.plants) <= 2
    assert summary.outcome().startswith("⚠ 1 item error of 3")


def test_a_count_far_from_the_locations_history_needs_review(
    env: dict[str, Any], demo: dict[str, Any], tmp_path: Path
) -> None:
    """Three trays of about 20 plants set the location's history; then a photo with about 4x as
    many is ``needs_review`` with the reason, and one within the history's range is not."""
    from include.photos.catalog import upsert_site

    engine = env["engine"]
    code = f"HIST-{uuid.uuid4().hex[:8]}"  # a location of its own (the session DB is shared)
    rack1 = next(x for x in demo["locations"] if x["code"] == "WH-A-R1")  # configured+calibrated
    loc = {**rack1, "code": code, "name": code}
    with session_scope(engine) as s:
        loc_id = upsert_site(s, demo["warehouses"], [loc])[code]

    def ingest(name: str, seed: int, cells: tuple[int, int]) -> str:
        folder = tmp_path / name
        folder.mkdir()
        img, _ = tray_image(seed, 1200, 900, cells, pots=0)
        (folder / f"{name}.jpg").write_bytes(jpeg_bytes(img, make_exif(None)))
        prep = run_ingest(
            engine, env["s3"], source_dir=str(folder), run_id=f"manual__{name}",
            storage_location_id=loc_id,
        )  # fmt: skip
        with session_scope(engine) as s:
            job = s.scalars(
                select(PhotoJob).where(
                    PhotoJob.upload_session_id == uuid.UUID(prep["upload_session_id"])
                )
            ).one()
            return f"{job.status}: {(job.result or {}).get('warnings', {}).get('needs_review', '')}"

    for i in range(3):
        assert ingest(f"usual{i}", 40 + i, (4, 6)).startswith("completed"), i
    crowded = ingest("crowded", 50, (8, 12))
    assert crowded.startswith("needs_review") and "far from this location's recent counts" in (
        crowded
    ), crowded
    assert ingest("usual3", 43, (4, 6)).startswith("completed")
