"""
# astro_setup

Initialisation of the astrophotography catalog (seed: *Database Data Creation* and *Location Data
Input*). Run by hand once, and again after editing the equipment file.

Param: `config` - equipment file (YAML/JSON) with the NINA profiles (`id` = profile GUID, `name` =
`<optic>@f<ratio>+<camera>`, filters in priority order), the observing locations (latitude,
longitude, Bortle, SQM) and the AstroBin filter ids. Empty: the bundled `include/astro/equipment.yaml`.
Step logic: `include/astro/steps/setup_equipment.py`.

1. **migrate_catalog** - creates or upgrades the catalog tables (`astro_*`) on the app database
   (connection `imaging_db`, PostgreSQL or SQLite) with the Alembic branch `astro`.
2. **load_equipment** - validates the file item by item (a bad profile or location is reported and
   skipped) and upserts filters, locations, cameras, optics and profiles; rerunning updates in place.
3. **summary** - the run's summary page (counts, skipped items).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from imaging.dag_defaults import DEFAULT_ARGS


@dag(
    dag_id="astro_setup",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["astro", "catalog", "setup"],
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "config": Param(
            None,
            type=["null", "string"],
            description="Equipment file (profiles, locations, AstroBin filter ids; YAML or JSON). "
            "Empty: the bundled include/astro/equipment.yaml.",
        ),
    },
)
def astro_setup() -> None:
    @task
    def migrate_catalog() -> str:
        """Create/upgrade the astro_* tables (Alembic branch 'astro')."""
        from imaging.appdb import app_db_url
        from include.common.migrate import upgrade

        upgrade(app_db_url(), "astro@head")
        return "astro@head"

    @task
    def load_equipment(**context: Any) -> dict[str, Any]:
        """Validate the equipment file and upsert it; bad items are reported, the rest loaded."""
        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from include.astro.equipment import EquipmentError
        from include.astro.steps.setup_equipment import load
        from include.common.db import session_scope

        try:
            with session_scope(app_engine()) as s:
                return load(s, context["params"].get("config"))
        except EquipmentError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """The run's summary page (fails when another task failed)."""
        from imaging.astro import publish_summary
        from include.astro.steps.setup_equipment import setup_summary

        out = context["ti"].xcom_pull(task_ids="load_equipment")
        return publish_summary(context, setup_summary(context["run_id"], out))

    migrate_catalog() >> load_equipment() >> summary()


astro_setup()
