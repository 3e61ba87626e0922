"""The newcomer test: the path a new user takes, in a real browser, against the real demo.

``scripts/demo.sh`` starts the demo exactly as a user does (temp folders, free ports); the test then
logs in through Airflow's login page and, for every DAG: opens its page, opens the Trigger dialog
(leaving "Unpause on trigger" checked, so schedules are armed too), enters the demo's sample conf
(``$IMAGING_DATA_DIR/samples/demo_confs.json``) field by field where it differs from the defaults,
and presses Trigger. Runs overlap; every approval is answered by clicking its approving option
where Airflow shows it (Browse -> Required Actions, then each task's Required Action tab; the
blink review rejects nothing); the demo's own scheduler runs everything. Every run, including the
scheduled and asset-triggered ones the unpausing starts, must end green; each run page must show
the run's one-line outcome note with its summary link, and the summary page must load (``#outcome``)
with no dead link or image. ``scripts/stop.sh`` stops the demo, leaving no process.

It fails with one message listing every problem a newcomer would hit: a missing pool (tasks wait
in *scheduled* forever), a blocked form (Trigger or approval button disabled), a red run (with the
failing task's error), a run that hangs (nothing moves for ``STALL`` s), a missing note, a dead link. Screenshots go to ``$NEWCOMER_SCREENSHOTS_DIR``
(``docs/screenshots`` refreshes the README's pictures), else to a temp folder.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.e2e import airflow_ui as ui
from tests.e2e.demo_stack import Demo, RestApi, q

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

CHROMIUM = ui.CHROMIUM
USER = "admin"
APPROVAL_DELAY = 2.0  # s a task has waited before we answer (apache/airflow#71172)
STUCK_SCHEDULED = 60.0  # s in *scheduled* with a missing pool = stuck for good
# a run is hung when nothing changes for STALL s (no run or task changes state, no approval is
# answered); a slow, busy machine only takes longer, up to RUNS_CAP s after the last trigger
STALL = 240.0
RUNS_CAP = 1200.0
PROGRESS_EVERY = 10.0  # s between looks at the task states of the active runs
TERMINAL = {"success", "failed"}
# the DAG a user triggers from the web app with an id only the app knows: the newcomer takes it
# from the photos gallery after the sample ingest
NEEDS_AN_IMAGE = "photo_reprocess"


# -------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/setup.d/browser.sh")
    d = Demo(tmp_path_factory.mktemp("newcomer"))
    try:
        d.start()
        yield d
    finally:
        left = d.stop()
    assert not left, "the demo did not stop cleanly: " + "; ".join(left)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ui.screenshots_dir("NEWCOMER_SCREENSHOTS_DIR", tmp_path_factory, "newcomer-screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with ui.chromium() as b:
        yield b


# ---------------------------------------------------------------------------------- sample confs
def sample_confs(path: Path, params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{dag_id: conf}`` from ``demo_confs.json``: a dict under a DAG's id anywhere in the file,
    or a domain's dict (top-level key) whose keys are all params of exactly one DAG of that domain
    (``"astro": {...}`` -> ``astro_prepare_lights``). Keys starting with ``_`` are notes."""
    data = json.loads(path.read_text())
    out: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in params and isinstance(v, dict):
                    out[k] = v
                elif isinstance(v, dict):
                    walk(v)

    walk(data)
    for domain, conf in data.items():
        if not isinstance(conf, dict) or any(k in params for k in conf):
            continue
        keys = {k for k in conf if not k.startswith("_")}
        owners = [
            d
            for d in params
            if d.startswith(domain) and d not in out and keys and keys <= set(params[d])
        ]
        if len(owners) == 1:
            out[owners[0]] = conf
    return out


def _server_side(log_entry: str) -> str:
    """The api-server's side of an error answer, for the failure message."""
    return f"\n  api-server log:\n{log_entry}" if log_entry else ""


def _same(a: Any, b: Any) -> bool:
    """Form values that mean the same (an empty field is null or "")."""
    empty = (None, "", [])
    if a in empty and b in empty:
        return True
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return bool(a == b)


# ------------------------------------------------------------------------------------ the walker
class Newcomer:
    """The browser session and what it has seen; problems are collected, reported together."""

    def __init__(self, demo: Demo, api: RestApi, ctx: Any, shots: Path) -> None:
        self.demo = demo
        self.url = demo.url
        self.api = api
        self.ctx = ctx
        self.page = ctx.new_page()
        self.page.set_default_timeout(60_000)
        self.shots = shots
        self.problems: list[str] = []
        self.triggered: dict[str, str] = {}  # dag_id -> run_id of the user's run
        self.attempted: set[str] = set()  # DAGs whose form was submitted or found blocked
        self.answered: dict[tuple[str, str, str, int], str] = {}
        self.first_waiting: dict[tuple[str, str, str, int], float] = {}
        self.attempts: dict[tuple[str, str, str, int], int] = {}
        self.checked_runs: set[tuple[str, str]] = set()
        self.reported_runs: set[tuple[str, str]] = set()
        self.stuck: set[tuple[str, str, str, int]] = set()
        self.pools: set[str] = set()
        self.task_pools: dict[str, dict[str, str]] = {}
        self.seen_list = False
        self.shot_taken: set[str] = set()

    def problem(self, msg: str) -> None:
        self.problems.append(msg)

    def shot(self, name: str, full_page: bool = False) -> None:
        if name not in self.shot_taken:
            ui.shot(self.page, self.shots / f"{name}.png", full_page=full_page)
            self.shot_taken.add(name)

    # ---------------------------------------------------------------------------------- pools
    def check_pools(self, dag_ids: list[str]) -> set[str]:
        """Every pool a task names exists; returns the DAGs that cannot run (missing pool)."""
        self.pools = {p["name"] for p in self.api.get("/api/v2/pools", limit=100)["pools"]}
        blocked: set[str] = set()
        for dag_id in dag_ids:
            tasks = self.api.get(f"/api/v2/dags/{q(dag_id)}/tasks")["tasks"]
            self.task_pools[dag_id] = {t["task_id"]: t.get("pool") or "default_pool" for t in tasks}
            for task_id, pool in self.task_pools[dag_id].items():
                if pool not in self.pools:
                    blocked.add(dag_id)
                    self.problem(
                        f"{dag_id}.{task_id}: pool {pool!r} does not exist (Admin -> Pools): its "
                        f"tasks would sit in 'scheduled' forever; {dag_id} not triggered"
                    )
        return blocked

    # -------------------------------------------------------------------------------- trigger
    def trigger(
        self, dag_id: str, conf: dict[str, Any], params: dict[str, Any], screenshot: str = ""
    ) -> None:
        """Open the DAG, its Trigger dialog, enter the sample conf, press Trigger."""
        try:
            self._trigger(dag_id, conf, params, screenshot)
        except Exception as exc:  # noqa: BLE001 - report with the DAG's name, go on
            self.attempted.add(dag_id)
            self.problem(f"{dag_id}: triggering from the UI failed: {type(exc).__name__}: {exc}")
            self.shot(f"trigger_failed_{dag_id}")

    def _trigger(
        self, dag_id: str, conf: dict[str, Any], params: dict[str, Any], screenshot: str
    ) -> None:
        page = self.page
        dialog = ui.open_trigger_form(page, self.url, dag_id)
        unpause = False  # the box shows on a paused DAG only
        if dialog.get_by_text(re.compile(r"Unpause .* on trigger")).count():
            # the default a newcomer keeps: armed schedules must work too
            box = dialog.locator("label[data-scope=checkbox][data-part=root]").first
            unpause = box.get_attribute("data-state") == "checked"
            assert unpause, f"{dag_id}: 'Unpause on trigger' is not checked by default"
        entered: dict[str, Any] = {}
        for name, value in conf.items():
            if name.startswith("_"):
                continue
            if name not in params:
                self.problem(f"{dag_id}: demo_confs.json sets {name!r}, not a param of the DAG")
                continue
            if _same(params[name].get("value"), value):
                continue  # the default is the sample setting: keep it
            try:
                ui.set_field(dialog, name, value, params[name].get("schema") or {})
                entered[name] = value
            except Exception as exc:  # noqa: BLE001 - report and go on
                self.problem(f"{dag_id}: could not enter {name}={value!r} in the form: {exc}")
        if screenshot:
            dialog.evaluate(  # back to the top of the scrolled dialog
                "d => { for (let e = d; e; e = e.parentElement) e.scrollTop = 0; }"
            )
            self.shot(screenshot)
        submit = dialog.locator("[data-testid=trigger-dag-submit]")
        if submit.is_disabled():
            self.attempted.add(dag_id)
            errors = ui.form_errors(dialog) or ["(no field marked)"]
            self.problem(
                f"{dag_id}: the trigger form is blocked (Trigger disabled) with the sample conf "
                f"{json.dumps(entered)}: " + "; ".join(errors)
            )
            self.shot(f"blocked_{dag_id}")
            page.keyboard.press("Escape")
            return
        self.attempted.add(dag_id)
        status, body = ui.submit_trigger(page, dialog)
        if status != 200 or not isinstance(body, dict):
            self.problem(
                f"{dag_id}: Trigger answered HTTP {status}: {str(body)[:500]}"
                + _server_side(self.demo.api_error(str(body)))
            )
            page.keyboard.press("Escape")
            return
        run_id = body["dag_run_id"]
        self.triggered[dag_id] = run_id
        got = body.get("conf") or {}
        wrong = {k: (v, got.get(k)) for k, v in entered.items() if not _same(got.get(k), v)}
        if wrong:
            self.problem(f"{dag_id}: the form did not carry the sample values (want, got): {wrong}")
        if unpause and not self.wait_unpaused(dag_id):
            self.problem(
                f"{dag_id}: still paused 60 s after Trigger with 'Unpause on trigger' checked"
            )

    def wait_unpaused(self, dag_id: str, timeout: float = 60) -> bool:
        """Poll until the DAG is unpaused (the UI's PATCH follows the run's POST), on the page."""
        deadline = time.monotonic() + timeout
        while self.api.get(f"/api/v2/dags/{q(dag_id)}")["is_paused"]:
            if time.monotonic() > deadline:
                return False
            self.page.wait_for_timeout(500)
        return True

    # ---------------------------------------------------------------------------- approvals
    def answer_approvals(self) -> int:
        """Answer every approval that has waited APPROVAL_DELAY s; returns how many wait."""
        waiting = 0
        now = time.monotonic()
        for detail in self.api.pending_approvals():
            ti = detail["task_instance"]
            key = (ti["dag_id"], ti["dag_run_id"], ti["task_id"], int(ti.get("map_index", -1)))
            if ti.get("state") != "awaiting_input" or key in self.answered:
                continue
            waiting += 1
            if now - self.first_waiting.setdefault(key, now) < APPROVAL_DELAY:
                continue
            self.answer(detail, key)
        return waiting

    def answer(self, detail: dict[str, Any], key: tuple[str, str, str, int]) -> None:
        ti = detail["task_instance"]
        options = list(detail.get("options") or [])
        option = ui.approving_option(options)
        keep = {k: None for k in (detail.get("params") or {}) if k == "reject"}  # reject nothing
        page = self.page
        label = f"{key[0]}.{key[2]}" + (f"[{key[3]}]" if key[3] >= 0 else "")
        self.answered[key] = option
        try:
            if (
                not self.seen_list
            ):  # the first one the way the docs show: Browse -> Required Actions
                self.seen_list = True
                page.goto(f"{self.url}/dags")
                page.get_by_role("button", name="Browse").click()
                page.get_by_role("menuitem", name="Required Actions").click()
                page.wait_for_url("**/required_actions**")
                # the table shows placeholder rows while it loads: wait for this task's row
                row = page.locator("tbody tr").filter(has=page.locator(f'a[href="{_ti_path(ti)}"]'))
                row.first.wait_for()
                self.shot("required_actions")
                row.first.get_by_role("button", name="Open Review Drawer").click()
                scope = page.get_by_role("dialog")
            else:
                page.goto(ui.ti_required_actions_url(self.url, ti))
                scope = page.locator("body")
            scope.locator(f'[data-testid="hitl-option-{option}"]').wait_for()
            links = scope.locator("a[href*='/artefacts/']").evaluate_all(
                "els => els.map(e => e.getAttribute('href'))"
            )
            if "approval_form" not in self.shot_taken:  # the drawer slides in: let it settle
                page.wait_for_timeout(800)
            self.shot("approval_form")
            status, body = ui.answer_approval(page, scope, option, keep)
            if status != 200:
                self.problem(
                    f"{label}: answering {option!r} -> HTTP {status}: {body[:300]}"
                    + _server_side(self.demo.api_error(body))
                )
                self.attempts[key] = self.attempts.get(key, 0) + 1
                if self.attempts[key] < 3:  # a user clicks again
                    del self.answered[key]
            for dead in ui.dead_links(self.ctx, page.url, links, self.url):
                self.problem(f"{label}: dead link in the approval text: {dead}")
        except ui.FormBlocked as exc:
            self.problem(f"{label}: the approval form is blocked ({option!r} disabled): {exc}")
            self.shot(f"blocked_approval_{key[0]}")
        except Exception as exc:  # noqa: BLE001 - report, keep the walk going
            self.problem(f"{label}: could not answer the approval in the UI: {exc}")

    # -------------------------------------------------------------------------------- watch
    def progress(self, runs: list[dict[str, Any]]) -> tuple[Any, ...]:
        """What changes while runs move: run states, task state counts, approvals answered."""
        tasks = tuple(self.describe(r) for r in runs if r["state"] not in TERMINAL)
        return (sorted((r["dag_run_id"], r["state"]) for r in runs), tasks, len(self.answered))

    def watch(self, cap: float, on_success: Any = None) -> None:
        """Answer approvals and check finished runs until nothing is left to run; a problem when
        nothing has moved for STALL s, or when runs still go at the cap."""
        last_sig: tuple[Any, ...] = ()
        moved = looked = time.monotonic()
        while True:
            waiting = self.answer_approvals()
            runs = self.api.runs()
            self.check_stuck()
            for run in runs:
                key = (run["dag_id"], run["dag_run_id"])
                if run["state"] in TERMINAL and key not in self.reported_runs:
                    self.reported_runs.add(key)
                    self.finished(run)
                    if on_success and run["state"] == "success":
                        on_success(run)
            active = [r for r in runs if r["state"] not in TERMINAL]
            self.check_paused(active)
            stuck_runs = {(k[0], k[1]) for k in self.stuck}
            active = [r for r in active if (r["dag_id"], r["dag_run_id"]) not in stuck_runs]
            if not active and not waiting and not self.due():
                return
            now = time.monotonic()
            if now - looked >= PROGRESS_EVERY:
                looked, sig = now, self.progress(runs)
                if sig != last_sig:
                    last_sig, moved = sig, now
            if now - moved > STALL or now > cap:
                why = (
                    f"nothing moved for {now - moved:.0f} s"
                    if now - moved > STALL
                    else "at the cap"
                )
                self.problem(
                    f"runs still not finished ({why}): "
                    + "; ".join(self.describe(r) for r in active)
                )
                return
            time.sleep(2)

    def due(self) -> list[str]:
        """Unpaused DAGs with a run the scheduler is about to create (a due schedule or queued
        asset events)."""
        out: list[str] = []
        now = datetime.now(UTC)
        for d in self.api.get("/api/v2/dags", limit=100, paused="false")["dags"]:
            nxt = d.get("next_dagrun_run_after")
            is_due = bool(nxt) and datetime.fromisoformat(nxt.replace("Z", "+00:00")) <= now
            events = self.api.get(f"/api/v2/dags/{q(d['dag_id'])}/assets/queuedEvents")
            if is_due or events.get("total_entries"):
                out.append(d["dag_id"])
        return out

    def check_paused(self, active: list[dict[str, Any]]) -> None:
        """A queued run of a paused DAG never starts."""
        queued = {r["dag_id"] for r in active if r["state"] == "queued"}
        if not queued:
            return
        paused = {
            d["dag_id"] for d in self.api.get("/api/v2/dags", limit=100, paused="true")["dags"]
        }
        for run in active:
            key = (run["dag_id"], run["dag_run_id"], "", -1)
            if run["dag_id"] in paused and run["state"] == "queued" and key not in self.stuck:
                self.stuck.add(key)
                self.problem(
                    f"{run['dag_id']}: run {run['dag_run_id']} is queued but the DAG is paused"
                )

    def check_stuck(self) -> None:
        """A task in *scheduled* for over a minute whose pool does not exist is stuck for good."""
        now = datetime.now(UTC)
        for ti in self.api.task_instances(state="scheduled"):
            key = (ti["dag_id"], ti["dag_run_id"], ti["task_id"], int(ti.get("map_index", -1)))
            since = ti.get("scheduled_when")
            if key in self.stuck or not since:
                continue
            age = (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
            if age > STUCK_SCHEDULED and ti.get("pool") not in self.pools:
                self.stuck.add(key)
                self.problem(
                    f"{ti['dag_id']}.{ti['task_id']} (run {ti['dag_run_id']}) sits in 'scheduled' "
                    f"for {age:.0f} s: its pool {ti.get('pool')!r} does not exist"
                )

    def describe(self, run: dict[str, Any]) -> str:
        tis = self.api.task_instances(run["dag_id"], run["dag_run_id"])
        states: dict[str, int] = {}
        for ti in tis:
            states[str(ti["state"])] = states.get(str(ti["state"]), 0) + 1
        return f"{run['dag_id']} {run['dag_run_id']} ({run['state']}, tasks {states})"

    def finished(self, run: dict[str, Any]) -> None:
        """A finished run: red -> the failing tasks and their errors; green -> note + summary."""
        dag_id, run_id = run["dag_id"], run["dag_run_id"]
        kind = run.get("run_type", "?")
        if run["state"] != "success":
            failed = self.api.task_instances(dag_id, run_id, state="failed")
            why = "; ".join(
                f"{t['task_id']}{'[' + str(t['map_index']) + ']' if t['map_index'] >= 0 else ''}"
                f": {self.api.task_error(t)}"
                for t in failed[:4]
            )
            self.problem(f"{dag_id}: {kind} run {run_id} is red: {why or 'no failed task'}")
            return
        self.check_run_page(dag_id, run_id, kind)

    def check_run_page(self, dag_id: str, run_id: str, kind: str) -> None:
        label = f"{dag_id}: {kind} run {run_id}"
        try:
            note, href = ui.run_note(self.page, self.url, dag_id, run_id)
        except Exception as exc:  # noqa: BLE001
            self.problem(f"{label}: the run page shows no note ({type(exc).__name__})")
            return
        # one line: "[Summary](<url>) · ✔ <headline>" (rendered "Summary · ✔ ..."), or
        # "[Summary](<url>) · ⚠ N item errors ..." when items failed; "✘ ..." only on red runs
        lines = [ln for ln in note.splitlines() if ln.strip()]
        if len(lines) != 1 or "✘" in note or not re.search(r"[✔⚠]", note):
            self.problem(f"{label}: the note is not a one-line outcome: {note[:200]!r}")
        if not href:
            self.problem(f"{label}: the note has no summary link: {note[:200]!r}")
            return
        self.shot("run_note")
        want = f"/artefacts/{dag_id}/"
        path = unquote(urlsplit(href).path)
        if not path.startswith(want) or not path.endswith("/summary.html"):
            self.problem(f"{label}: the summary link {href} is not under {want}<run>/summary.html")
        for p in ui.check_summary(self.page, self.ctx, href, self.url):
            self.problem(f"{label}: {p}")
        if "summary" not in self.shot_taken and self.page.locator("img").count():
            self.shot("summary")
        self.checked_runs.add((dag_id, run_id))


def _ti_path(ti: dict[str, Any]) -> str:
    """The href the Required Actions list uses for a task (run ids are not encoded there)."""
    mapped = f"/mapped/{ti['map_index']}" if int(ti.get("map_index", -1)) >= 0 else ""
    return f"/dags/{ti['dag_id']}/runs/{ti['dag_run_id']}/tasks/{ti['task_id']}{mapped}/required_actions"


def _gallery_image(page: Any, url: str) -> str | None:
    """An image id from the photos gallery (what a user picks to reprocess)."""
    page.goto(f"{url}/photos/gallery")
    tile = page.locator(".tile[data-image]")
    try:
        tile.first.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001
        return None
    warning = page.locator(".tile[data-image][data-status=warning]")
    return (warning if warning.count() else tile).first.get_attribute("data-image")


# ---------------------------------------------------------------------------------------- test
def test_a_newcomer_runs_every_dag_from_the_ui(demo: Demo, browser: Any, shots: Path) -> None:
    t0 = time.monotonic()
    api = RestApi(demo.url, demo.password)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    me = Newcomer(demo, api, ctx, shots)
    page = me.page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # ------------------------------------------------------------------ login, the DAG list
    ui.login(page, demo.url, USER, demo.password)
    page.goto(f"{demo.url}/dags")
    page.get_by_role("link", name=re.compile("astro_calibration_masters")).first.wait_for()
    me.shot("dag_list")

    dag_ids = api.dag_ids()
    files = sorted(p.stem for p in (Path(__file__).parents[2] / "dags").glob("*.py"))
    assert set(files) <= set(dag_ids), f"DAGs missing from the demo: {set(files) - set(dag_ids)}"
    params = {d: api.get(f"/api/v2/dags/{q(d)}/details").get("params") or {} for d in dag_ids}
    blocked = me.check_pools(dag_ids)
    confs = sample_confs(demo.data_dir / "samples" / "demo_confs.json", params)

    # ------------------------------------------------------------------ trigger (runs overlap)
    # longest first; the image DAG once the sample photos are in the gallery
    order = sorted(
        (d for d in dag_ids if d not in blocked and d != NEEDS_AN_IMAGE),
        key=lambda d: (not d.startswith("astro_prepare"), not d.startswith("reef_stitch"), d),
    )
    for dag_id in order:
        me.trigger(
            dag_id,
            confs.get(dag_id, {}),
            params[dag_id],
            screenshot="trigger_form" if dag_id == "design_upload" else "",
        )
        me.answer_approvals()
    t_triggered = time.monotonic()

    def after_success(run: dict[str, Any]) -> None:
        if (
            NEEDS_AN_IMAGE in dag_ids
            and NEEDS_AN_IMAGE not in blocked
            and NEEDS_AN_IMAGE not in me.attempted
            and run["dag_id"] == "photo_ingest"
        ):
            image = _gallery_image(page, demo.url)
            if image is None:
                me.problem("photos gallery: no photo after the sample ingest to reprocess")
                me.attempted.add(NEEDS_AN_IMAGE)
                return
            conf = {**confs.get(NEEDS_AN_IMAGE, {}), "image_id": image}
            me.trigger(NEEDS_AN_IMAGE, conf, params[NEEDS_AN_IMAGE])

    # a photo_ingest run that finished before the watch started still counts
    me.watch(time.monotonic() + RUNS_CAP, on_success=after_success)
    if NEEDS_AN_IMAGE in set(dag_ids) - blocked - me.attempted:
        me.problem(
            f"{NEEDS_AN_IMAGE}: not triggered (no green photo_ingest run to take a photo from)"
        )
    # ------------------------------------------------------------------ every DAG ran, all green
    runs = api.runs()
    by_dag: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_dag.setdefault(r["dag_id"], []).append(r)
    for dag_id, run_id in me.triggered.items():
        if run_id and not any(r["dag_run_id"] == run_id for r in by_dag.get(dag_id, [])):
            me.problem(f"{dag_id}: the triggered run {run_id} is not in the run list")
    summary = ", ".join(
        f"{d}: " + "/".join(f"{r['run_type']}={r['state']}" for r in rs)
        for d, rs in sorted(by_dag.items())
    )
    timing = (
        f"triggered in {t_triggered - t0:.0f} s, all done in {time.monotonic() - t0:.0f} s; "
        f"{len(runs)} runs, {len(me.answered)} approvals answered, {len(me.checked_runs)} "
        "summaries checked"
    )
    print(f"newcomer: {timing}\nnewcomer runs: {summary}")
    if errors:
        me.problem(f"JavaScript errors in the UI: {errors[:3]}")
    for entry in demo.api_errors():  # a 500 the UI showed as a toast, or a poll that failed
        me.problem(f"the API server answered a database error:\n{entry}")
    ctx.close()
    assert not me.problems, (
        f"{len(me.problems)} problem(s) a newcomer hits ({timing}):\n- "
        + "\n- ".join(me.problems)
        + f"\nruns: {summary}"
    )
