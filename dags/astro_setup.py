"""
# astro_setup

Initialisation of the astrophotography catalog (seed: *Database Data Creation* and *Location Data
Input*). Run by hand once, and again after editing the equipment file.

Param: `config` - equipment file (YAML/JSON) with the NINA profiles (`id` = profile GUID, `name` =
`<optic>@f<ratio>+<camera>`, filters in priority order), the observing locations (latitude,
longitude, Bortle, SQM) and the AstroBin filter ids. Empty: the bundled `include/astro/equipment.yaml`.

1. **migrate_catalog** - creates or upgrades the catalog tables (`astro_*`) on the app database
   (connection `imaging_db`, PostgreSQL or SQLite) with the Alembic branch `astro`.
2. **load_equipment** - validates the file item by item (a bad profile or location is reported and
   skipped) and upserts filters, locations, cameras, optics and profiles; rerunning updates in place.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task

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
            "",
            type="string",
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
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from include.astro.equipment import EquipmentError, apply_equipment
        from include.astro.equipment import load_equipment as load
        from include.common.db import session_scope

        log = logging.getLogger("airflow.task")
        try:
            eq = load(context["params"]["config"] or None)
        except EquipmentError as exc:
            raise AirflowFailException(str(exc)) from exc
        with session_scope(app_engine()) as s:
            out = apply_equipment(s, eq)
        for err in out["errors"]:
            log.warning("skipped: %s", err)
        log.info(
            "loaded %d profiles, %d locations, %d filters from %s",
            out["profiles"],
            out["locations"],
            out["filters"],
            eq.source,
        )
        return out

    migrate_catalog() >> load_equipment()


astro_setup()
