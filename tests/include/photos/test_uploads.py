"""The web app's side of the contract: staging an upload and polling job status (PostgreSQL +
the real local S3 server), then the pipeline steps on that session."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from include.common.db import make_engine, session_scope
from include.common.retry import reset_breakers
from include.photos import pipeline as P
from include.photos.catalog import upsert_site
from include.photos.samples import demo_locations, jpeg_bytes, make_exif, tray_image
from include.photos.uploads import jobs_status, stage_upload


@pytest.fixture
def env(pg_app_db_url: str, s3_server: Any) -> dict[str, Any]:
    reset_breakers()
    engine = make_engine(pg_app_db_url)
    site = demo_locations()
    site["locations"][0]["calibration"] = {"avg_plant_area_px": 7000.0}
    with session_scope(engine) as s:
        upsert_site(s, site["warehouses"], site["locations"])
    return {"engine": engine, "s3": s3_server.client()}


def test_stage_upload_then_pipeline_then_status(env: dict[str, Any]) -> None:
    engine, s3 = env["engine"], env["s3"]
    sid = uuid.uuid4()
    img, truth = tray_image(4242, 1200, 900)
    good = jpeg_bytes(img, make_exif((-34.603722, -58.381592)))
    files = [("a b.jpg", good), ("a_b.jpg", good[:4000]), ("notes.txt", b"x"), ("c.png", b"nope")]
    body = stage_upload(engine, s3, "imaging", sid, files, uploaded_by="carol")
    assert body["status"] == "accepted" and body["total_files"] == 3
    assert [r["filename"] for r in body["rejected"]] == ["notes.txt"]
    keys = {
        o["Key"]
        for o in s3.list_objects_v2(Bucket="imaging", Prefix=f"temp_uploads/{sid}/")["Contents"]
    }
    assert keys == {
        f"temp_uploads/{sid}/a_b.jpg",
        f"temp_uploads/{sid}/a_b-1.jpg",
        f"temp_uploads/{sid}/c.png",
    }
    # a retried request creates nothing new
    again = stage_upload(engine, s3, "imaging", sid, files, uploaded_by="carol")
    assert [j["job_id"] for j in again["jobs"]] == [j["job_id"] for j in body["jobs"]]
    before = jobs_status(engine, sid)
    assert before["summary"]["pending"] == 3 and before["summary"]["overall_progress_percent"] == 0

    prep = P.prepare_upload(
        engine, upload_session_id=str(sid), s3_client=s3, bucket="imaging", run_id="r"
    )
    assert prep["total"] == 3
    for chunk in prep["chunks"]:
        st = P.stage_chunk(engine, s3, "imaging", chunk, run_date="2026-11-21")
        P.process_chunk(engine, s3, "imaging", st["staged"], run_id="r")
    P.finish_upload(engine, str(sid))

    status = jobs_status(engine, sid)
    by_name = {j["filename"]: j for j in status["jobs"]}
    assert by_name["a b.jpg"]["status"] == "completed"
    assert by_name["a b.jpg"]["image_id"] == body["jobs"][0]["image_id"]  # the id the API gave
    assert abs(by_name["a b.jpg"]["result"]["total_detected"] - truth.plants) <= 2
    assert by_name["a_b.jpg"]["status"] == "failed" and "truncated" in by_name["a_b.jpg"]["error"]
    assert by_name["c.png"]["status"] == "failed" and "not an image" in by_name["c.png"]["error"]
    assert status["summary"] == {
        "total_jobs": 3,
        "completed": 1,
        "processing": 0,
        "pending": 0,
        "failed": 2,
        "warning": 0,
        "overall_progress_percent": 100.0,
    }
    assert status["status"] == "partial" and status["aggregate"]["completed"] == 1
    with pytest.raises(LookupError):
        jobs_status(engine, uuid.uuid4())


def test_stage_upload_limits(env: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no files"):
        stage_upload(env["engine"], env["s3"], "imaging", uuid.uuid4(), [])
    with pytest.raises(ValueError, match="at most 100"):
        stage_upload(env["engine"], env["s3"], "imaging", uuid.uuid4(), [("a.jpg", b"x")] * 101)
