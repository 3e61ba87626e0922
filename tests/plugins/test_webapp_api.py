"""The photos web app's API with FastAPI's TestClient against the real PostgreSQL app database, the
real local S3 server and the session's real Airflow metadata DB (JWT validation, DAG runs created
by ``airflow.api.common.trigger_dag``). The processing itself is the real ``photo_ingest`` DAG,
run with the harness (``dag.test()``) on the session the API staged.

Covered: 401 without/with a bad/expired login (JSON for the API, a redirect to Airflow's login
for pages), the cookie CSRF rule, 413/415/422 for bad uploads with per-file reasons, the happy
path (202, staged objects, jobs, queued run, idempotent retry), job status, gallery filters and
pagination with working presigned URLs, the detail view, reprocess (202, queued run, idempotent,
409 while active, 404/422), the OpenAPI spec.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from include.common.db import make_engine, session_scope
from include.common.retry import reset_breakers
from include.photos.catalog import upsert_site
from include.photos.models import PhotoJob, PhotoUploadSession, S3Image
from include.photos.samples import bad_files, generate_demo

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1/photos"


# --------------------------------------------------------------------------- fixtures
def _token(name: str = "alice", expires: int | None = None, role: str = "admin") -> str:
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    am = create_auth_manager()
    user = SimpleAuthManagerUser(username=name, role=role)
    if expires is None:
        return am.generate_jwt(user)
    return am.generate_jwt(user, expiration_time_in_seconds=expires)


@pytest.fixture(scope="module")
def photo_dags_serialized(airflow_db: Path) -> None:
    """Serialize photo_ingest and photo_reprocess into the session's metadata DB (what the
    dag-processor does for a running Airflow), so the API can trigger them."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    for dag_id in ("photo_ingest", "photo_reprocess"):
        bag = BundleDagBag(
            dag_folder=str(ROOT / "dags" / f"{dag_id}.py"),
            bundle_path=ROOT / "dags",
            bundle_name="dags-folder",
        )
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate_demo(
        tmp_path_factory.mktemp("webapp") / "photos",
        n_good=2,
        width=800,
        height=600,
        with_bad=False,
    )


@pytest.fixture(scope="module")
def site(app_db_url: str, s3_server: Any, demo: dict[str, Any]) -> dict[str, Any]:
    engine = make_engine(app_db_url)
    with session_scope(engine) as s:
        ids = upsert_site(s, demo["warehouses"], demo["locations"])
    return {"engine": engine, "s3": s3_server.client(), "location_ids": ids}


@pytest.fixture(scope="module")
def client(site: dict[str, Any], photo_dags_serialized: None) -> Iterator[TestClient]:
    from imaging.webapp.app import create_app

    with TestClient(create_app(), base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="module")
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {_token()}"}


def _files(demo: dict[str, Any], names: list[str]) -> list[tuple[str, tuple[str, bytes, str]]]:
    by_name = {p["filename"]: p for p in demo["photos"]}
    return [("files", (n, Path(by_name[n]["path"]).read_bytes(), "image/jpeg")) for n in names]


def _dag_run(dag_id: str, run_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dr is None:
            return None
        session.expunge(dr)
        return dr


# --------------------------------------------------------------------------- auth
PROTECTED = [
    ("GET", f"{API}/jobs/status"),
    ("GET", f"{API}/gallery"),
    ("GET", f"{API}/locations"),
    ("GET", f"{API}/{uuid.uuid4()}"),
    ("POST", f"{API}/upload"),
    ("POST", f"{API}/{uuid.uuid4()}/reprocess"),
    ("GET", f"{API}/jobs/{uuid.uuid4()}/status"),
    ("GET", "/openapi.json"),
    ("GET", "/static/app.js"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_api_routes_need_a_valid_airflow_login(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "not_authenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    bad = client.request(method, path, headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
    expired = client.request(
        method, path, headers={"Authorization": f"Bearer {_token(expires=-3600)}"}
    )
    assert expired.status_code == 401 and expired.json()["error"] == "token_expired"


def test_token_signed_with_another_secret_is_refused(client: TestClient) -> None:
    import jwt

    forged = jwt.encode({"sub": "mallory", "role": "admin"}, "not-the-secret", algorithm="HS512")
    r = client.get(f"{API}/gallery", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_revoked_token_is_refused(client: TestClient) -> None:
    """Logging out of Airflow revokes the token: the app refuses it too."""
    from airflow.api_fastapi.app import create_auth_manager

    token = _token("frank")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/locations", headers=headers).status_code == 200
    create_auth_manager().revoke_token(token)
    r = client.get(f"{API}/locations", headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_airflow_permissions_apply(client: TestClient, demo: dict[str, Any]) -> None:
    """A viewer may look at the gallery but may not start photo_ingest / photo_reprocess runs."""
    viewer = {"Authorization": f"Bearer {_token('vera', role='viewer')}"}
    assert client.get(f"{API}/gallery", headers=viewer).status_code == 200
    r = client.post(f"{API}/upload", headers=viewer, files=_files(demo, ["tray_001.jpg"]))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert "photo_ingest" in r.json()["detail"]
    r = client.post(f"{API}/{uuid.uuid4()}/reprocess", headers=viewer, json={"reason": "x"})
    assert r.status_code == 403 and "photo_reprocess" in r.json()["detail"]


@pytest.mark.parametrize("page", ["/upload", "/gallery", f"/photo/{uuid.uuid4()}", "/", "/docs"])
def test_pages_redirect_to_the_airflow_login(client: TestClient, page: str) -> None:
    r = client.get(page, follow_redirects=False, headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert "/auth/" in r.headers["location"] and "next=" in r.headers["location"]


def test_pages_with_the_airflow_cookie(client: TestClient) -> None:
    cookies = {"_token": _token("bob")}
    for page in ("/upload", "/gallery"):
        r = client.get(page, cookies=cookies)
        assert r.status_code == 200 and "<html" in r.text
        assert "signed in as <b>bob</b>" in r.text and "{{" not in r.text
    js = client.get("/static/app.js", cookies=cookies)
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/..%2Fapp.py", cookies=cookies).status_code == 404
    assert client.get("/static/nothing.js", cookies=cookies).status_code == 404


def test_cookie_auth_needs_the_csrf_header_for_changes(client: TestClient) -> None:
    cookies = {"_token": _token("bob")}
    r = client.post(f"{API}/upload", cookies=cookies, files=[("x", ("a", b"1", "text/plain"))])
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = client.post(
        f"{API}/upload",
        cookies=cookies,
        headers={"X-Requested-With": "photos-webapp"},
        files=[("other", ("a.txt", b"1", "text/plain"))],
    )
    assert r.status_code == 422 and r.json()["error"] == "no_files"


def test_openapi_spec_is_served(client: TestClient, auth: dict[str, str]) -> None:
    spec = client.get("/openapi.json", headers=auth).json()
    paths = spec["paths"]
    for p in (
        f"{API}/upload",
        f"{API}/jobs/status",
        f"{API}/gallery",
        f"{API}/{{image_id}}",
        f"{API}/{{image_id}}/reprocess",
    ):
        assert p in paths, sorted(paths)
    assert "202" in paths[f"{API}/upload"]["post"]["responses"]
    docs = client.get("/docs", headers=auth)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# --------------------------------------------------------------------------- bad uploads
def test_upload_needs_multipart(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post(f"{API}/upload", headers=auth, json={"files": []})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"


def test_upload_without_files_or_with_too_many(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post(f"{API}/upload", headers=auth, files=[("note", ("n.txt", b"x", "text/plain"))])
    assert r.status_code == 422 and r.json()["error"] == "no_files"
    tiny = io.BytesIO()
    Image.new("RGB", (4, 4)).save(tiny, "PNG")
    many = [("files", (f"{i}.png", tiny.getvalue(), "image/png")) for i in range(101)]
    r = client.post(f"{API}/upload", headers=auth, files=many)
    assert r.status_code == 422 and r.json()["error"] == "too_many_files"
    assert "at most 100" in r.json()["detail"]


def test_only_bad_files_give_415_or_422_with_per_file_reasons(
    client: TestClient, auth: dict[str, str]
) -> None:
    bad = bad_files()
    r = client.post(
        f"{API}/upload",
        headers=auth,
        files=[("files", ("notes.jpg", bad["notes_not_an_image.jpg"][0], "image/jpeg"))],
    )
    assert r.status_code == 415, r.text
    body = r.json()
    assert body["error"] == "unsupported_type"
    assert body["rejected"][0]["filename"] == "notes.jpg"
    mixed = [
        ("files", (name, data, "image/jpeg"))
        for name, (data, _) in bad.items()
        if name != "bomb.png"
    ]
    r = client.post(f"{API}/upload", headers=auth, files=mixed)
    assert r.status_code == 422, r.text
    codes = {x["filename"]: x["code"] for x in r.json()["rejected"]}
    assert codes == {
        "notes_not_an_image.jpg": "unsupported_type",
        "truncated.jpg": "corrupt",
        "cmyk.jpg": "unsupported_mode",
        "gray16.png": "unsupported_mode",
    }
    r = client.post(
        f"{API}/upload",
        headers=auth,
        files=[("files", ("bomb.png", bad["bomb.png"][0], "image/png"))],
    )
    assert r.status_code == 413 and r.json()["error"] == "too_many_pixels"


def test_oversize_file_and_total_give_413(
    client: TestClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGING_WEBAPP_MAX_FILE_MB", "0.05")
    big = b"\xff\xd8\xff" + b"\0" * 80_000
    r = client.post(
        f"{API}/upload", headers=auth, files=[("files", ("big.jpg", big, "image/jpeg"))]
    )
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert "limit per photo" in r.json()["rejected"][0]["reason"]
    monkeypatch.setenv("IMAGING_WEBAPP_MAX_TOTAL_MB", "0.1")
    monkeypatch.setenv("IMAGING_WEBAPP_MAX_FILE_MB", "20")
    # over the total: cut off by Content-Length before the body is parsed
    r = client.post(
        f"{API}/upload", headers=auth, files=[("files", ("a.jpg", b"\0" * 2_000_000, "image/jpeg"))]
    )
    assert r.status_code == 413 and r.json()["error"] == "total_too_large"


def test_streamed_body_over_the_total_is_cut_off(
    client: TestClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunked body (no Content-Length) is counted while it streams in."""
    monkeypatch.setenv("IMAGING_WEBAPP_MAX_TOTAL_MB", "0.1")
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for _ in range(40):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post(
        f"{API}/upload",
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    assert r.status_code == 413 and r.json()["error"] == "total_too_large"


# --------------------------------------------------------------------------- happy path
@pytest.fixture(scope="module")
def uploaded(
    client: TestClient, auth: dict[str, str], demo: dict[str, Any], site: dict[str, Any]
) -> dict[str, Any]:
    names = ["tray_000.jpg", "no_gps.jpg", "unconfigured_rack.jpg"]
    files = _files(demo, names) + [
        ("files", ("../../etc/evil name.jpg", bad_files()["truncated.jpg"][0], "image/jpeg"))
    ]
    key = f"test-{uuid.uuid4()}"
    r = client.post(f"{API}/upload", headers={**auth, "Idempotency-Key": key}, files=files)
    assert r.status_code == 202, r.text
    return {"body": r.json(), "names": names, "key": key, "files": files}


@pytest.mark.e2e
def test_upload_stages_files_creates_jobs_and_triggers_photo_ingest(
    client: TestClient, auth: dict[str, str], uploaded: dict[str, Any], site: dict[str, Any]
) -> None:
    body = uploaded["body"]
    sid = body["upload_session_id"]
    assert body["status"] == "accepted"
    assert body["total_files"] == 4 and body["accepted_files"] == 3
    assert body["poll_url"] == f"{API}/jobs/status?upload_session_id={sid}"
    assert [r["filename"] for r in body["rejected"]] == ["evil name.jpg"]
    jobs = {j["filename"]: j for j in body["jobs"]}
    assert set(jobs) == {*uploaded["names"], "evil name.jpg"}
    assert jobs["evil name.jpg"]["status"] == "failed"
    assert "truncated" in jobs["evil name.jpg"]["error_message"]
    assert all(jobs[n]["status"] == "pending" for n in uploaded["names"])

    # staged under temp_uploads/<session>/<job id>.<ext>: the user's names are never paths
    keys = sorted(
        o["Key"]
        for o in site["s3"].list_objects_v2(Bucket="imaging", Prefix=f"temp_uploads/{sid}/")[
            "Contents"
        ]
    )
    assert keys == sorted(f"temp_uploads/{sid}/{jobs[n]['job_id']}.jpg" for n in uploaded["names"])
    staged = site["s3"].get_object(Bucket="imaging", Key=keys[0])["Body"].read()
    assert staged in {f[1][1] for f in uploaded["files"]}

    # a queued photo_ingest run carries the session
    run_id = body["dag_run_id"]
    dr = _dag_run("photo_ingest", run_id)
    assert dr is not None and str(dr.state) == "queued"
    assert dr.conf == {"upload_session_id": sid, "uploaded_by": "alice"}
    with session_scope(site["engine"]) as s:
        up = s.get(PhotoUploadSession, uuid.UUID(sid))
        assert up is not None and up.uploaded_by == "alice" and up.dag_run_id == run_id
        assert up.total_files == 4 and up.upload_source == "web"

    # the retried request (same Idempotency-Key) is the same upload: no new rows, objects or run
    again = client.post(
        f"{API}/upload",
        headers={**auth, "Idempotency-Key": uploaded["key"]},
        files=uploaded["files"],
    )
    assert again.status_code == 202 and again.json()["upload_session_id"] == sid
    assert again.json()["dag_run_id"] == run_id
    with session_scope(site["engine"]) as s:
        n = len(
            s.scalars(select(PhotoJob).where(PhotoJob.upload_session_id == uuid.UUID(sid))).all()
        )
    assert n == 4

    status = client.get(body["poll_url"], headers=auth).json()
    assert status["summary"]["total_jobs"] == 4 and status["summary"]["failed"] == 1
    assert status["summary"]["done"] is False
    pending = [j for j in status["jobs"] if j["status"] == "pending"]
    assert len(pending) == 3 and all("estimated_remaining_seconds" in j for j in pending)
    # the same key with other files is refused, nothing changes
    swapped = client.post(
        f"{API}/upload",
        headers={**auth, "Idempotency-Key": uploaded["key"]},
        files=[uploaded["files"][1], uploaded["files"][0]],
    )
    assert swapped.status_code == 409 and swapped.json()["error"] == "conflict"
    # the same key from another user is not that user's upload
    other = client.post(
        f"{API}/upload",
        headers={"Authorization": f"Bearer {_token('eve')}", "Idempotency-Key": uploaded["key"]},
        files=uploaded["files"][:1],
    )
    assert other.status_code == 202 and other.json()["upload_session_id"] != sid


@pytest.fixture(scope="module")
def processed(
    uploaded: dict[str, Any], run_dag: Any, site: dict[str, Any], client: TestClient
) -> dict[str, Any]:
    """Run the real photo_ingest DAG on the staged session (the harness's dag.test())."""
    reset_breakers()
    sid = uploaded["body"]["upload_session_id"]
    result = run_dag("photo_ingest", conf={"upload_session_id": sid, "uploaded_by": "alice"})
    assert result.state == "success", result.task_states
    return uploaded


@pytest.fixture(scope="module")
def run_dag(airflow_db: Path) -> Any:  # module scope: one ingest run for the module's tests
    from imaging.runner import run_dag as _run

    return lambda dag_id, conf=None: _run(dag_id, conf)


@pytest.mark.e2e
def test_jobs_finish_and_gallery_filters(
    client: TestClient, auth: dict[str, str], processed: dict[str, Any], site: dict[str, Any]
) -> None:
    body = processed["body"]
    status = client.get(body["poll_url"], headers=auth).json()
    by_name = {j["filename"]: j for j in status["jobs"]}
    assert status["summary"]["done"] is True
    assert by_name["tray_000.jpg"]["status"] == "completed"
    assert by_name["tray_000.jpg"]["result"]["total_detected"] > 0
    assert by_name["no_gps.jpg"]["status"] == "needs_location"
    assert by_name["unconfigured_rack.jpg"]["status"] == "needs_config"
    assert status["summary"]["overall_progress_percent"] == 100.0
    recent = client.get(f"{API}/jobs/status", headers=auth).json()
    assert recent["hours"] == 48
    assert body["upload_session_id"] in [u["upload_session_id"] for u in recent["uploads"]]
    eve = client.get(f"{API}/jobs/status", headers={"Authorization": f"Bearer {_token('zoe')}"})
    assert eve.json()["uploads"] == []  # each user sees their own uploads
    assert client.get(f"{API}/jobs/status", headers=auth, params={"hours": 0}).status_code == 422

    # (other tests of the session share the database: scope the counts to this upload)
    mine = {"upload_session_id": body["upload_session_id"]}
    g = client.get(f"{API}/gallery", headers=auth, params={**mine, "per_page": 2}).json()
    assert g["pagination"]["total_items"] == 3 and g["pagination"]["total_pages"] == 2
    assert len(g["photos"]) == 2 and g["expires_in_s"] == 3600
    g2 = client.get(f"{API}/gallery", headers=auth, params={**mine, "per_page": 2, "page": 2})
    all_ids = {p["image_id"] for p in g["photos"] + g2.json()["photos"]}
    assert len(all_ids) == 3
    everything = client.get(f"{API}/gallery", headers=auth, params={"per_page": 200}).json()
    assert all_ids <= {p["image_id"] for p in everything["photos"]}
    ph = g["photos"][0]
    # presigned URLs work without credentials and expire
    assert "X-Amz-Expires=3600" in ph["thumbnail_url"] and "X-Amz-Signature=" in ph["original_url"]
    thumb = httpx.get(ph["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 300

    warn = client.get(f"{API}/gallery", headers=auth, params={**mine, "status": "warning"}).json()
    assert {p["filename"] for p in warn["photos"]} == {"no_gps.jpg", "unconfigured_rack.jpg"}
    assert all(p["badge"] == "warning" for p in warn["photos"])
    ok = client.get(f"{API}/gallery", headers=auth, params={**mine, "status": "success"}).json()
    assert [p["filename"] for p in ok["photos"]] == ["tray_000.jpg"]
    assert ok["photos"][0]["processing_session"]["storage_location_name"].startswith("Warehouse A")
    wh = client.get(f"{API}/warehouses", headers=auth).json()["warehouses"]
    wh_id = next(w["id"] for w in wh if w["code"] == "WH-A")
    by_wh = client.get(
        f"{API}/gallery", headers=auth, params={**mine, "warehouse_id": [wh_id]}
    ).json()
    # photos without a location (needs_location) have no warehouse
    assert {p["filename"] for p in by_wh["photos"]} == {"tray_000.jpg", "unconfigured_rack.jpg"}
    other_wh = client.get(
        f"{API}/gallery", headers=auth, params={**mine, "warehouse_id": [wh_id + 1000]}
    ).json()
    assert other_wh["pagination"]["total_items"] == 0
    future = client.get(f"{API}/gallery", headers=auth, params={"date_from": "2999-01-01"}).json()
    assert future["pagination"]["total_items"] == 0
    bad = client.get(f"{API}/gallery", headers=auth, params={"status": "bogus"})
    assert bad.status_code == 422 and bad.json()["error"] == "bad_filter"
    bad = client.get(
        f"{API}/gallery", headers=auth, params={"date_from": "2026-02-01", "date_to": "2026-01-01"}
    )
    assert bad.status_code == 422
    assert client.get(f"{API}/gallery", headers=auth, params={"page": 0}).status_code == 422


@pytest.mark.e2e
def test_detail_and_reprocess(
    client: TestClient, auth: dict[str, str], processed: dict[str, Any], site: dict[str, Any]
) -> None:
    status = client.get(processed["body"]["poll_url"], headers=auth).json()
    image_id = next(j["image_id"] for j in status["jobs"] if j["filename"] == "no_gps.jpg")
    d = client.get(f"{API}/{image_id}", headers=auth).json()
    assert d["status"] == "warning" and d["needs"] == ["needs_location"]
    assert d["error_details"].startswith("needs_location")
    assert d["processing_session"]["status"] == "needs_location"
    assert d["processing_session"]["total_detected"] > 0
    assert d["metadata"]["width_px"] == 800 and d["metadata"]["content_type"] == "image/jpeg"
    assert httpx.get(d["annotated_url"]).status_code == 200
    assert httpx.get(d["original_url"]).content[:3] == b"\xff\xd8\xff"
    assert len(d["processing_history"]) == 1 and d["storage_location_history"] == []
    ok_id = next(j["image_id"] for j in status["jobs"] if j["filename"] == "tray_000.jpg")
    ok = client.get(f"{API}/{ok_id}", headers=auth).json()
    assert ok["metadata"]["exif"] and ok["metadata"]["gps"]["lat"] < 0
    assert ok["storage_location_history"][0]["image_id"] == ok_id

    assert client.get(f"{API}/{uuid.uuid4()}", headers=auth).status_code == 404
    assert client.get(f"{API}/not-a-uuid", headers=auth).status_code == 422

    loc_id = site["location_ids"]["WH-A-R1"]
    url = f"{API}/{image_id}/reprocess"
    assert client.post(url, headers=auth, json={"reason": ""}).status_code == 422
    r = client.post(url, headers=auth, json={"reason": "x", "storage_location_id": 999999})
    assert r.status_code == 404 and "storage location" in r.json()["detail"]
    r = client.post(f"{API}/{uuid.uuid4()}/reprocess", headers=auth, json={"reason": "x"})
    assert r.status_code == 404
    key = {"Idempotency-Key": f"rp-{uuid.uuid4()}"}
    body = {"reason": "GPS missing: assigned the location", "storage_location_id": loc_id}
    r = client.post(url, headers={**auth, **key}, json=body)
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["poll_url"] == f"{API}/jobs/{out['new_job_id']}/status"
    job = client.get(out["poll_url"], headers=auth).json()
    assert job["status"] == "pending" and job["kind"] == "reprocess"
    dr = _dag_run("photo_reprocess", out["dag_run_id"])
    assert dr is not None and dr.conf == {
        "image_id": image_id,
        "reason": body["reason"],
        "storage_location_id": loc_id,
    }
    # the job id is the one photo_reprocess derives from this run: its upsert finds this row
    from include.photos.models import det_uuid

    assert out["new_job_id"] == str(det_uuid("job", "reprocess", uuid.UUID(image_id), dr.run_id))
    again = client.post(url, headers={**auth, **key}, json=body)
    assert again.status_code == 202 and again.json()["new_job_id"] == out["new_job_id"]
    busy = client.post(url, headers={**auth, "Idempotency-Key": "another"}, json=body)
    assert busy.status_code == 409 and busy.json()["error"] == "conflict"
    with session_scope(site["engine"]) as s:
        img = s.get(S3Image, uuid.UUID(image_id))
        assert img is not None and img.status == "warning"  # unchanged until the run finishes


def test_upload_and_queries_on_the_sqlite_app_db(
    client: TestClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    use_sqlite_app_db: str,
    photo_dags_serialized: None,
) -> None:
    """The demo's embedded SQLite app DB works too (same code, other dialect)."""
    r = client.post(f"{API}/upload", headers=auth, files=_files(demo, ["tray_001.jpg"]))
    assert r.status_code == 202, r.text
    sid = r.json()["upload_session_id"]
    engine = make_engine(use_sqlite_app_db)
    with session_scope(engine) as s:
        assert s.get(PhotoUploadSession, uuid.UUID(sid)) is not None
    status = client.get(r.json()["poll_url"], headers=auth).json()
    assert [j["status"] for j in status["jobs"]] == ["pending"]
    g = client.get(
        f"{API}/gallery", headers=auth, params={"status": "errors", "upload_session_id": sid}
    ).json()
    assert g["pagination"]["total_items"] == 0  # staged, not processed: no image rows yet
    assert client.get(f"{API}/locations", headers=auth).status_code == 200


# --------------------------------------------------------------------------- faults
def test_s3_down_gives_503_and_records_nothing(
    client: TestClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    site: dict[str, Any],
    s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Staging fails (connection refused, retried, then the breaker): the client gets 503 and
    no upload session or job exists, so nothing points at photos that are not in S3."""
    import json

    from include.common.local_services import free_port

    monkeypatch.setenv("IMAGING_PHOTOS_S3_BACKOFF_S", "0.01")
    dead = s3_server.airflow_connection()
    dead["extra"] = {**dead["extra"], "endpoint_url": f"http://127.0.0.1:{free_port()}"}
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_S3", json.dumps(dead))
    reset_breakers()
    key = f"s3-down-{uuid.uuid4()}"
    try:
        r = client.post(
            f"{API}/upload",
            headers={**auth, "Idempotency-Key": key},
            files=_files(demo, ["tray_001.jpg"]),
        )
    finally:
        reset_breakers()
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "storage_unavailable" and "nothing was" in r.json()["detail"]
    from include.webapp.staging import upload_session_id_for

    sid = upload_session_id_for("alice", key)
    with session_scope(site["engine"]) as s:
        assert s.get(PhotoUploadSession, sid) is None
        assert not s.scalars(select(PhotoJob).where(PhotoJob.upload_session_id == sid)).all()
    # S3 back: the same request goes through
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_S3", json.dumps(s3_server.airflow_connection()))
    ok = client.post(
        f"{API}/upload",
        headers={**auth, "Idempotency-Key": key},
        files=_files(demo, ["tray_001.jpg"]),
    )
    assert ok.status_code == 202 and ok.json()["upload_session_id"] == str(sid)


def test_trigger_failure_gives_503_and_the_retry_starts_the_run(
    client: TestClient, auth: dict[str, str], demo: dict[str, Any], site: dict[str, Any]
) -> None:
    from imaging.webapp.services import Services

    client.app.state.services = Services(ingest_dag_id="photo_ingest_not_deployed")
    key = f"trig-{uuid.uuid4()}"
    files = _files(demo, ["tray_001.jpg"])
    try:
        r = client.post(f"{API}/upload", headers={**auth, "Idempotency-Key": key}, files=files)
    finally:
        client.app.state.services = Services()
    assert r.status_code == 503 and r.json()["error"] == "trigger_failed", r.text
    assert "not known to Airflow" in r.json()["detail"]
    sid = r.json()["upload_session_id"]
    with session_scope(site["engine"]) as s:  # staged and recorded, waiting for a run
        up = s.get(PhotoUploadSession, uuid.UUID(sid))
        assert up is not None and up.dag_run_id is None
    again = client.post(f"{API}/upload", headers={**auth, "Idempotency-Key": key}, files=files)
    assert again.status_code == 202 and again.json()["upload_session_id"] == sid
    dr = _dag_run("photo_ingest", again.json()["dag_run_id"])
    assert dr is not None and dr.conf["upload_session_id"] == sid


@pytest.mark.e2e
def test_reprocess_trigger_failure_frees_the_photo(
    client: TestClient, auth: dict[str, str], processed: dict[str, Any]
) -> None:
    from imaging.webapp.services import Services

    status = client.get(processed["body"]["poll_url"], headers=auth).json()
    image_id = next(j["image_id"] for j in status["jobs"] if j["filename"] == "tray_000.jpg")
    url = f"{API}/{image_id}/reprocess"
    client.app.state.services = Services(reprocess_dag_id="photo_reprocess_not_deployed")
    try:
        r = client.post(url, headers=auth, json={"reason": "recount"})
    finally:
        client.app.state.services = Services()
    assert r.status_code == 503 and r.json()["error"] == "trigger_failed"
    jobs = client.get(f"{API}/{image_id}", headers=auth).json()["jobs"]
    failed = [j for j in jobs if j["kind"] == "reprocess"]
    assert len(failed) == 1 and failed[0]["status"] == "failed"
    assert "could not start" in failed[0]["error_message"]
    # the failed attempt does not block the next request
    ok = client.post(url, headers=auth, json={"reason": "recount"})
    assert ok.status_code == 202, ok.text


def test_openapi_documents_the_upload_body_and_errors(
    client: TestClient, auth: dict[str, str]
) -> None:
    spec = client.get("/openapi.json", headers=auth).json()
    up = spec["paths"][f"{API}/upload"]["post"]
    schema = up["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["files"]["maxItems"] == 100
    assert {"401", "413", "415", "422", "503"} <= set(up["responses"])
    rp = spec["paths"][f"{API}/{{image_id}}/reprocess"]["post"]
    assert rp["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ReprocessBody"
    )
    assert "ErrorBody" in spec["components"]["schemas"]
