"""
# astro_catalog_report

Catalog, scheduler and reports of the accepted astrophotography data (seed: *Database Operations*,
*Summary and Report*). Runs when the lights pipeline publishes to `20_Data` (Asset `astro_20_data`)
and by hand.

Params: `library_dir` (root of the rig folders `<optic>@f<ratio>+<camera>/20_Data`), `scheduler_db`
(a NINA Target Scheduler SQLite file; empty = skip the scheduler update and the "want/need" totals),
`report_dir` (default `<library_dir>/_Reports`).

1. **list_rigs** - rig folders that have a `20_Data` folder.
2. **update_catalog** (mapped, one per rig, in parallel) - every light is parsed (name tokens, then the
   header) and counted per light set (target, night, filter, exposure, panel, folder); the sets are
   upserted into `astro_accepted_data` (unique on camera, optic, location, target, filter, date,
   panel, exposure, folder) with count, integration time and HFR values; sets whose folder left
   `20_Data` are removed (a rig folder that is missing altogether - e.g. an unmounted drive - is
   not scanned, so its rows stay). Unreadable frames are reported per item. Frames are placed at the nearest
   catalog location of their `SITELAT`/`SITELONG` (see `astro_setup`; if the catalog has no
   equipment yet, the bundled equipment file is loaded first).
3. **update_scheduler** - accepted counts into the Target Scheduler's exposure plans, matched by
   profile, target, panel, filter and exposure (plan exposure, else the template default); accepted
   just short of desired (> 95 %) counts as complete. The file is backed up before the first change.
4. **write_reports** - per target an AstroBin acquisition CSV and `totals.json` (have / want / need
   hours per filter), plots of hours per target and filter over time and of the HFR distribution per
   rig, and `index.html` linking them, in `report_dir`; they are also published for the browser at
   `<[api] base_url>/artefacts/astro_catalog_report/<run>/report/index.html` (behind the Airflow
   login), and that link is logged and returned.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, Param, TriggerRule, dag, task

from imaging.dag_defaults import DEFAULT_ARGS

PIPELINE = "astro_catalog_report"
ASSET_20_DATA = Asset("astro_20_data")


def _paths(params: dict[str, Any]) -> dict[str, Any]:
    from pathlib import Path

    from include.common.settings import get_settings

    lib = Path(params.get("library_dir") or get_settings().data_dir / "astro" / "library")
    report = Path(params.get("report_dir") or lib / "_Reports")
    sched = Path(params["scheduler_db"]) if params.get("scheduler_db") else None
    return {"lib": lib, "report": report, "scheduler": sched}


def _equipment(session: Any) -> Any:
    import logging

    from include.astro.equipment import apply_equipment, equipment_from_db, load_equipment

    eq = equipment_from_db(session)
    if eq.errors:  # no equipment in the catalog yet: load the bundled defaults first
        logging.getLogger("airflow.task").warning("%s: loading the bundled equipment", eq.errors[0])
        apply_equipment(session, load_equipment())
        eq = equipment_from_db(session)
    return eq


@dag(
    dag_id="astro_catalog_report",
    schedule=[ASSET_20_DATA],
    catchup=False,
    doc_md=__doc__,
    tags=["astro", "catalog", "reports"],
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "library_dir": Param(
            "",
            type="string",
            description="Library root holding the rig folders (<optic>@f<ratio>+<camera>/20_Data). "
            "Empty: $IMAGING_DATA_DIR/astro/library.",
        ),
        "scheduler_db": Param(
            "",
            type="string",
            description="NINA Target Scheduler SQLite file to update (optional; empty = skip).",
        ),
        "report_dir": Param(
            "",
            type="string",
            description="Where the CSVs, totals, plots and index.html go. Empty: <library_dir>/_Reports.",
        ),
    },
)
def astro_catalog_report() -> None:
    @task
    def list_rigs(**context: Any) -> list[str]:
        """Rig folders with a 20_Data folder."""
        from include.astro.catalog import list_rigs as rigs

        return rigs(_paths(context["params"])["lib"])

    @task(map_index_template="{{ task.op_kwargs['rig'] }}")
    def update_catalog(rig: str, **context: Any) -> dict[str, Any]:
        """Scan one rig's 20_Data and upsert its light sets (one transaction)."""
        import logging

        from imaging.appdb import app_engine
        from include.astro.catalog import scan_rig, upsert_rig
        from include.common.db import session_scope

        log = logging.getLogger("airflow.task")
        scan = scan_rig(_paths(context["params"])["lib"], rig)
        with session_scope(app_engine()) as s:
            out = upsert_rig(s, scan, _equipment(s))
        for e in out["errors"]:
            log.warning("skipped %s: %s", e["path"], e["reason"])
        log.info(
            "%s: %d frames in %d light sets; %d stale rows removed",
            rig,
            out["frames"],
            out["sets"],
            out["deleted_stale"],
        )
        return out

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def update_scheduler(catalog: list[dict[str, Any]] | None, **context: Any) -> dict[str, Any]:
        """Accepted counts into the Target Scheduler database (when one is given)."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from include.astro.scheduler import SchedulerDBError, accepted_counts, update_accepted
        from include.common.db import session_scope

        log = logging.getLogger("airflow.task")
        sched = _paths(context["params"])["scheduler"]
        if sched is None:
            log.info("no scheduler_db given: scheduler update skipped")
            return {"skipped": True}
        with session_scope(app_engine()) as s:
            counts = accepted_counts(s)
        try:
            out = update_accepted(sched, counts)
        except SchedulerDBError as exc:
            raise AirflowFailException(str(exc)) from exc
        for c in out["changes"]:
            log.info(
                "plan %s %s panel=%r %s %ss: %s → %s",
                c["plan_id"],
                c["target"],
                c["panel"],
                c["filter"],
                c["exposure"],
                c["old_accepted"],
                c["new_accepted"],
            )
        return out

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def write_reports(scheduler: dict[str, Any], **context: Any) -> dict[str, Any]:
        """AstroBin CSVs, totals, plots and index.html in report_dir."""
        import logging

        from imaging.appdb import app_engine
        from imaging.artefacts import api_base_url
        from include.astro.reports import catalog_rows
        from include.astro.reports import write_reports as write
        from include.astro.scheduler import desired_hours
        from include.common.db import session_scope
        from include.common.publish import artefact_url, publish_tree, published_root

        p = _paths(context["params"])
        dag_id, run_id = context["ti"].dag_id, context["run_id"]
        with session_scope(app_engine()) as s:
            rows = catalog_rows(s)
        desired = desired_hours(p["scheduler"]) if p["scheduler"] is not None else None
        out = write(rows, p["report"], desired=desired)
        # published for the browser (relative links of index.html keep working under report/)
        done, errors = publish_tree(
            p["report"], dag_id, run_id, "report", files=out["files"], root=published_root()
        )
        log = logging.getLogger("airflow.task")
        for e in errors:
            log.warning("not published: %s: %s", e["file"], e["reason"])
        base = api_base_url()
        out["index_path"] = str(p["report"] / "index.html")
        out["index"] = artefact_url(dag_id, run_id, "report/index.html", base)
        out["published"] = [d.rel for d in done]
        out["publish_errors"] = errors
        log.info("report: %s (files in %s)", out["index"], p["report"])
        return out

    catalog = update_catalog.expand(rig=list_rigs())
    write_reports(update_scheduler(catalog))


astro_catalog_report()
