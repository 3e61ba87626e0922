"""The astro blink page (issue 15 deliverable 2) with FastAPI's TestClient and Airflow's real auth
manager: behind the login, the manifest of a review (metrics, deviations, hints; no server paths),
screen-size previews of 16-bit NINA frames built from the manifest only, the page answering the
approval through Airflow's HITL REST API."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from include.common.publish import publish_file
from tests.plugins.test_artefacts_app import _token

RUN = "manual__2026-11-21T09:00:00+00:00"
DAG = "astro_prepare_lights"
Q = {"dag_id": DAG, "run_id": RUN, "map_index": 0}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from include.astro.samples import C8E, generate_raw_tree
    from include.astro.steps.blink_review import blink_sheet
    from include.astro.steps.lights_inputs import lights_inputs
    from include.astro.steps.prepare_raw import prepare_raw

    base = tmp_path_factory.mktemp("blink")
    pub = base / "published"
    generate_raw_tree(base / "raw")
    inp = lights_inputs({"raw_dir": str(base / "raw"), "library_dir": str(base / "lib")}, RUN)
    prepare_raw(inp, lambda *a: None)

    def publish(path: object, name: str | None) -> str:
        p = publish_file(path, DAG, RUN, name, root=pub)  # type: ignore[arg-type]
        return "/artefacts/" + p.rel

    sheet = blink_sheet(inp, C8E, publish, page_url="/astro-blink/?x", map_index=0)
    assert "**Blink page:**" in sheet["body"]
    return pub


@pytest.fixture(scope="module")
def client(root: Path, airflow_db: Path) -> Iterator[TestClient]:
    from imaging.astro_blink_app import create_app

    with TestClient(create_app(root=root), base_url="http://testserver") as c:
        yield c


AUTH = {}


def _auth() -> dict[str, str]:
    if not AUTH:
        AUTH["Authorization"] = f"Bearer {_token()}"
    return AUTH


def test_login_required(client: TestClient) -> None:
    assert client.get("/api/manifest", params=Q).status_code == 401
    assert client.get("/api/preview", params={**Q, "n": 1}).status_code == 401
    r = client.get("/", params=Q, headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and "login" in r.headers["location"]


def test_manifest_has_metrics_and_no_server_paths(client: TestClient) -> None:
    r = client.get("/api/manifest", params=Q, headers=_auth())
    assert r.status_code == 200
    m = r.json()
    assert len(m["frames"]) == 12 and m["options"] == ["Continue", "Hold"]
    f = m["frames"][0]
    assert "file" not in f and f["name"].endswith(".fits")
    for k in ("stars", "hfr", "fwhm", "eccentricity", "background"):
        assert k in f and f"{k}_dev" in f
    assert isinstance(f["stars"], int) and "hints" in f
    assert (
        client.get("/api/manifest", params={**Q, "map_index": 7}, headers=_auth()).status_code
        == 404
    )


def test_preview_at_screen_size(client: TestClient) -> None:
    from PIL import Image

    r = client.get("/api/preview", params={**Q, "n": 2, "size": 800}, headers=_auth())
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(BytesIO(r.content))
    assert max(img.size) == 800  # 64x48 px sample frames are enlarged to the asked size
    again = client.get("/api/preview", params={**Q, "n": 2, "size": 800}, headers=_auth())
    assert again.content == r.content  # cached
    assert client.get("/api/preview", params={**Q, "n": 99}, headers=_auth()).status_code == 404


def test_page_blinks_and_answers_through_the_hitl_api(client: TestClient) -> None:
    r = client.get("/", params={**Q, "task_id": "blink_review"}, headers=_auth())
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    html = r.text
    assert f'<script nonce="{nonce}">' in html
    assert "/hitlDetails" in html and "chosen_options" in html and "params_input" in html
    assert "ArrowRight" in html and "ArrowLeft" in html and '"x"' in html  # keyboard blinking
    assert "sortBy" in html


def test_plugin_registers_the_app() -> None:
    from imaging_astro_blink_plugin import ImagingAstroBlinkPlugin

    assert ImagingAstroBlinkPlugin.fastapi_apps[0]["url_prefix"] == "/astro-blink"
