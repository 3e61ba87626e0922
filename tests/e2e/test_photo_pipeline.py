"""End to end: ``photo_ingest`` and ``photo_reprocess`` run with dag.test() against the real local
S3 server (rclone) and the real PostgreSQL app database; generated tray photos with known counts,
photos without GPS / in unconfigured or uncalibrated locations, and bad files."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from include.common.db import make_engine, session_scope
from include.common.retry import reset_breakers
from include.photos.analyze import count_error
from include.photos.catalog import upsert_site
from include.photos.models import (
    PhotoJob,
    PhotoProcessingSession,
    PhotoUploadSession,
    S3Image,
    StorageLocation,
)
from include.photos.samples import generate_demo
from include.photos.storage import breaker

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(app_db_url: str, s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("IMAGING_PHOTOS_BREAKER_RESET_S", "3")
    monkeypatch.setenv("IMAGING_PHOTOS_BREAKER_FAIL_MAX", "3")
    monkeypatch.setenv("IMAGING_PHOTOS_S3_BACKOFF_S", "0.05")
    reset_breakers()
    engine = make_engine(app_db_url)
    return {"engine": engine, "s3": s3_server.client()}


def _load_site(engine: Any, demo: dict[str, Any]) -> dict[str, int]:
    with session_scope(engine) as s:
        return upsert_site(s, demo["warehouses"], demo["locations"])


def _keys(client: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="imaging", Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def _jobs(engine: Any, folder: str) -> dict[str, PhotoJob]:
    with session_scope(engine) as s:
        up = s.scalar(select(PhotoUploadSession).where(PhotoUploadSession.source_ref == folder))
        assert up is not None
        return {
            j.filename: j
            for j in s.scalars(
                select(PhotoJob).where(PhotoJob.upload_session_id == up.upload_session_id)
            )
        }


def test_ingest_then_reprocess_after_fixing_location(
    site: dict[str, Any], run_dag: Any, tmp_path: Path
) -> None:
    engine, s3 = site["engine"], site["s3"]
    demo = generate_demo(tmp_path / "upload", n_good=3, width=1200, height=900, seed=1)
    ids = _load_site(engine, demo)
    folder = str(Path(demo["dir"]).resolve())

    result = run_dag("photo_ingest", conf={"source_dir": folder, "uploaded_by": "e2e"})
    assert result.state == "success", result.task_states

    jobs = _jobs(engine, folder)
    assert len(jobs) == len(demo["photos"])
    with session_scope(engine) as s:
        for p in demo["photos"]:
            job = jobs[p["filename"]]
            assert job.status == p["expect"], (p["filename"], job.status, job.error_message)
            if p["expect"] == "failed":
                assert p["reason"].lower() in job.error_message.lower()
                continue
            total = job.result["total_detected"] + job.result["total_estimated"]
            assert count_error(total, p["plants"]) <= 0.1, (p["filename"], total, p["plants"])
            img = s.get(S3Image, job.image_id)
            assert img.uploaded_by == "e2e"
            assert s3.head_object(Bucket="imaging", Key=img.s3_key_original)["ContentLength"] > 0
            assert s3.head_object(Bucket="imaging", Key=img.s3_key_thumbnail)
            assert s3.head_object(Bucket="imaging", Key=job.result["annotated_key"])
            assert job.result["annotated_key"].startswith("annotated/")
        up = s.scalar(select(PhotoUploadSession).where(PhotoUploadSession.source_ref == folder))
        assert up.status == "partial" and up.summary["total_jobs"] == len(demo["photos"])
        assert up.summary["completed"] == 3 and up.summary["warnings"] == 4
        assert up.summary["failed"] == 5
        rows_before = s.scalar(select(func.count()).select_from(S3Image))
    # the run summary page: counts per photo, the failed files as item errors, the gallery link
    import json

    from include.common.publish import published_root

    page = published_root() / "photo_ingest" / result.run_id.replace(":", "_")
    summary = json.loads((page / "summary.json").read_text())
    assert summary["run_id"] == result.run_id and summary["counts"]["photos"] == len(jobs)
    assert len(summary["errors"]) == 5
    assert any("/photos/gallery?upload_session_id=" in link["url"] for link in summary["links"])
    assert (page / "summary.html").is_file()
    objects_before = _keys(s3)

    # fix: configure rack 2, then reprocess its photo from S3 (GPS matched again)
    with session_scope(engine) as s:
        loc = s.get(StorageLocation, ids["WH-A-R2"])
        loc.config = {"container": "tray", "cells": [6, 8], "detector": "classical"}
        loc.calibration = {"avg_plant_area_px": 4800.0}
    r2 = run_dag(
        "photo_reprocess",
        conf={"image_id": str(jobs["unconfigured_rack.jpg"].image_id), "reason": "configured"},
    )
    assert r2.state == "success", r2.task_states
    # the photo without GPS: manual location
    r3 = run_dag(
        "photo_reprocess",
        conf={
            "image_id": str(jobs["no_gps.jpg"].image_id),
            "storage_location_id": ids["WH-A-R1"],
            "reason": "assigned by hand",
        },
    )
    assert r3.state == "success", r3.task_states
    with session_scope(engine) as s:
        for name, src in (("unconfigured_rack.jpg", "gps"), ("no_gps.jpg", "manual")):
            hist = s.scalars(
                select(PhotoProcessingSession)
                .where(PhotoProcessingSession.original_image_id == jobs[name].image_id)
                .order_by(PhotoProcessingSession.id)
            ).all()
            assert len(hist) == 2, name  # history kept
            assert hist[0].status in ("needs_config", "needs_location")
            assert hist[1].status == "completed" and hist[1].trigger == "reprocess"
            assert hist[1].location_source == src
            assert s.get(S3Image, jobs[name].image_id).status == "ready"
        assert hist[1].reason == "assigned by hand"
        # the originals were not uploaded again; only two annotated images were added
        assert s.scalar(select(func.count()).select_from(S3Image)) == rows_before + 2
    new = sorted(set(_keys(s3)) - set(objects_before))
    assert len(new) == 2 and all(k.startswith("annotated/") for k in new)

    # bad requests fail at once with the reason (no pointless retries)
    t0 = time.monotonic()
    bad = run_dag("photo_reprocess", conf={"image_id": str(uuid.uuid4())})
    assert bad.state == "failed" and bad.task_states["prepare"] == "failed"
    bad_loc = run_dag("photo_ingest", conf={"source_dir": folder, "storage_location_id": 999999})
    assert bad_loc.state == "failed" and bad_loc.task_states["register"] == "failed"
    both = run_dag(
        "photo_ingest", conf={"source_dir": folder, "upload_session_id": str(uuid.uuid4())}
    )
    assert both.state == "failed" and both.task_states["register"] == "failed"
    assert time.monotonic() - t0 < 90


def test_s3_outage_opens_breaker_and_run_completes_without_duplicates(
    site: dict[str, Any], s3_server: Any, run_dag: Any, tmp_path: Path
) -> None:
    engine, s3 = site["engine"], site["s3"]
    demo = generate_demo(
        tmp_path / "outage", n_good=6, width=1000, height=750, with_bad=False, seed=2
    )
    _load_site(engine, demo)
    folder = str(Path(demo["dir"]).resolve())
    states: list[str] = []

    class Listener:
        def state_change(self, cb: Any, old: Any, new: Any) -> None:
            states.append(new.name)

        def __getattr__(self, name: str) -> Any:  # other pybreaker callbacks
            return lambda *a, **k: None

    breaker().add_listener(Listener())
    stopped = threading.Event()

    def outage() -> None:
        # stop S3 as soon as the photos are registered (before the chunk uploads them; a
        # later trigger races with fast uploads), restart it 4 s later
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope(engine) as s:
                n = s.scalar(
                    select(func.count())
                    .select_from(PhotoJob)
                    .where(PhotoJob.source_ref.like(f"{folder}/%"))
                )
            if n:
                s3_server.stop()
                stopped.set()
                time.sleep(4)
                s3_server.start()
                return
            time.sleep(0.02)

    t = threading.Thread(target=outage, daemon=True)
    t.start()
    result = run_dag("photo_ingest", conf={"source_dir": folder})
    t.join(timeout=30)
    assert stopped.is_set(), "the outage never happened"
    assert result.state == "success", result.task_states
    assert "open" in states, states  # the breaker opened while S3 was down
    assert states[-1] == "closed"

    jobs = _jobs(engine, folder)
    assert {j.status for j in jobs.values()} <= {
        "completed",
        "needs_location",
        "needs_config",
        "needs_calibration",
    }
    image_ids = {j.image_id for j in jobs.values()}
    with session_scope(engine) as s:
        rows = s.scalars(select(S3Image).where(S3Image.image_id.in_(image_ids))).all()
        assert len(rows) == len(jobs)
        sessions = s.scalar(
            select(func.count())
            .select_from(PhotoProcessingSession)
            .where(PhotoProcessingSession.original_image_id.in_(image_ids))
        )
        assert sessions == len(jobs)
    originals = [k for k in _keys(s3, "originals/") if any(str(i) in k for i in image_ids)]
    assert len(originals) == len(jobs)  # one object per photo, none twice

    # a rerun of the same folder changes nothing
    before = _keys(s3)
    again = run_dag("photo_ingest", conf={"source_dir": folder})
    assert again.state == "success"
    assert _keys(s3) == before


def test_web_upload_session_through_the_dag_emits_asset(
    site: dict[str, Any], run_dag: Any, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from include.photos.samples import jpeg_bytes, make_exif, tray_image
    from include.webapp import queries, staging
    from include.webapp.validation import validate_batch

    engine, s3 = site["engine"], site["s3"]
    _load_site(
        engine,
        generate_demo(tmp_path / "site", n_good=0, with_bad=False),
    )
    img, truth = tray_image(9191, 1000, 750)
    data = jpeg_bytes(img, make_exif((-34.603722, -58.381592)))
    # staged exactly as POST /upload does (the web app's staging is the one implementation)
    ok, bad = validate_batch([("tray.jpg", data), ("empty.jpg", b"")])
    sid = staging.upload_session_id_for("web-user", f"e2e-{uuid.uuid4()}")
    staging.stage_upload(engine, s3, "imaging", sid, ok, bad, "web-user")

    result = run_dag(
        "photo_ingest", conf={"upload_session_id": str(sid), "uploaded_by": "web-user"}
    )
    assert result.state == "success", result.task_states
    with session_scope(engine) as s:
        status = queries.job_status(s, sid)
    by_name = {j["filename"]: j for j in status["jobs"]}
    assert by_name["tray.jpg"]["status"] in ("completed", "needs_calibration")
    assert abs(by_name["tray.jpg"]["result"]["total_detected"] - truth.plants) <= 0.1 * truth.plants
    assert by_name["empty.jpg"]["status"] == "failed"
    assert "empty" in by_name["empty.jpg"]["error_message"]
    assert status["summary"]["overall_progress_percent"] == 100.0
    assert status["summary"]["done"] is True and status["summary"]["total_jobs"] == 2
    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetModel.name == "photo_processing_sessions")
            .filter(AssetEvent.source_run_id == result.run_id)
            .count()
        )
    assert events == 1
