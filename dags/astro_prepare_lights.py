"""
# astro_prepare_lights

Astrophotography lights pipeline: NINA raw output → rig folders → two-pass cull → blink review →
matched calibration → `20_Data`. Runs every morning, when new masters reach the calibration library
(Asset `astro_calibration_library`), and by hand.

Params (all optional; empty = the folder the triggering Asset event announced, else the
installation setting `imaging_astro_*`): `raw_dir` (NINA output), `library_dir` (where the rig
folders and the `_Bias Library`, `_Dark Library`, `_Flat Stash` libraries live), `rigs` (rig
configuration file; empty = the bundled default with the three rigs of the design document).
Step logic: `include/astro/steps/` (one module per step); Airflow glue: `plugins/imaging/astro.py`.
Per-item results are run files under `<library_dir>/_Summary/astro_prepare_lights/<run_id>/`;
XCom carries their paths, counts and what the approvals ask (a pending directory's flagged frames).

1. **stop_sync** / **restart_sync** — the sync service command of the installation (rig config
   `sync.stop_command` / `sync.start_command`; none by default, logged). The restart runs after the
   raw step also when it fails.
2. **prepare_raw** — every frame is parsed (NINA `KEY_value` tokens, rig folder
   `<optic>@f<ratio>+<camera>`, FITS/XISF header for what is missing), moved and renamed to
   `<rig>/10_Blink/<target>/DATE_<night>/FILTER_<f>_EXP_<e>[_PANEL_<p>]/<datetime>_HFR_.._STARS_.._RMSAC_.._TEMP_...`,
   calibration frames to `_Calibration/` (input of the masters pipeline); `accept/` is created next
   to each `DATE_` folder; emptied raw folders are deleted; `_stash` is skipped. Bad files are
   reported per item and left in place.
3. **cull** (per rig, mapped) in two passes (moderate, strict): HFR/RMS above the rig's limits is
   flagged; below the rig's `auto_percent` share the flagged frames go to `<rig>/_Reject/` at once,
   otherwise **approve_cull_N** (one approval per directory: *Reject flagged* / *Keep all*) asks.
   Answers are remembered per frame in `item_records`: a rerun does not ask again, and a frame a
   human kept is never auto-rejected by the same thresholds unless its metrics change (answers
   stored per approval by earlier versions are converted to per-frame answers when read).
   Unanswered for 2 days: *Keep all* applies (not remembered: the next run asks again).
4. **blink_sheet** (per rig) writes a contact sheet PNG of stretched previews; **blink_review**
   (per rig) links it and the blink page `/astro-blink` (frames at screen size, ← → blink, `x`
   marks a reject, *Continue: reject N* sends the answer) and takes the frames to reject (numbers,
   ranges or file names; empty = none). *Hold* keeps the rig's data in `10_Blink` (also the default
   when nobody answers within 2 days). Every answer is recorded and listed in the run summary.
5. **distribute** (per rig) copies the masters whose properties match the lights exactly (rig
   property lists); none → MISSING, more than one → error.
6. **promote** moves approved directories with complete calibration to `20_Data` and emits the
   Asset `astro_20_data` with `extra={"library_dir": ...}` (the catalog/report pipeline listens).
7. **summary** writes `_Summary/astro_prepare_lights/<run>.json|.md` in the library and publishes
   the run's summary page (`/artefacts/astro_prepare_lights/<run>/summary.html`: contact sheets,
   counts, answers, kept directories, skipped folders, errors once); it runs also after a failure
   and then fails itself so the run ends failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    TriggerRule,
    dag,
    task,
)

from imaging.dag_defaults import CPU, DEFAULT_ARGS, IO

PIPELINE = "astro_prepare_lights"
ASSET_20_DATA = Asset("astro_20_data")
ASSET_CALIBRATION_LIBRARY = Asset("astro_calibration_library")
CULL_OPTIONS = ["Reject flagged", "Keep all"]
BLINK_OPTIONS = ["Continue", "Hold"]
# unanswered approvals resolve to the safe default (Keep all / Hold: nothing moves) after this
RESPONSE_TIMEOUT = timedelta(days=2)
FOLDERS = ("raw_dir", "library_dir", "rigs")


def _inp(context: dict[str, Any]) -> Any:
    from airflow.sdk.exceptions import AirflowFailException

    from imaging.astro import inputs
    from include.astro.steps.lights_inputs import InputError, lights_inputs

    try:
        return lights_inputs(inputs(context, FOLDERS), context["run_id"])
    except InputError as exc:
        raise AirflowFailException(str(exc)) from exc


def _ledger(context: dict[str, Any]) -> Any:
    from imaging.astro import ItemLedger

    return ItemLedger(PIPELINE, context["run_id"])


@dag(
    dag_id=PIPELINE,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 8 * * *", timezone="UTC"),
        assets=ASSET_CALIBRATION_LIBRARY,
    ),
    catchup=False,
    doc_md=__doc__,
    tags=["astro", "lights", "calibration", "hitl"],
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "raw_dir": Param(
            None,
            type=["null", "string"],
            description="NINA output folder (raw frames). Empty: the installation setting "
            "imaging_astro_raw_dir.",
        ),
        "library_dir": Param(
            None,
            type=["null", "string"],
            description="Library root holding the rig folders (<optic>@f<ratio>+<camera>/10_Blink, "
            "20_Data, _Reject) and the master libraries. Empty: the folder the triggering Asset "
            "event names, else the installation setting imaging_astro_library_dir.",
        ),
        "rigs": Param(
            None,
            type=["null", "string"],
            description="Rig configuration file (YAML/JSON: cull thresholds, auto %, calibration "
            "matching properties, sync commands). Empty: the installation setting "
            "imaging_astro_rigs, else the bundled default.",
        ),
    },
)
def astro_prepare_lights() -> None:
    @task
    def stop_sync(**context: Any) -> str:
        """Stop the sync service so no file is locked while frames move."""
        from imaging.astro import run_command

        return run_command(_inp(context).cfg.sync_stop_command, "stop")

    @task(queue=IO)  # moves and renames raw frames
    def prepare_raw(**context: Any) -> dict[str, Any]:
        """Parse, move+rename raw frames; accept dirs; delete emptied raw folders."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.astro.steps.lights_inputs import InputError
        from include.astro.steps.prepare_raw import prepare_raw as step

        ledger = _ledger(context)
        try:
            out = step(_inp(context), ledger)
        except InputError as exc:
            raise AirflowFailException(str(exc)) from exc
        ledger.flush()
        return out

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def restart_sync(**context: Any) -> str:
        """Restart the sync service (also when the raw step failed)."""
        from imaging.astro import run_command

        return run_command(_inp(context).cfg.sync_start_command, "start")

    @task
    def list_rigs(**context: Any) -> list[str]:
        """Rig folders of the library that hold lights in 10_Blink (new or held from earlier runs)."""
        from include.astro.steps.cull import list_rigs as step

        return step(_inp(context))

    def _cull(rig: str, pass_index: int, context: dict[str, Any]) -> dict[str, Any]:
        from imaging.astro import remembered
        from include.astro.steps.cull import DECISION_KIND, cull

        ledger, inp = _ledger(context), _inp(context)
        out = cull(inp, rig, pass_index, remembered(PIPELINE, DECISION_KIND, str(inp.lib)), ledger)
        ledger.flush()
        return out

    @task(queue=CPU, map_index_template="{{ rig }}")
    def cull_1(rig: str, **context: Any) -> dict[str, Any]:
        """Cull pass 1 (moderate) of one rig."""
        return _cull(rig, 0, context)

    @task(queue=CPU, map_index_template="{{ rig }}")
    def cull_2(rig: str, **context: Any) -> dict[str, Any]:
        """Cull pass 2 (strict) of one rig."""
        return _cull(rig, 1, context)

    @task(trigger_rule=TriggerRule.NONE_FAILED)  # runs with [] when no rig has lights
    def pending(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One approval request per pending directory: HITL kwargs + the verdict."""
        from include.astro.steps.cull import approval_requests

        return approval_requests(results)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def approval_kwargs(items: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"subject": i["subject"], "body": i["body"]} for i in items]

    def _apply(pass_no: int, items: Any, answers: Any, context: dict[str, Any]) -> dict:
        from include.astro.steps.cull import apply_answers

        ledger = _ledger(context)
        out = apply_answers(_inp(context), pass_no, items or [], answers or [], ledger)
        ledger.flush()
        return out

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def apply_cull_1(items: list[dict[str, Any]], answers: Any = None, **context: Any) -> dict:
        """Apply the answers of pass 1 (reject flagged / keep all) and remember them per frame."""
        return _apply(1, items, answers, context)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def apply_cull_2(items: list[dict[str, Any]], answers: Any = None, **context: Any) -> dict:
        """Apply the answers of pass 2."""
        return _apply(2, items, answers, context)

    @task(queue=CPU, map_index_template="{{ rig }}")
    def blink_sheet(rig: str, **context: Any) -> dict[str, Any]:
        """Contact sheet of the rig's lights in 10_Blink (published) + the review request."""
        from imaging.astro import blink_page_url, publisher
        from include.astro.steps.blink_review import blink_sheet as step

        i = context["ti"].map_index
        page = blink_page_url(context, "blink_review", i)
        return step(_inp(context), rig, publisher(context), page_url=page, map_index=i)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def blink_kwargs(sheets: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"subject": s["subject"], "body": s["body"]} for s in sheets]

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def apply_blink(sheets: list[dict[str, Any]], answers: Any = None, **context: Any) -> list:
        """Move the frames the reviewer chose to the reject folder; record each answer."""
        from include.astro.steps.blink_review import apply_blink as step

        ledger = _ledger(context)
        out = step(_inp(context), sheets or [], answers or [], ledger)
        ledger.flush()
        return out

    @task(queue=IO, map_index_template="{{ rig }}")  # copies masters
    def distribute(rig: str, **context: Any) -> dict[str, Any]:
        """Copy the matching masters into each light directory of the rig."""
        from include.astro.steps.distribute import distribute as step

        ledger = _ledger(context)
        out = step(_inp(context), rig, ledger)
        ledger.flush()
        return out

    @task(queue=IO, trigger_rule=TriggerRule.NONE_FAILED, outlets=[ASSET_20_DATA])
    def promote(dist: list[dict[str, Any]], reviews: list[dict[str, Any]], **context: Any) -> dict:
        """Move approved directories with complete calibration from 10_Blink to 20_Data."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.astro.steps.promote import promote as step

        ledger = _ledger(context)
        out = step(_inp(context), dist, reviews, ledger)
        ledger.flush()
        if not out["promoted"]:  # nothing new in 20_Data: do not wake the catalog pipeline
            raise AirflowSkipException("nothing promoted to 20_Data")
        context["outlet_events"][ASSET_20_DATA].extra = {"library_dir": out["library_dir"]}
        return out

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """Library summary files + the run's summary page (fails when another task failed)."""
        from imaging.artefacts import run_artefacts_url
        from imaging.astro import publish_summary
        from include.astro.steps.lights_summary import lights_summary

        links = [("All artefacts of this run", run_artefacts_url(context))]
        rs, _, _, _ = lights_summary(_inp(context), PIPELINE, context["run_id"], links)
        return publish_summary(context, rs)

    stopped = stop_sync()
    raw = prepare_raw()
    stopped >> raw
    raw >> restart_sync()
    rigs = list_rigs()
    raw >> rigs

    c1 = cull_1.expand(rig=rigs)
    p1 = pending(c1)
    ask1 = HITLOperator.partial(
        task_id="approve_cull_1",
        options=CULL_OPTIONS,
        defaults=[CULL_OPTIONS[1]],
        response_timeout=RESPONSE_TIMEOUT,
        map_index_template="{{ task.subject }}",
    ).expand_kwargs(approval_kwargs(p1))
    a1 = apply_cull_1(p1, ask1.output)

    c2 = cull_2.expand(rig=rigs)
    a1 >> c2
    p2 = pending.override(task_id="pending_2")(c2)
    ask2 = HITLOperator.partial(
        task_id="approve_cull_2",
        options=CULL_OPTIONS,
        defaults=[CULL_OPTIONS[1]],
        response_timeout=RESPONSE_TIMEOUT,
        map_index_template="{{ task.subject }}",
    ).expand_kwargs(approval_kwargs.override(task_id="approval_kwargs_2")(p2))
    a2 = apply_cull_2(p2, ask2.output)

    sheets = blink_sheet.expand(rig=rigs)
    a2 >> sheets
    review = HITLOperator.partial(
        task_id="blink_review",
        options=BLINK_OPTIONS,
        defaults=[BLINK_OPTIONS[1]],
        response_timeout=RESPONSE_TIMEOUT,
        params={
            "reject": Param(
                None,
                type=["null", "string"],
                description="Frames to reject: numbers of the contact sheet, ranges (3-5) or "
                "file names, separated by commas. Empty: reject nothing.",
            )
        },
        map_index_template="{{ task.subject }}",
    ).expand_kwargs(blink_kwargs(sheets))
    reviewed = apply_blink(sheets, review.output)

    dist = distribute.expand(rig=rigs)
    reviewed >> dist
    promote(dist, reviewed)
    # the summary runs last, whatever happened (publish_run_summary fails it when a task failed)
    done = summary()
    for t in raw.operator.dag.tasks:
        if t is not done.operator:
            t >> done.operator


astro_prepare_lights()
