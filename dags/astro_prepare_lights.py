"""
# astro_prepare_lights

Astrophotography lights pipeline: NINA raw output → rig folders → two-pass cull → blink review →
matched calibration → `20_Data`. Runs every morning, when new masters reach the calibration library
(Asset `astro_calibration_library`), and by hand.

Params: `raw_dir` (NINA output), `library_dir` (where the rig folders and the `_Bias Library`,
`_Dark Library`, `_Flat Stash` libraries live), `rigs` (rig configuration file; empty = the bundled
default with the three rigs of the design document).

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
   Answers are remembered in `item_records`, so a rerun does not ask again for the same frames.
   Unanswered for 2 days: *Keep all* applies (not remembered: the next run asks again).
4. **blink_sheet** (per rig) writes a contact sheet PNG of stretched previews; **blink_review**
   (per rig) links it and takes the frames to reject (numbers, ranges or file names). *Hold* keeps
   the rig's data in `10_Blink` (also the default when nobody answers within 2 days).
5. **distribute** (per rig) copies the masters whose properties match the lights exactly (rig
   property lists); none → MISSING, more than one → error.
6. **promote** moves approved directories with complete calibration to `20_Data` and emits the
   Asset `astro_20_data` (the catalog/report pipeline listens).
7. **summary** writes `_Summary/astro_prepare_lights/<run>.json|.md` in the library and logs it
   (also after a failure); **watcher** then fails the run if any task failed.

The contact sheets and the run summary are also published for the browser at
`<[api] base_url>/artefacts/astro_prepare_lights/<run>/` (behind the Airflow login): the blink
review bodies and the task logs link them there.
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


def _inputs(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Resolved paths + rig config (fails the task with a clear message when invalid)."""
    from pathlib import Path

    from airflow.sdk.exceptions import AirflowFailException

    from include.astro.rigs import RigConfigError, load_rigs
    from include.common.files import safe_name
    from include.common.settings import get_settings

    data = get_settings().data_dir / "astro"
    raw = Path(params.get("raw_dir") or data / "raw")
    lib = Path(params.get("library_dir") or data / "library")
    try:
        cfg = load_rigs(params.get("rigs") or None)
    except RigConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
    return {
        "raw": raw,
        "lib": lib,
        "cfg": cfg,
        "run_key": safe_name(run_id, default="run"),
    }


class _Ledger:
    """Collects item records and writes them in one transaction (after the effects are durable)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.rows: list[tuple[str, str, str, dict[str, Any] | None, str | None]] = []

    def __call__(
        self, kind: str, key: str, status: str, detail: dict[str, Any] | None, error: str | None
    ) -> None:
        self.rows.append((kind, key, status, detail, error))

    def flush(self) -> None:
        if not self.rows:
            return
        from imaging.appdb import app_engine
        from include.common.db import session_scope
        from include.common.items import record_item

        with session_scope(app_engine()) as s:
            for kind, key, status, detail, error in self.rows:
                record_item(
                    s,
                    pipeline=PIPELINE,
                    kind=kind,
                    key=key[:1000],
                    status=status,
                    detail=detail,
                    error=error,
                    run_id=self.run_id,
                )
        self.rows.clear()


def _publish_summary(context: dict[str, Any], paths: dict[str, str]) -> dict[str, str]:
    """Publish the run summary (markdown + JSON) for the Airflow UI and log the links; a failure
    to publish is logged, it never fails the summary."""
    import logging

    from imaging.artefacts import publish_artefact, run_artefacts_url

    log = logging.getLogger("airflow.task")
    links: dict[str, str] = {}
    for kind, name in (("markdown", "summary.md"), ("json", "summary.json")):
        try:
            links[kind] = publish_artefact(context, paths[kind], name)["url"]
        except (OSError, ValueError) as exc:
            log.warning("could not publish the %s summary: %s", kind, exc)
    links["all"] = run_artefacts_url(context)
    log.info(
        "run summary: %s (JSON: %s); all artefacts of this run: %s",
        links.get("markdown"),
        links.get("json"),
        links["all"],
    )
    return links


def _run_command(cmd: tuple[str, ...] | None, what: str) -> str:
    import logging
    import subprocess

    log = logging.getLogger("airflow.task")
    if not cmd:
        log.info("no sync service command configured: nothing to %s", what)
        return "none"
    log.info("%s sync service: %s", what, " ".join(cmd))
    subprocess.run(list(cmd), check=True, timeout=120)
    return "done"


@dag(
    dag_id="astro_prepare_lights",
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
            "",
            type="string",
            description="NINA output folder (raw frames). Empty: $IMAGING_DATA_DIR/astro/raw.",
        ),
        "library_dir": Param(
            "",
            type="string",
            description="Library root holding the rig folders (<optic>@f<ratio>+<camera>/10_Blink, "
            "20_Data, _Reject) and the master libraries. Empty: $IMAGING_DATA_DIR/astro/library.",
        ),
        "rigs": Param(
            "",
            type="string",
            description="Rig configuration file (YAML/JSON: cull thresholds, auto %, calibration "
            "matching properties, sync commands). Empty: the bundled default.",
        ),
    },
)
def astro_prepare_lights() -> None:
    @task
    def stop_sync(**context: Any) -> str:
        """Stop the sync service so no file is locked while frames move."""
        cfg = _inputs(context["params"], context["run_id"])["cfg"]
        return _run_command(cfg.sync_stop_command, "stop")

    @task(queue=IO)  # moves and renames raw frames
    def prepare_raw(**context: Any) -> dict[str, Any]:
        """Parse, move+rename raw frames; accept dirs; delete emptied raw folders."""
        import logging

        from include.astro.moves import prepare_raw as run

        log = logging.getLogger("airflow.task")
        from airflow.sdk.exceptions import AirflowFailException

        inp = _inputs(context["params"], context["run_id"])
        if not inp["raw"].is_dir():
            raise AirflowFailException(f"raw_dir {inp['raw']} does not exist or is not a folder")
        inp["lib"].mkdir(parents=True, exist_ok=True)
        ledger = _Ledger(context["run_id"])
        res = run(inp["raw"], inp["lib"], inp["cfg"], ledger=ledger)
        ledger.flush()
        for e in res.errors:
            log.warning("left in place: %s: %s", e.src, e.reason)
        out = res.to_dict()
        log.info("raw step: %s; skipped folders: %s", out["counts"], out["skipped_dirs"])
        return out

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def restart_sync(**context: Any) -> str:
        """Restart the sync service (also when the raw step failed)."""
        cfg = _inputs(context["params"], context["run_id"])["cfg"]
        return _run_command(cfg.sync_start_command, "start")

    @task
    def list_rigs(**context: Any) -> list[str]:
        """Rig folders of the library that hold lights in 10_Blink (new or held from earlier runs)."""
        import re

        from include.astro.cull import light_dirs

        inp = _inputs(context["params"], context["run_id"])
        lib, rig_re = inp["lib"], re.compile(inp["cfg"].token_pattern.rig_regex)
        if not lib.is_dir():
            return []
        return sorted(
            p.name
            for p in lib.iterdir()
            if p.is_dir() and rig_re.match(p.name) and light_dirs(lib, p.name)
        )

    def _decisions() -> dict[str, str]:
        from sqlalchemy import select

        from imaging.appdb import app_engine
        from include.common.db import session_scope
        from include.common.models import ItemRecord

        with session_scope(app_engine()) as s:
            rows = s.execute(
                select(ItemRecord.item_key, ItemRecord.detail).where(
                    ItemRecord.pipeline == PIPELINE, ItemRecord.kind == "cull_decision"
                )
            ).all()
        return {k: (d or {}).get("decision", "") for k, d in rows}

    def _cull(rig: str, pass_index: int, context: dict[str, Any]) -> dict[str, Any]:
        import logging

        from include.astro.cull import cull_rig

        log = logging.getLogger("airflow.task")
        inp = _inputs(context["params"], context["run_id"])
        res = cull_rig(inp["lib"], rig, inp["cfg"], pass_index, decisions=_decisions())
        ledger = _Ledger(context["run_id"])
        for o in res["auto_rejected"]:
            ledger(
                "cull_reject", o["src"], "done", {"pass": res["pass_name"], "dest": o["dest"]}, None
            )
        for d in res["decided"]:
            for o in d.get("rejected") or []:
                ledger(
                    "cull_reject",
                    o["src"],
                    "done",
                    {"pass": d["pass_name"], "dest": o["dest"]},
                    None,
                )
        ledger.flush()
        log.info(
            "%s cull %s: %d dir(s), %d auto-rejected, %d decided earlier, %d to approve, %d error(s)",
            rig,
            res["pass_name"],
            res["directories"],
            len(res["auto_rejected"]),
            len(res["decided"]),
            len(res["pending"]),
            len(res["errors"]),
        )
        return res

    @task(queue=CPU, map_index_template="{{ rig }}")  # star/FWHM metrics per frame
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
        from include.astro.cull import approval_text

        out = []
        for r in results:
            for v in r["pending"]:
                subject, body = approval_text(v)
                out.append({"subject": subject, "body": body, "verdict": v})
        return out

    @task(trigger_rule=TriggerRule.NONE_FAILED)  # runs with [] when no rig has lights
    def approval_kwargs(items: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"subject": i["subject"], "body": i["body"]} for i in items]

    def _apply(items: list[dict[str, Any]], answers: Any, context: dict[str, Any]) -> list[dict]:
        import logging

        from include.astro.cull import apply_decision

        log = logging.getLogger("airflow.task")
        inp = _inputs(context["params"], context["run_id"])
        answers = list(answers or [])
        if len(answers) != len(items):
            raise RuntimeError(f"{len(items)} approval(s) asked, {len(answers)} answered")
        ledger = _Ledger(context["run_id"])
        out = []
        for item, ans in zip(items, answers, strict=True):
            decision = (ans.get("chosen_options") or [CULL_OPTIONS[1]])[0]
            entry = apply_decision(inp["lib"], item["verdict"], decision)
            if ans.get("responded_by_user") is None:
                # nobody answered before the timeout: the safe default applies now, ask again next run
                entry["timed_out"] = True
                log.warning(
                    "%s: no answer, default %s applied", item["verdict"]["directory"], decision
                )
            else:
                log.info("%s: %s", item["verdict"]["directory"], decision)
                ledger("cull_decision", entry["key"], "done", {"decision": decision}, None)
            for o in entry.get("rejected") or []:
                ledger(
                    "cull_reject",
                    o["src"],
                    "done",
                    {"pass": entry["pass_name"], "dest": o["dest"]},
                    None,
                )
            out.append(entry)
        ledger.flush()
        return out

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def apply_cull_1(
        items: list[dict[str, Any]], answers: Any = None, **context: Any
    ) -> list[dict]:
        """Apply the answers of pass 1 (reject flagged / keep all) and remember them."""
        return _apply(items, answers, context)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def apply_cull_2(
        items: list[dict[str, Any]], answers: Any = None, **context: Any
    ) -> list[dict]:
        """Apply the answers of pass 2."""
        return _apply(items, answers, context)

    @task(queue=CPU, map_index_template="{{ rig }}")
    def blink_sheet(rig: str, **context: Any) -> dict[str, Any]:
        """Contact sheet PNG of the rig's lights in 10_Blink (published for the Airflow UI) + the
        review request linking it."""
        import logging

        from imaging.artefacts import artefact_link, publish_artefact
        from include.astro import layout
        from include.astro.blink import contact_sheet
        from include.astro.cull import light_dirs
        from include.common.files import safe_name

        inp = _inputs(context["params"], context["run_id"])
        lib = inp["lib"]
        files = [str(p) for fs in light_dirs(lib, rig).values() for p in fs]
        dest = layout.summary_dir(lib) / inp["run_key"] / f"blink_{safe_name(rig)}.png"
        sheet = contact_sheet(files, dest, title=rig)
        log = logging.getLogger("airflow.task")
        try:
            pub = publish_artefact(context, dest)
        except (OSError, ValueError) as exc:  # the sheet stays readable in the library
            log.warning("contact sheet of %s not published: %s", rig, exc)
            link = f"{dest.name} (not published: {exc})"
        else:
            sheet["published"] = pub
            link = artefact_link(dest.name, pub)
            log.info("contact sheet of %s: %s", rig, pub["url"])
        lines = [
            f"**Rig:** {rig} - {sheet['count']} light(s) in 10_Blink.",
            f"**Contact sheet:** {link} (`{dest}`)",
            "",
            "Enter the frames to reject (numbers, ranges like `3-5`, or file names), then choose "
            "*Continue*. *Hold* keeps this rig's data in 10_Blink.",
            "",
        ]
        lines += [f"{e['n']}. `{e['file'][len(str(lib)) + 1 :]}`" for e in sheet["index"]]
        sheet["rig"] = rig
        sheet["subject"] = f"Blink review: {rig} ({sheet['count']} frames)"
        sheet["body"] = "\n".join(lines)
        return sheet

    @task(trigger_rule=TriggerRule.NONE_FAILED)  # runs with [] when no rig has lights
    def blink_kwargs(sheets: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"subject": s["subject"], "body": s["body"]} for s in sheets]

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def apply_blink(
        sheets: list[dict[str, Any]], answers: Any = None, **context: Any
    ) -> list[dict]:
        """Move the frames the reviewer entered to the reject folder; record approval per rig."""
        import logging
        from pathlib import Path

        from include.astro.blink import resolve
        from include.astro.cull import reject_files

        log = logging.getLogger("airflow.task")
        inp = _inputs(context["params"], context["run_id"])
        lib = inp["lib"]
        answers = list(answers or [])
        if len(answers) != len(sheets):
            raise RuntimeError(f"{len(sheets)} review(s) asked, {len(answers)} answered")
        ledger = _Ledger(context["run_id"])
        out = []
        for sheet, ans in zip(sheets, answers, strict=True):
            choice = (ans.get("chosen_options") or ["Hold"])[0]
            text = (ans.get("params_input") or {}).get("reject") or ""
            files, errors = resolve(text, sheet["index"])
            rel = [str(Path(f).relative_to(lib)) for f in files]
            outs = reject_files(lib, sheet["rig"], rel, "blink review")
            done = [o.to_dict() for o in outs if o.status != "error"]
            errors += [o.to_dict() for o in outs if o.status == "error"]
            for o in done:
                ledger("blink_reject", o["src"], "done", {"dest": o["dest"]}, None)
            for e in errors:
                log.warning("blink %s: %s", sheet["rig"], e)
            log.info("%s: %s, %d rejected", sheet["rig"], choice, len(done))
            out.append(
                {
                    "rig": sheet["rig"],
                    "approved": choice == "Continue",
                    "rejected": done,
                    "errors": errors,
                }
            )
        ledger.flush()
        return out

    @task(queue=IO, map_index_template="{{ rig }}")  # copies masters
    def distribute(rig: str, **context: Any) -> dict[str, Any]:
        """Copy the matching masters into each light directory of the rig."""
        import logging

        from include.astro.distribute import distribute_rig

        log = logging.getLogger("airflow.task")
        inp = _inputs(context["params"], context["run_id"])
        res = distribute_rig(inp["lib"], rig, inp["cfg"])
        ledger = _Ledger(context["run_id"])
        for d in res["directories"]:
            for c in d["copied"]:
                ledger("master_copy", c, "done", None, None)
            for kind in d["missing"]:
                log.warning("MISSING %s master for %s", kind.upper(), d["directory"])
            for e in d["errors"]:
                log.warning("%s: %s", d["directory"], e)
        ledger.flush()
        return res

    @task(queue=IO, trigger_rule=TriggerRule.NONE_FAILED, outlets=[ASSET_20_DATA])
    def promote(
        dist: list[dict[str, Any]], reviews: list[dict[str, Any]], **context: Any
    ) -> dict[str, Any]:
        """Move approved directories with complete calibration from 10_Blink to 20_Data."""
        import logging

        from include.astro.moves import promote_dir

        log = logging.getLogger("airflow.task")
        inp = _inputs(context["params"], context["run_id"])
        lib = inp["lib"]
        approved = {r["rig"]: r["approved"] for r in reviews or []}
        ledger = _Ledger(context["run_id"])
        res: dict[str, Any] = {"promoted": [], "held": [], "errors": []}
        for d in dist or []:
            for dc in d["directories"]:
                if not approved.get(d["rig"], False):
                    res["held"].append(
                        {"directory": dc["directory"], "reason": "blink review on hold"}
                    )
                elif not dc["complete"]:
                    why = [f"MISSING {k}" for k in dc["missing"]] + dc["errors"]
                    res["held"].append({"directory": dc["directory"], "reason": "; ".join(why)})
                else:
                    outs = promote_dir(lib, lib / dc["directory"])
                    errs = [o.to_dict() for o in outs if o.status == "error"]
                    res["errors"] += errs
                    if not errs:
                        res["promoted"].append(dc["directory"])
                        ledger("promote", dc["directory"], "done", {"files": len(outs)}, None)
        ledger.flush()
        log.info("promoted %d, held %d", len(res["promoted"]), len(res["held"]))
        if not res["promoted"]:
            # nothing new in 20_Data: do not wake the catalog pipeline
            from airflow.sdk.exceptions import AirflowSkipException

            context["ti"].xcom_push(key="result", value=res)
            raise AirflowSkipException("nothing promoted to 20_Data")
        return res

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(
        raw: dict[str, Any] | None,
        c1: Any = None,
        a1: Any = None,
        c2: Any = None,
        a2: Any = None,
        blink: Any = None,
        dist: Any = None,
        **context: Any,
    ) -> dict[str, Any]:
        """Write the run summary (JSON + markdown in the library) and log it."""
        import logging

        from include.astro.summary import build_summary, to_markdown, write_summary

        log = logging.getLogger("airflow.task")
        inp = _inputs(context["params"], context["run_id"])
        ti = context["ti"]
        prom = ti.xcom_pull(task_ids="promote") or ti.xcom_pull(task_ids="promote", key="result")
        culls = [*(c1 or []), *(c2 or [])]
        culls += [{"rig": e["rig"], "decided": [e]} for e in [*(a1 or []), *(a2 or [])]]
        s = build_summary(
            run_key=context["run_id"],
            prepare=raw,
            culls=culls,
            blink=list(blink or []),
            distribute=list(dist or []),
            promote=[prom] if prom else [],
        )
        paths = write_summary(inp["lib"], s)
        log.info("summary written to %s\n%s", paths["json"], to_markdown(s))
        links = _publish_summary(context, paths)
        return {"paths": paths, "counts": s["counts"], "published": links}

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
                "",
                type="string",
                description="Frames to reject: numbers of the contact sheet, ranges (3-5) or "
                "file names, separated by commas.",
            )
        },
        map_index_template="{{ task.subject }}",
    ).expand_kwargs(blink_kwargs(sheets))
    reviewed = apply_blink(sheets, review.output)

    dist = distribute.expand(rig=rigs)
    reviewed >> dist
    prom = promote(dist, reviewed)
    done = summary(raw, c1, a1, c2, a2, reviewed, dist)
    prom >> done

    # the summary and the sync restart run whatever happens, so they cannot decide the run state:
    # this leaf fails the run when any task failed (and is skipped otherwise)
    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def watcher() -> None:
        """Fail the run when any task failed (see the summary for the per-item report)."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("a task of this run failed")

    watch = watcher()
    for t in raw.operator.dag.tasks:
        if t is not watch.operator:
            t >> watch.operator


astro_prepare_lights()
