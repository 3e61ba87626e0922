"""Staging and queries of the web app against the real PostgreSQL app DB and the real S3 server,
including the contract with the photo pipeline (``include.photos.pipeline``): the session the app
stages is exactly what ``prepare_upload`` / ``stage_chunk`` / ``prepare_reprocess`` expect."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from include.common.db import make_engine, session_scope
from include.common.retry import reset_breakers
from include.photos import pipeline as P
from include.photos.jobs import fail_job
from include.photos.models import JobStatus, PhotoJob, PhotoUploadSession, S3Image
from include.photos.samples import jpeg_bytes, make_exif, tray_image
from include.webapp import queries, staging
from include.webapp.validation import Rejection, ValidPhoto, validate_batch
from tests.include.photos.ingest_steps import run_ingest


@pytest.fixture
def env(pg_app_db_url: str, s3_server: Any) -> dict[str, Any]:
    reset_breakers()
    return {"engine": make_engine(pg_app_db_url), "s3": s3_server.client()}


def _photos() -> tuple[list[ValidPhoto], list[Rejection]]:
    good = jpeg_bytes(tray_image(11, 320, 240, (2, 3), pots=0)[0], make_exif(None))
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(png, "PNG")
    return validate_batch(
        [("../a b.jpg", good), ("x.txt", b"not an image"), ("Ünïcode ✓.png", png.getvalue())]
    )


def _stage(env: dict[str, Any], user: str = "carol", key: str | None = None) -> uuid.UUID:
    ok, bad = _photos()
    sid = staging.upload_session_id_for(user, key)
    staging.stage_upload(env["engine"], env["s3"], "imaging", sid, ok, bad, user)
    return sid


def _prepare(env: dict[str, Any], sid: uuid.UUID, run_id: str) -> dict[str, Any]:
    """``photo_ingest``'s first step on the staged session."""
    return P.prepare_upload(
        env["engine"],
        upload_session_id=str(sid),
        run_id=run_id,
        s3_client=env["s3"],
        bucket="imaging",
    )


def test_ids_and_keys_are_deterministic_and_never_use_the_names() -> None:
    ok, _ = _photos()
    sid = staging.upload_session_id_for("carol", "k1")
    assert sid == staging.upload_session_id_for("carol", "k1")
    assert sid != staging.upload_session_id_for("dave", "k1")
    assert staging.upload_session_id_for("carol", None) != staging.upload_session_id_for(
        "carol", None
    )
    a, b = staging.plan_jobs(sid, ok), staging.plan_jobs(sid, ok)
    assert a == b
    for job in a:
        assert (
            job.staged_key == f"temp_uploads/{sid}/{job.job_id}.{job.staged_key.rsplit('.', 1)[1]}"
        )
        assert "a b" not in job.staged_key and ".." not in job.staged_key
    assert [j.filename for j in a] == ["a b.jpg", "Ünïcode ✓.png"]


def test_staging_is_idempotent_and_fits_the_pipeline(env: dict[str, Any]) -> None:
    sid = _stage(env, key=f"k-{uuid.uuid4()}")
    with session_scope(env["engine"]) as s:
        up = s.get(PhotoUploadSession, sid)
        assert up is not None and up.total_files == 3 and up.status == "pending"
    keys = [
        o["Key"]
        for o in env["s3"].list_objects_v2(Bucket="imaging", Prefix=f"temp_uploads/{sid}/")[
            "Contents"
        ]
    ]
    assert len(keys) == 2
    meta = env["s3"].head_object(Bucket="imaging", Key=keys[0])["Metadata"]
    assert {k.lower() for k in meta} >= {"image_id", "job_id", "original_filename", "sha256"}

    with session_scope(env["engine"]) as s:
        jobs = {
            j.filename: j
            for j in s.scalars(select(PhotoJob).where(PhotoJob.upload_session_id == sid))
        }
    assert (
        jobs["x.txt"].status == JobStatus.FAILED
        and "unsupported_type" in jobs["x.txt"].error_message
    )
    assert jobs["x.txt"].staged_key is None and jobs["x.txt"].image_id is None

    # the photo pipeline takes the session as staged: no extra jobs from the staged objects
    prep = _prepare(env, sid, "manual__t")
    assert prep["total"] == 3
    chunk = prep["chunks"][0]
    st = P.stage_chunk(env["engine"], env["s3"], "imaging", chunk, run_date="2026-11-21")
    assert st["failed"] == 1 and len(st["staged"]) == 2
    with session_scope(env["engine"]) as s:
        imgs = s.scalars(select(S3Image).where(S3Image.upload_session_id == sid)).all()
        # the image ids the app chose are the ones the pipeline used
        assert {i.image_id for i in imgs} == {
            jobs["a b.jpg"].image_id,
            jobs["Ünïcode ✓.png"].image_id,
        }
        assert s.get(PhotoJob, jobs["x.txt"].job_id).status == JobStatus.FAILED

    status = _status(env, sid)
    assert status["summary"]["total_jobs"] == 3 and status["summary"]["failed"] == 1
    assert status["summary"]["done"] is False
    staged = [j for j in status["jobs"] if j["status"] == "pending"]
    assert all(j["progress_percent"] == 25 for j in staged)  # staged by the pipeline
    assert status["summary"]["overall_progress_percent"] == pytest.approx(
        (25 + 25 + 100) / 3, abs=0.1
    )


def _status(env: dict[str, Any], sid: uuid.UUID) -> dict[str, Any]:
    with session_scope(env["engine"]) as s:
        return queries.job_status(s, sid)


def test_rerecording_the_same_upload_adds_nothing(env: dict[str, Any]) -> None:
    key = f"k-{uuid.uuid4()}"
    sid = _stage(env, key=key)
    assert _stage(env, key=key) == sid
    # the same key for other photos, or by another user on the same session: refused, unwritten
    ok, bad = _photos()
    with pytest.raises(staging.Conflict, match="Idempotency-Key"):
        staging.stage_upload(env["engine"], env["s3"], "imaging", sid, ok[:1], bad, "dave")
    other = validate_batch([("new.jpg", jpeg_bytes(tray_image(12, 200, 150)[0], None))])[0]
    with pytest.raises(staging.Conflict):
        staging.stage_upload(env["engine"], env["s3"], "imaging", sid, other, [], "carol")
    listed = env["s3"].list_objects_v2(Bucket="imaging", Prefix=f"temp_uploads/{sid}/")
    assert len(listed["Contents"]) == 2
    with session_scope(env["engine"]) as s:
        n = s.scalar(
            select(func.count()).select_from(PhotoJob).where(PhotoJob.upload_session_id == sid)
        )
    assert n == 3
    with session_scope(env["engine"]) as s, pytest.raises(staging.NotFound):
        queries.job_status(s, uuid.uuid4())
    from datetime import UTC, datetime, timedelta

    with session_scope(env["engine"]) as s:
        mine = queries.recent_uploads(s, "carol", limit=100)
        assert str(sid) in [u["upload_session_id"] for u in mine]
        assert mine[0]["poll_url"].startswith("jobs/status?upload_session_id=")
        later = datetime.now(UTC) + timedelta(hours=1)
        assert queries.recent_uploads(s, "carol", since=later) == []
        assert queries.recent_uploads(s, "nobody") == []


def test_reprocess_job_matches_the_dag_and_guards_concurrency(env: dict[str, Any]) -> None:
    sid = _stage(env)
    prep = _prepare(env, sid, "manual__t2")
    P.stage_chunk(env["engine"], env["s3"], "imaging", prep["chunks"][0], run_date="2026-11-21")
    with session_scope(env["engine"]) as s:
        image_id = s.scalars(
            select(S3Image.image_id).where(S3Image.upload_session_id == sid)
        ).first()
        # the staged photo's ingest job is pending: reprocessing now would race it
        with pytest.raises(staging.Conflict):
            staging.create_reprocess_job(s, image_id, "why", None, "carol", "r1")
        s.execute(
            PhotoJob.__table__.update()
            .where(PhotoJob.image_id == image_id)
            .values(status="needs_location")
        )
    with session_scope(env["engine"]) as s:
        with pytest.raises(staging.NotFound):
            staging.create_reprocess_job(s, uuid.uuid4(), "why", None, "carol", "r1")
        with pytest.raises(staging.NotFound):
            staging.create_reprocess_job(s, image_id, "why", 987654, "carol", "r1")
        job, created = staging.create_reprocess_job(s, image_id, "why", None, "carol", "r1")
        assert created and job.status == "pending" and job.kind == "reprocess"
        job_id, run_id = job.job_id, job.dag_run_id
    with session_scope(env["engine"]) as s:
        again, created = staging.create_reprocess_job(s, image_id, "why", None, "carol", "r1")
        assert not created and again.job_id == job_id
        with pytest.raises(staging.Conflict):
            staging.create_reprocess_job(s, image_id, "why", None, "carol", "r2")
    # photo_reprocess's first task, in the run the app triggers, finds this very job
    assert P.prepare_reprocess(
        env["engine"], image_id=str(image_id), storage_location_id=None, reason="why", run_id=run_id
    ) == str(job_id)
    with session_scope(env["engine"]) as s:
        n = s.scalar(
            select(func.count())
            .select_from(PhotoJob)
            .where(PhotoJob.image_id == image_id, PhotoJob.kind == "reprocess")
        )
    assert n == 1
    fail_job(env["engine"], job_id, "could not start", only_active=True)
    fail_job(env["engine"], job_id, "again", only_active=True)  # finished: left alone
    with session_scope(env["engine"]) as s:
        failed = queries.one_job(s, job_id)
    assert failed["status"] == "failed" and failed["error_message"] == "could not start"


def test_badges_and_filters() -> None:
    assert queries.badge("completed") == queries.badge("ready") == "success"
    assert queries.badge("needs_config") == queries.badge("warning") == "warning"
    assert queries.badge("failed") == "error"
    assert queries.badge("pending") == queries.badge("uploaded") == "processing"
    with pytest.raises(ValueError, match="status must be one of"):
        queries.GalleryFilter(status="nope")
    with pytest.raises(ValueError):
        queries.GalleryFilter(per_page=0)


def test_staging_reads_dropped_bytes_again_and_checks_them(env: dict[str, Any]) -> None:
    ok, _ = _photos()
    light = [p.without_data() for p in ok]
    sid = uuid.uuid4()
    jobs = staging.plan_jobs(sid, light)
    by_index = {p.index: p.data for p in ok}
    with pytest.raises(ValueError, match="no reader"):
        staging.stage_files(env["s3"], "imaging", sid, light, jobs, "carol")
    with pytest.raises(RuntimeError, match="changed between validation and staging"):
        staging.stage_files(
            env["s3"], "imaging", sid, light, jobs, "carol", read=lambda p: by_index[p.index] + b"x"
        )
    staging.stage_files(
        env["s3"], "imaging", sid, light, jobs, "carol", read=lambda p: by_index[p.index]
    )
    for p, j in zip(ok, jobs, strict=True):
        assert env["s3"].get_object(Bucket="imaging", Key=j.staged_key)["Body"].read() == p.data


def test_staged_upload_through_the_pipeline_then_status(env: dict[str, Any]) -> None:
    """The web app's staging feeds ``photo_ingest``'s steps: the good photo is counted under the
    image id the API gave, a file refused at upload and a staged file lost before the run (e.g.
    expired by the 24 h lifecycle rule) are failed jobs with their reasons, and the job status
    summary follows the session from pending to done."""
    from include.photos.catalog import upsert_site
    from include.photos.samples import demo_locations

    engine, s3 = env["engine"], env["s3"]
    site = demo_locations()
    site["locations"][0]["calibration"] = {"avg_plant_area_px": 7000.0}
    with session_scope(engine) as s:
        upsert_site(s, site["warehouses"], site["locations"])
    img, truth = tray_image(4242, 1200, 900)
    good = jpeg_bytes(img, make_exif((-34.603722, -58.381592)))
    lost = jpeg_bytes(tray_image(4243, 400, 300)[0], make_exif(None))
    ok, bad = validate_batch([("a b.jpg", good), ("a_b.jpg", good[:4000]), ("lost.jpg", lost)])
    assert [r.filename for r in bad] == ["a_b.jpg"] and bad[0].code == "corrupt"
    sid = uuid.uuid4()
    jobs = staging.stage_upload(engine, s3, "imaging", sid, ok, bad, "carol")
    assert staging.stage_upload(engine, s3, "imaging", sid, ok, bad, "carol") == jobs  # retry
    with session_scope(engine) as s:
        before = queries.job_status(s, sid)
    assert before["summary"]["total_jobs"] == 3 and before["summary"]["pending"] == 2
    assert before["summary"]["failed"] == 1 and before["summary"]["done"] is False
    s3.delete_object(Bucket="imaging", Key=jobs[1].staged_key)  # lost.jpg

    prep = run_ingest(engine, s3, upload_session_id=str(sid), run_id="r")
    assert prep["total"] == 3 and prep["summary"]["completed"] == 1

    with session_scope(engine) as s:
        status = queries.job_status(s, sid)
    by_name = {j["filename"]: j for j in status["jobs"]}
    assert by_name["a b.jpg"]["status"] == "completed"
    assert by_name["a b.jpg"]["image_id"] == str(jobs[0].image_id)  # the id the API gave
    assert abs(by_name["a b.jpg"]["result"]["total_detected"] - truth.plants) <= 2
    assert "rejected at upload (corrupt)" in by_name["a_b.jpg"]["error_message"]
    assert by_name["lost.jpg"]["status"] == "failed"
    assert "is missing" in by_name["lost.jpg"]["error_message"]
    assert status["summary"] == {
        "total_jobs": 3,
        "completed": 1,
        "warnings": 0,
        "processing": 0,
        "pending": 0,
        "failed": 2,
        "done": True,
        "overall_progress_percent": 100.0,
    }
    assert status["status"] == "partial"
    with session_scope(engine) as s:
        assert s.get(PhotoUploadSession, sid).summary["completed"] == 1
