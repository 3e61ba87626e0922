"""
# astro_catalog_report

Catalog, scheduler and reports of the accepted astrophotography data (seed: *Database Operations*,
*Summary and Report*). Runs when the lights pipeline publishes to `20_Data` (Asset `astro_20_data`)
and by hand.

Params (all optional; empty = what the triggering Asset event announced, else the installation
setting `imaging_astro_*`): `library_dir` (root of the rig folders
`<optic>@f<ratio>+<camera>/20_Data`), `scheduler_db` (a NINA Target Scheduler SQLite file; setting
`imaging_astro_scheduler_db`; none = skip the scheduler update and the "want/need" totals),
`report_dir` (setting `imaging_astro_report_dir`, else `<library_dir>/_Reports`). Step logic:
`include/astro/steps/catalog_*.py`.

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
   just short of desired (> 95 %) counts as complete; a plan whose lights are still held in
   `10_Blink` is never lowered. The file is backed up before the first change.
4. **write_reports** - per target an AstroBin acquisition CSV and `totals.json` (have / want / need
   hours per filter), plots of hours per target and filter over time and of the HFR distribution per
   rig, and `index.html` linking them, in `report_dir`; they are also published for the browser at
   `<[api] base_url>/artefacts/astro_catalog_report/<run>/report/index.html` (behind the Airflow
   login), and that link is logged and returned.
5. **summary** - the run's summary page (report link, counts, scheduler changes, unreadable frames).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, Param, TriggerRule, dag, task

from imaging.dag_defaults import DEFAULT_ARGS

PIPELINE = "astro_catalog_report"
ASSET_20_DATA = Asset("astro_20_data")
FOLDERS = ("library_dir", "scheduler_db", "report_dir")


def _inp(context: dict[str, Any]) -> Any:
    from imaging.astro import inputs
    from include.astro.steps.catalog_update import catalog_inputs

    return catalog_inputs(inputs(context, FOLDERS))


@dag(
    dag_id=PIPELINE,
    schedule=[ASSET_20_DATA],
    catchup=False,
    doc_md=__doc__,
    tags=["astro", "catalog", "reports"],
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "library_dir": Param(
            None,
            type=["null", "string"],
            description="Library root holding the rig folders (<optic>@f<ratio>+<camera>/20_Data). "
            "Empty: the folder the triggering Asset event names, else the installation setting "
            "imaging_astro_library_dir.",
        ),
        "scheduler_db": Param(
            None,
            type=["null", "string"],
            description="NINA Target Scheduler SQLite file to update. Empty: the installation "
            "setting imaging_astro_scheduler_db (none: no scheduler update).",
        ),
        "report_dir": Param(
            None,
            type=["null", "string"],
            description="Where the CSVs, totals, plots and index.html go. Empty: the installation "
            "setting imaging_astro_report_dir, else <library_dir>/_Reports.",
        ),
    },
)
def astro_catalog_report() -> None:
    @task
    def list_rigs(**context: Any) -> list[str]:
        """Rig folders with a 20_Data folder."""
        from include.astro.catalog import list_rigs as rigs

        return rigs(_inp(context).lib)

    @task(map_index_template="{{ task.op_kwargs['rig'] }}")
    def update_catalog(rig: str, **context: Any) -> dict[str, Any]:
        """Scan one rig's 20_Data and upsert its light sets (one transaction)."""
        from imaging.appdb import app_engine
        from include.astro.steps.catalog_update import update_catalog as step
        from include.common.db import session_scope

        with session_scope(app_engine()) as s:
            return step(_inp(context), rig, s)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def update_scheduler(catalog: list[dict[str, Any]] | None, **context: Any) -> dict[str, Any]:
        """Accepted counts into the Target Scheduler database (when one is configured)."""
        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from include.astro.scheduler import SchedulerDBError
        from include.astro.steps.catalog_update import update_scheduler as step
        from include.common.db import session_scope

        try:
            with session_scope(app_engine()) as s:
                return step(_inp(context), s)
        except SchedulerDBError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def write_reports(scheduler: dict[str, Any], **context: Any) -> dict[str, Any]:
        """AstroBin CSVs, totals, plots and index.html in report_dir (published)."""
        from imaging.appdb import app_engine
        from imaging.artefacts import api_base_url
        from include.astro.steps.catalog_reports import write_reports as step
        from include.common.db import session_scope

        with session_scope(app_engine()) as s:
            return step(_inp(context), s, context["ti"].dag_id, context["run_id"], api_base_url())

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """The run's summary page (fails when another task failed)."""
        from imaging.astro import publish_summary
        from include.astro.steps.catalog_summary import catalog_summary

        ti = context["ti"]
        rs = catalog_summary(
            context["run_id"],
            [c for c in (ti.xcom_pull(task_ids="update_catalog") or []) if c],
            ti.xcom_pull(task_ids="update_scheduler"),
            ti.xcom_pull(task_ids="write_reports"),
        )
        return publish_summary(context, rs)

    catalog = update_catalog.expand(rig=list_rigs())
    write_reports(update_scheduler(catalog)) >> summary()


astro_catalog_report()
