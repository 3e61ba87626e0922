"""The ``/artefacts`` app with FastAPI's TestClient and the session's real Airflow auth manager
(JWTs signed and validated by Airflow): login required, only files under the published root,
content types, traversal refused, and the plugin registers the app at ``/artefacts``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from include.common.publish import publish_bytes, publish_text

RUN = "manual__2026-11-21T09:00:00+00:00"
RUN_DIR = "manual__2026-11-21T09_00_00+00_00"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _token(name: str = "alice", role: str | None = "admin", expires: int | None = None) -> str:
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    am = create_auth_manager()
    user = SimpleAuthManagerUser(username=name, role=role)
    if expires is None:
        return am.generate_jwt(user)
    return am.generate_jwt(user, expiration_time_in_seconds=expires)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("artefacts")
    root = base / "published"
    publish_bytes(PNG, "astro_prepare_lights", RUN, "blink_C8E.png", root=root)
    publish_text("<h1>report</h1>", "astro_catalog_report", RUN, "report/index.html", root=root)
    publish_text("date\n", "astro_catalog_report", RUN, "report/rig/M_31/astrobin.csv", root=root)
    publish_text('{"a": 1}\n', "astro_prepare_lights", RUN, "summary.json", root=root)
    publish_text("# summary\n", "astro_prepare_lights", RUN, "summary.md", root=root)
    publish_bytes(b"\x00\x01", "astro_prepare_lights", RUN, "blob.bin", root=root)
    # things that must never be served
    (base / "secret.txt").write_text("secret")
    (root / "astro_prepare_lights" / RUN_DIR / ".sheet.png.1234.partial").write_bytes(PNG)
    (root / "astro_prepare_lights" / RUN_DIR / "escape.txt").symlink_to(base / "secret.txt")
    (root / "astro_prepare_lights" / "linked_run").symlink_to(base)
    return root


@pytest.fixture(scope="module")
def client(published: Path, airflow_db: Path) -> Iterator[TestClient]:
    from imaging.artefacts_app import create_app

    with TestClient(create_app(root=published), base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="module")
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {_token()}"}


SHEET = f"/astro_prepare_lights/{RUN_DIR}/blink_C8E.png"


def test_login_required(client: TestClient) -> None:
    r = client.get(SHEET)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    assert PNG not in r.content
    r = client.get(SHEET, headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = client.get(SHEET, headers={"Authorization": f"Bearer {_token(expires=-10)}"})
    assert r.status_code == 401 and r.json()["error"] in ("token_expired", "invalid_token")
    # the run listing and a missing file are behind the login too (no existence leak)
    assert client.get(f"/astro_prepare_lights/{RUN_DIR}/").status_code == 401
    assert client.get("/astro_prepare_lights/x/nothing.png").status_code == 401
    # a browser is sent to Airflow's login page, coming back afterwards
    r = client.get(SHEET, headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and "login" in r.headers["location"]
    assert "blink_C8E.png" in r.headers["location"]


def test_served_with_a_valid_airflow_login(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get(SHEET, headers=auth)
    assert r.status_code == 200 and r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none'
    assert r.headers["content-disposition"] == 'inline; filename="blink_C8E.png"'
    # the UI's cookie works as well (links clicked in the Airflow UI)
    r = client.get(SHEET, cookies={"_token": _token("bob")})
    assert r.status_code == 200 and r.content == PNG
    h = client.head(SHEET, headers=auth)
    assert (
        h.status_code == 200 and h.content == b"" and h.headers["content-length"] == str(len(PNG))
    )


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        (f"/astro_catalog_report/{RUN_DIR}/report/index.html", "text/html; charset=utf-8"),
        (
            f"/astro_catalog_report/{RUN_DIR}/report/rig/M_31/astrobin.csv",
            "text/csv; charset=utf-8",
        ),
        (f"/astro_prepare_lights/{RUN_DIR}/summary.json", "application/json"),
        (f"/astro_prepare_lights/{RUN_DIR}/summary.md", "text/markdown; charset=utf-8"),
        (f"/astro_prepare_lights/{RUN_DIR}/blob.bin", "application/octet-stream"),
    ],
)
def test_content_types(client: TestClient, auth: dict[str, str], path: str, ctype: str) -> None:
    r = client.get(path, headers=auth)
    assert r.status_code == 200
    assert r.headers["content-type"] == ctype
    disposition = "attachment" if ctype == "application/octet-stream" else "inline"
    assert r.headers["content-disposition"].startswith(disposition)


def test_run_listing(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get(f"/astro_catalog_report/{RUN_DIR}/", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"/astro_catalog_report/{RUN_DIR}/report/index.html" in r.text
    assert "astrobin.csv" in r.text
    r = client.get(f"/astro_prepare_lights/{RUN_DIR}/", headers=auth)
    assert "partial" not in r.text and "escape.txt" not in r.text
    assert client.get("/astro_prepare_lights/no_such_run/", headers=auth).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/astro_prepare_lights",
        "/astro_prepare_lights/",
        f"/astro_prepare_lights/{RUN_DIR}/missing.png",
        f"/astro_prepare_lights/{RUN_DIR}/.sheet.png.1234.partial",
        f"/astro_prepare_lights/{RUN_DIR}/escape.txt",  # symlink out of the root
        "/astro_prepare_lights/linked_run/secret.txt",  # symlinked folder out of the root
        f"/astro_prepare_lights/{RUN_DIR}/..%2F..%2F..%2Fsecret.txt",
        f"/astro_prepare_lights/{RUN_DIR}/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/%2e%2e/%2e%2e/secret.txt",
        f"/astro_prepare_lights/{RUN_DIR}/..%5C..%5Csecret.txt",
        f"/astro_prepare_lights/{RUN_DIR}/blink_C8E.png%00.txt",
        f"/astro_prepare_lights/{RUN_DIR}//etc/passwd",
        "/astro_prepare_lights/..%2F../secret.txt",
        f"/astro_prepare_lights/{RUN_DIR}/report",  # a folder is not a file
    ],
)
def test_nothing_outside_the_root(client: TestClient, auth: dict[str, str], path: str) -> None:
    r = client.get(path, headers=auth)
    assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert b"secret" not in r.content and b"root:" not in r.content


def test_raw_dot_dot_path_is_refused(published: Path, auth: dict[str, str]) -> None:
    """``..`` sent as is (clients normally collapse it): the ASGI app still answers 404."""
    import asyncio

    from imaging.artefacts_app import create_app

    app = create_app(root=published)
    sent: list[dict] = []

    async def run() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/astro_prepare_lights/{RUN_DIR}/../../../secret.txt",
            "raw_path": f"/astro_prepare_lights/{RUN_DIR}/../../../secret.txt".encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"testserver"),
                (b"authorization", auth["Authorization"].encode()),
            ],
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 1),
        }

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg: dict) -> None:
            sent.append(msg)

        await app(scope, receive, send)

    asyncio.run(run())
    assert sent[0]["status"] == 404
    assert b"secret" not in b"".join(m.get("body", b"") for m in sent[1:])


def test_only_users_allowed_to_read_the_dag_runs(client: TestClient) -> None:
    nobody = {"Authorization": f"Bearer {_token('nora', role=None)}"}
    r = client.get(SHEET, headers=nobody)
    assert r.status_code == 403 and "astro_prepare_lights" in r.json()["detail"]
    viewer = {"Authorization": f"Bearer {_token('vera', role='viewer')}"}
    assert client.get(SHEET, headers=viewer).status_code == 200


def test_writes_are_not_allowed(client: TestClient, auth: dict[str, str]) -> None:
    assert client.post(SHEET, headers=auth, content=b"x").status_code == 405
    assert client.delete(SHEET, headers=auth).status_code == 405


def test_mounted_on_the_airflow_api_server(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin is loaded by Airflow's plugin manager and the api-server app (the real
    ``create_app``) serves the default published root at ``/artefacts`` behind the login. The
    session runs Airflow with ``simple_auth_manager_all_admins`` (every request gets an admin
    token from a middleware); a real deployment does not, so it is switched off here."""
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import create_app as create_api_app

    from include.common.publish import published_root

    pub = publish_bytes(PNG, "artefacts_test", RUN, "mounted.png")
    assert Path(pub.path).is_relative_to(published_root())
    with TestClient(create_api_app(apps="core"), base_url="http://testserver") as c:
        url = pub.url("http://testserver")
        assert url == f"http://testserver/artefacts/artefacts_test/{RUN_DIR}/mounted.png"
        assert c.get(url).status_code == 401
        r = c.get(url, headers={"Authorization": f"Bearer {_token()}"})
        assert r.status_code == 200 and r.content == PNG
        assert r.headers["content-type"] == "image/png"
        r = c.get(
            "http://testserver/artefacts/artefacts_test/x/..%2F..%2F..%2Fairflow.cfg",
            headers={"Authorization": f"Bearer {_token()}"},
        )
        assert r.status_code == 404


def test_links_use_the_api_base_url_of_the_airflow_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from imaging.artefacts import api_base_url
    from include.common.publish import artefact_url

    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    assert api_base_url() == "http://127.0.0.1:8080"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.org/af/")
    assert api_base_url() == "https://airflow.example.org/af/"
    assert artefact_url("d", RUN, "a.png", api_base_url()) == (
        f"https://airflow.example.org/af/artefacts/d/{RUN_DIR}/a.png"
    )
