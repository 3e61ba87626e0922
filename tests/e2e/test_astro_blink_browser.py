"""The astro blink page as a user meets it: a real Airflow, a real browser, generated NINA frames.

Set-up (module fixture ``stack``): a private Airflow (temp ``AIRFLOW_HOME``, SQLite metadata DB,
LocalExecutor, the project's plugins: the blink page is mounted at ``/astro-blink``) whose dags
folder holds ``astro_prepare_lights.py``; ``api-server``, ``scheduler``, ``dag-processor`` and
``triggerer`` run as subprocesses (stopped by process group). Login is the SimpleAuthManager's
page (user ``admin`` with a password file, so :class:`tests.e2e.demo_stack.RestApi` works too). The
app DB is the session's PostgreSQL (``imaging_db``); the installation settings of the astro DAGs
point at empty folders, so a scheduled run that may fire during the test touches nothing.

The test triggers ``astro_prepare_lights`` through the trigger form on the sample tree of
:func:`include.astro.samples.generate_demo`, answers the cull approval (*Keep all*), opens the blink
review of the C8E rig where Airflow shows it (the task's Required Action tab), follows its link to
the blink page, blinks with the keyboard (→ ← and ``x`` to mark/unmark), sorts the table by a
column (twice: ascending, descending; blinking follows the sorted order), sends the selection with
the page's button and checks that the buttons are then inactive, that the run goes on to green and
that exactly the marked frames (plus the cull's rejects) are in the reject folder. The DWARF rig's
review is answered *Hold* on its blink page after playing it with ``space`` (its lights stay in
``10_Blink``), the SQA55 rig's *Continue* with nothing to reject through the REST API. The lights
are 600x800 :func:`include.astro.samples.sky_frame` frames (one sky per target, Moffat stars,
clouds and trails), so the screenshot shows what a user would blink.

The page's screenshot goes to ``$ASTRO_SCREENSHOTS_DIR`` (``docs/screenshots`` for the README's
``astro_blink.png``), else to the test's temp folder.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.astro.samples import C8E, DWARF, SQA55, generate_demo
from tests.e2e import airflow_ui as ui
from tests.e2e.demo_stack import RestApi, q
from tests.e2e.private_airflow import PrivateAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = ui.CHROMIUM
DAG = "astro_prepare_lights"
USER, PASSWORD = "admin", "pw-admin-blink-e2e"
APPROVAL_DELAY = 2.0  # s a task has waited before it is answered (apache/airflow#71172)
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
LIGHT_SHAPE = (600, 800)  # lights that look like lights on the page (sky_frame), not 48x64 tiles

NGC = "NGC 7000/DATE_2026-11-20"
HA, O3 = f"{NGC}/FILTER_H_EXP_300.00", f"{NGC}/FILTER_O_EXP_300.00"
CULL_REJECTS = [  # pass 1 (auto) in Ha, pass 2 in O3 after "Keep all" (see test_astro_prepare_lights)
    f"{HA}/2026-11-21T03-10-20_HFR_4.80_STARS_301_RMSAC_0.70_TEMP_-10.00.fits",
    f"{HA}/2026-11-21T03-20-40_HFR_2.20_STARS_805_RMSAC_2.50_TEMP_-10.00.fits",
    f"{O3}/2026-11-21T04-20-40_HFR_6.00_STARS_150_RMSAC_0.65_TEMP_-10.00.fits",
]


class AstroStack(PrivateAirflow):
    """The four Airflow components of a private Airflow home, with empty installation settings
    (the run must use what the form says)."""

    components = COMPONENTS
    healthy = ("scheduler", "dag_processor", "triggerer")

    def __init__(self, home: Path) -> None:
        super().__init__(home, [ROOT / "dags" / f"{DAG}.py"], USER, PASSWORD)

    def env(self) -> dict[str, str]:
        env = super().env()
        empty = self.home / "settings"
        env.update(
            {
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "IMAGING_DATA_DIR": str(self.home / "data"),
                "AIRFLOW_VAR_IMAGING_ASTRO_RAW_DIR": str(empty / "raw"),
                "AIRFLOW_VAR_IMAGING_ASTRO_LIBRARY_DIR": str(empty / "library"),
            }
        )
        return env


@pytest.fixture(scope="module")
def stack(app_db_url: str, tmp_root: Path) -> Iterator[AstroStack]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/setup.d/browser.sh")
    s = AstroStack(tmp_root / "astro-blink-airflow")
    with s.running():
        yield s


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ui.screenshots_dir("ASTRO_SCREENSHOTS_DIR", tmp_path_factory, "astro-screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with ui.chromium() as b:
        yield b


# ----------------------------------------------------------------------------------- helpers
def wait_for(what: str, probe: Any, timeout: float, stack: AstroStack) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}\n{stack.log_tail('scheduler', 3000)}")


def pending(api: RestApi, run_id: str) -> list[dict[str, Any]]:
    return [
        d
        for d in api.pending_approvals()
        if d["task_instance"]["dag_run_id"] == run_id and d["task_instance"]["dag_id"] == DAG
    ]


def answer_rest(api: RestApi, detail: dict[str, Any], body: dict[str, Any]) -> None:
    ti = detail["task_instance"]
    path = (
        f"/api/v2/dags/{q(DAG)}/dagRuns/{q(ti['dag_run_id'])}/taskInstances/"
        f"{q(ti['task_id'])}/{ti['map_index']}/hitlDetails"
    )
    api.call("PATCH", path, body)


def run_failure(api: RestApi, run_id: str) -> str:
    tis = api.task_instances(DAG, run_id)
    bad = [t for t in tis if t["state"] in ("failed", "upstream_failed")]
    return "; ".join(f"{t['task_id']}[{t['map_index']}]: {api.task_error(t)}" for t in bad)


def reject_tree(lib: Path, rig: str) -> list[str]:
    base = lib / rig / "_Reject" / "10_Blink"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


# -------------------------------------------------------------------------------------- test
def test_blink_page_in_airflow(
    stack: AstroStack, browser: Any, shots: Path, tmp_path: Path
) -> None:
    conf = generate_demo(tmp_path / "astro", light_shape=LIGHT_SHAPE)
    lib = Path(conf["library_dir"])
    api = RestApi(stack.url, PASSWORD)
    wait_for("the DAG to be parsed", lambda: DAG in api.dag_ids(), 240, stack)

    ctx = browser.new_context(viewport={"width": 1400, "height": 860})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ui.login(page, stack.url, USER, PASSWORD)

    # ---------------------------------------------------------------- trigger through the form
    dialog = ui.open_trigger_form(page, stack.url, DAG)
    for name in ("raw_dir", "library_dir"):
        ui.set_field(dialog, name, conf[name], {})
    status, body = ui.submit_trigger(page, dialog)
    assert status == 200, body
    assert isinstance(body, dict)
    run_id = body["dag_run_id"]

    # ---------------------------------------------------------------- cull approval: Keep all
    [cull] = wait_for("the cull approval", lambda: pending(api, run_id), 600, stack)
    assert cull["task_instance"]["task_id"] == "approve_cull_1", cull
    time.sleep(APPROVAL_DELAY)
    answer_rest(api, cull, {"chosen_options": ["Keep all"], "params_input": {}})

    # ---------------------------------------------------------------- the blink reviews
    def reviews() -> list[dict[str, Any]]:
        got = [d for d in pending(api, run_id) if d["task_instance"]["task_id"] == "blink_review"]
        return got if len(got) == 3 else []

    asked = wait_for("the three blink reviews", reviews, 600, stack)
    by_rig = {r: next(d for d in asked if r in d["subject"]) for r in (C8E, DWARF, SQA55)}
    review = by_rig[C8E]
    assert "/astro-blink/" in review["body"]
    time.sleep(APPROVAL_DELAY)

    # the approval where Airflow shows it, and its link to the blink page
    page.goto(ui.ti_required_actions_url(stack.url, review["task_instance"]))
    link = page.locator("a[href*='/astro-blink/']").first
    link.wait_for()
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{stack.url}/astro-blink/?"), href
    try:
        with ctx.expect_page(timeout=5_000) as popup:
            link.click()
        blink = popup.value
    except Exception:  # noqa: BLE001 - the link opened in the same tab
        blink = page
    blink.on("pageerror", lambda exc: errors.append(str(exc)))
    blink.wait_for_url("**/astro-blink/**")
    rows = blink.locator("#rows tr")
    rows.first.wait_for()
    manifest = ctx.request.get(
        f"{stack.url}/astro-blink/api/manifest?"
        + "&".join(
            f"{k}={q(str(review['task_instance'][v]))}"
            for k, v in (("dag_id", "dag_id"), ("run_id", "dag_run_id"), ("map_index", "map_index"))
        )
    ).json()
    names = {int(f["n"]): f["rel"] for f in manifest["frames"]}
    assert rows.count() == len(names) == 9  # C8E: 5 Ha + 4 O3 left after the cull
    title = blink.locator("#title")
    assert title.inner_text().startswith("1/9 ")
    # the frame is drawn (a real preview of the 16-bit frame, not a broken image)
    blink.wait_for_function(
        "() => { const i = document.getElementById('img');"
        " return i.complete && i.naturalWidth > 0; }"
    )

    # blink with the keyboard: → → x (3) → → → x (6) ← x x (5 marked and unmarked) →
    keys = ["ArrowRight", "ArrowRight", "x", "ArrowRight", "ArrowRight", "ArrowRight", "x"]
    keys += ["ArrowLeft", "x", "x", "ArrowRight"]
    for k in keys:
        blink.keyboard.press(k)
    assert title.inner_text().startswith("6/9 ") and "[REJECT]" in title.inner_text()
    assert blink.locator("#count").inner_text() == "2"
    assert blink.locator("#rows tr.rej").count() == 2
    blink.keyboard.press("ArrowLeft")
    blink.keyboard.press("ArrowLeft")  # back to 4: the table marks 3 and 6, the view shows 4
    blink.wait_for_function(
        "() => { const i = document.getElementById('img');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    ui.shot(blink, shots / "astro_blink.png")

    # sort by a column: the table and the blinking follow it; the marks and the frame shown stay
    stars = {int(f["n"]): f["stars"] for f in manifest["frames"]}
    assert all(v is not None for v in stars.values()), stars  # measured on every 600x800 light

    def table_order() -> list[int]:
        return [int(t) for t in blink.locator("#rows tr td:first-child").all_inner_texts()]

    blink.locator("#head th[data-k='stars']").click()
    up = sorted(names, key=lambda n: (stars[n], n))
    assert table_order() == up and "▲" in blink.locator("#head th[data-k='stars']").inner_text()
    assert title.inner_text().startswith("4/9 ") and blink.locator("#rows tr.rej").count() == 2
    blink.keyboard.press("ArrowRight")
    after4 = up[(up.index(4) + 1) % len(up)]
    assert title.inner_text().startswith(f"{after4}/9 ")
    blink.locator("#head th[data-k='stars']").click()  # again: descending
    assert table_order() == sorted(names, key=lambda n: (-stars[n], n))
    assert "▼" in blink.locator("#head th[data-k='stars']").inner_text()
    assert title.inner_text().startswith(f"{after4}/9 ")

    # send the selection with the page's button
    with blink.expect_response(
        lambda r: r.request.method == "PATCH" and "/hitlDetails" in r.url,
        timeout=ui.RESPONSE_TIMEOUT,
    ) as resp:
        blink.locator("#send").click()
    assert resp.value.status == 200, resp.value.text()
    sent = json.loads(resp.value.request.post_data or "{}")
    assert sent == {"chosen_options": ["Continue"], "params_input": {"reject": "3,6"}}
    assert "sent" in blink.locator("#msg").inner_text()
    # answered: nothing on the page can change or resend it
    assert blink.locator("#send").is_disabled() and blink.locator("#hold").is_disabled()
    blink.keyboard.press("x")
    assert blink.locator("#count").inner_text() == "2"
    # opened again later, the page says it was answered
    blink.reload()
    blink.locator("#rows tr").first.wait_for()
    blink.wait_for_function("() => document.getElementById('send').disabled")
    assert "answered" in blink.locator("#msg").inner_text()

    # ---------------------------------------------------------------- Hold on the DWARF page
    m = re.search(r"https?://[^\s)\]\"'<>]+/astro-blink/\?[^\s)\]\"'<>]+", by_rig[DWARF]["body"])
    assert m, by_rig[DWARF]["body"]
    blink.goto(m.group(0).replace("&amp;", "&"))
    blink.locator("#rows tr").first.wait_for()
    blink.wait_for_function("() => !document.getElementById('hold').disabled")
    assert blink.locator("#rows tr").count() == 3
    # space plays (one frame every 0.7 s, wrapping around) and stops
    assert blink.locator("#title").inner_text().startswith("1/3 ")
    blink.keyboard.press(" ")
    blink.wait_for_function(
        "() => document.getElementById('title').textContent.startsWith('3/3 ')", timeout=10_000
    )
    blink.keyboard.press(" ")
    stopped = blink.locator("#title").inner_text()
    blink.wait_for_timeout(1_500)
    assert blink.locator("#title").inner_text() == stopped
    blink.keyboard.press("x")  # a mark does not travel with Hold
    with blink.expect_response(
        lambda r: r.request.method == "PATCH" and "/hitlDetails" in r.url,
        timeout=ui.RESPONSE_TIMEOUT,
    ) as resp:
        blink.locator("#hold").click()
    assert resp.value.status == 200, resp.value.text()
    sent = json.loads(resp.value.request.post_data or "{}")
    assert sent == {"chosen_options": ["Hold"], "params_input": {"reject": None}}
    assert blink.locator("#send").is_disabled() and blink.locator("#hold").is_disabled()

    # ---------------------------------------------------------------- the last rig, run end
    answer_rest(api, by_rig[SQA55], {"chosen_options": ["Continue"], "params_input": {}})

    def finished() -> str | None:
        state = api.run(DAG, run_id)["state"]
        return state if state in ("success", "failed") else None

    state = wait_for("the run to end", finished, 600, stack)
    assert state == "success", run_failure(api, run_id)
    assert not errors, errors

    # exactly the marked frames were rejected in the blink review (plus the cull's rejects)
    marked = [str(Path(names[n]).relative_to(f"{C8E}/10_Blink")) for n in (3, 6)]
    assert reject_tree(lib, C8E) == sorted(CULL_REJECTS + marked)
    assert reject_tree(lib, DWARF) == [] and reject_tree(lib, SQA55) == []
    # Hold: the DWARF lights wait in 10_Blink for the next run, none reached 20_Data
    assert len(list((lib / DWARF / "10_Blink").rglob("*.fits"))) == 3
    assert not list((lib / DWARF / "20_Data").rglob("*.fits"))
    for rel in marked:
        assert not (lib / C8E / "20_Data" / rel).exists()
    kept = [names[n] for n in names if n not in (3, 6)]
    assert all((lib / rel.replace("/10_Blink/", "/20_Data/", 1)).is_file() for rel in kept)
