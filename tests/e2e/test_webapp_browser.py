"""The photos web app in a real browser against a real Airflow.

Set-up (module fixture ``stack``): a private Airflow (temp ``AIRFLOW_HOME``, SQLite metadata DB,
LocalExecutor) whose dags folder holds copies of ``photo_ingest.py`` and ``photo_reprocess.py``,
serialized once with ``airflow dags reserialize``; then ``airflow api-server`` (with the project's
plugins: the app is mounted at ``/photos``) and ``airflow scheduler`` run as subprocesses. Auth is
the real SimpleAuthManager login (all-admins off, user ``alice`` with a password file). The
session's PostgreSQL app DB and rclone S3 server reach every process through the
``AIRFLOW_CONN_*`` variables the fixtures set. No dag-processor/triggerer: the DAGs are serialized
up front and have no deferrable tasks.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (``scripts/setup.d/browser.sh``
installs both; ``playwright install`` is never used). The test logs in through Airflow's login
page, drops a bad file and picks photos, uploads them, watches the jobs finish (run by the
scheduler from the run the upload endpoint created), opens the gallery, filters it, opens a
``needs_location`` photo, follows badge → details → location picker → Reprocess and waits until
the photo is ``ready``. Screenshots of every page go to ``$WEBAPP_SCREENSHOTS_DIR`` when set
(``docs/screenshots`` for the README), else to the test's temp folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from include.common.db import make_engine, session_scope
from include.photos.catalog import upsert_site
from include.photos.samples import bad_files, generate_demo
from tests.e2e import airflow_ui as ui
from tests.e2e.private_airflow import PrivateAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = ui.CHROMIUM
USER, PASSWORD = "alice", "pw-alice-e2e"


class AirflowStack(PrivateAirflow):
    """api-server + scheduler of a private Airflow home (DAGs serialized before they start)."""

    prepare = (("db", "migrate"), ("dags", "reserialize"))

    def __init__(self, home: Path, dag_files: list[Path]) -> None:
        super().__init__(home, dag_files, USER, PASSWORD)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate_demo(
        tmp_path_factory.mktemp("browser") / "photos",
        n_good=2,
        width=800,
        height=600,
        with_bad=False,
    )


@pytest.fixture(scope="module")
def stack(
    app_db_url: str, s3_server: Any, tmp_root: Path, demo: dict[str, Any]
) -> Iterator[AirflowStack]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/setup.d/browser.sh")
    with session_scope(make_engine(app_db_url)) as s:
        upsert_site(s, demo["warehouses"], demo["locations"])
    s = AirflowStack(
        tmp_root / "webapp-airflow",
        [ROOT / "dags" / "photo_ingest.py", ROOT / "dags" / "photo_reprocess.py"],
    )
    with s.running():
        yield s


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ui.screenshots_dir("WEBAPP_SCREENSHOTS_DIR", tmp_path_factory, "screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with ui.chromium() as b:
        yield b


def _shot(page: Any, path: Path, full_page: bool = True) -> None:
    """A screenshot, palette-quantised (the README's PNGs stay small)."""
    from PIL import Image

    page.screenshot(path=str(path), full_page=full_page)
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def _drop_file(page: Any, selector: str, name: str, data: bytes, mime: str) -> None:
    """A real drag-and-drop ``drop`` event carrying one file."""
    dt = page.evaluate_handle(
        """([name, bytes, mime]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            return dt;
        }""",
        [name, list(data), mime],
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": dt})
    page.dispatch_event(selector, "drop", {"dataTransfer": dt})


def test_upload_watch_gallery_filter_detail_and_reprocess(
    stack: AirflowStack, browser: Any, demo: dict[str, Any], shots: Path, tmp_path: Path
) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # ------------------------------------------------------------------ login (Airflow's page)
    page.goto(f"{stack.url}/photos/upload")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/photos/upload**")
    assert "signed in as" in page.inner_text("header") and USER in page.inner_text("header")

    # ------------------------------------------------------------------ upload
    by_name = {p["filename"]: Path(p["path"]) for p in demo["photos"]}
    _drop_file(page, "#drop", "notes.jpg", b"just some text, not a photo\n", "image/jpeg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(bad_files()["truncated.jpg"][0])
    page.set_input_files(
        "#picker", [str(by_name["tray_000.jpg"]), str(by_name["no_gps.jpg"]), str(truncated)]
    )
    page.wait_for_selector("#selected tbody tr >> nth=3")
    notes_row = page.locator('#selected tr[data-file="notes.jpg"]')
    assert "not a JPEG or PNG" in notes_row.inner_text()  # refused before uploading
    assert "3 of 4 file(s) ready" in page.inner_text("#batch-msg")
    page.click("#upload-btn")
    page.wait_for_selector("#jobs tbody tr >> nth=2")
    assert "1 refused by the server" in page.inner_text("#batch-msg")
    assert page.locator('#selected tr[data-file="tray_000.jpg"]').inner_text().count("sent") == 1
    # jobs run on the real scheduler; the page polls every 2 s
    page.wait_for_function(
        "() => [...document.querySelectorAll('#jobs tbody tr')].every("
        "r => !['pending', 'processing'].includes(r.dataset.status))",
        timeout=420_000,
        polling=1000,
    )
    statuses = {
        r.locator("td").first.inner_text(): r.get_attribute("data-status")
        for r in page.locator("#jobs tbody tr").all()
    }
    assert statuses == {
        "tray_000.jpg": "completed",
        "no_gps.jpg": "needs_location",
        "truncated.jpg": "failed",
    }, statuses
    assert page.inner_text("#overall") == "100%"
    _shot(page, shots / "upload.png")
    session_id = page.url.split("session=", 1)[1].split("&", 1)[0]
    href = page.locator("#jobs a", has_text="no_gps.jpg").get_attribute("href")
    no_gps_id = href.rsplit("/", 1)[-1]

    # ------------------------------------------------------------------ gallery + filters
    page.click("header a[data-page=gallery]")
    page.wait_for_selector(f'.tile[data-image="{no_gps_id}"]')
    tile_img = page.locator(f'.tile[data-image="{no_gps_id}"] img')
    assert tile_img.get_attribute("loading") == "lazy"
    page.wait_for_function(
        "id => { const i = document.querySelector(`.tile[data-image='${id}'] img`);"
        " return i && i.complete && i.naturalWidth > 0; }",
        arg=no_gps_id,
    )  # the presigned thumbnail URL really loads from S3
    _shot(page, shots / "gallery.png")
    page.select_option("select[name=status]", "warning")
    page.fill("input[name=date_from]", datetime.now(UTC).strftime("%Y-%m-%d"))
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        "() => document.querySelectorAll('.tile').length > 0 && "
        "[...document.querySelectorAll('.tile')].every(t => t.dataset.status === 'warning')"
    )
    assert page.locator(f'.tile[data-image="{no_gps_id}"]').count() == 1
    assert "status=warning" in page.url
    _shot(page, shots / "gallery_filtered.png")

    # ------------------------------------------------------------------ detail + error flow
    page.click(f'.tile[data-image="{no_gps_id}"]')
    page.wait_for_url(f"**/photos/photo/{no_gps_id}")
    page.wait_for_selector("#status-badge .badge.warning")
    assert "needs_location" in page.inner_text("#alert")
    page.wait_for_function(
        "() => ['original', 'annotated'].every(id => {"
        " const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; })"
    )
    _shot(page, shots / "photo_needs_location.png")
    page.click("#status-badge")  # badge -> details
    page.wait_for_selector("#error-modal.open")
    assert "GPS" in page.inner_text("#modal-body")
    _shot(page, shots / "error_details.png", full_page=False)
    page.click("#modal-fix")  # -> pick a storage location
    option = page.locator("#location option", has_text="Rack 1").first
    page.select_option("#location", value=option.get_attribute("value"))
    page.click("#reprocess-btn")  # -> Reprocess
    page.wait_for_selector("#reprocess-msg .badge")
    page.wait_for_selector('#reprocess-msg[data-done="1"]', timeout=300_000)
    assert page.get_attribute("#reprocess-msg", "data-status") == "completed"
    page.wait_for_selector("#status-badge .badge.success")
    assert page.locator("#history tbody tr").count() == 2
    assert "reprocess" in page.locator("#history tbody tr").first.inner_text()
    assert "Rack 1" in page.inner_text("#counts")
    _shot(page, shots / "photo_reprocessed.png")

    # the gallery now shows it as ready; one photo per page: the lazy loader fetches page after
    # page as the end of the grid comes into view
    # (kept to this test's upload: other tests of the session share the app DB)
    page.goto(
        f"{stack.url}/photos/gallery?status=success&per_page=1&upload_session_id={session_id}"
    )
    page.wait_for_selector(f'.tile[data-image="{no_gps_id}"][data-status="ready"]')
    page.wait_for_selector("#end:not([hidden])")
    assert "upload_session_id" in page.url  # the filter survives the page's own URL rewrite
    # every photo of the upload is on the grid, one page each (tray_000.jpg may belong to an earlier
    # upload of the same bytes by another test of the session: photos are identified by content)
    total = int(page.inner_text("#count").split()[0])
    assert total >= 1 and page.locator(".tile").count() == total
    assert total == 1 or "page" in page.inner_text("#count")
    assert "of one upload" in page.inner_text("#count")  # the filter is said, not hidden
    assert errors == [], errors

    # the menu entry of the plugin opens the app inside the Airflow UI (external view)
    page.goto(f"{stack.url}/plugin/photo-gallery")
    frame = page.wait_for_selector('iframe[src*="/photos/gallery"]', timeout=60_000)
    inner = frame.content_frame()
    inner.wait_for_selector(f'.tile[data-image="{no_gps_id}"]', timeout=60_000)
    _shot(page, shots / "airflow_menu.png", full_page=False)
    ctx.close()


def test_logged_out_browser_is_sent_to_the_airflow_login(stack: AirflowStack, browser: Any) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{stack.url}/photos/gallery")
    page.wait_for_url("**/auth/login**")
    assert "next=" in page.url and "photos" in page.url
    r = page.request.get(f"{stack.url}/photos/api/v1/photos/gallery")
    assert r.status == 401 and r.json()["error"] == "not_authenticated"
    ctx.close()
