"""Airflow glue of the astro DAGs: resolved inputs, the item ledger, remembered human answers,
published pictures. The step logic lives in :mod:`include.astro.steps` (plain Python).

Inputs: a trigger-form param left empty falls back to what the triggering Asset event announced
in its ``extra`` (the masters DAG puts its folders there), then to the installation setting
(Airflow Variable ``imaging_astro_*``, see :mod:`include.common.install`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from imaging.install import resolved

log = logging.getLogger("airflow.task")

# trigger-form param -> installation setting
ASTRO_SETTINGS: dict[str, str] = {
    "raw_dir": "astro_raw_dir",
    "library_dir": "astro_library_dir",
    "calibration_dir": "astro_calibration_dir",
    "rigs": "astro_rigs",
    "scheduler_db": "astro_scheduler_db",
    "report_dir": "astro_report_dir",
}


def asset_extras(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``extra`` of every Asset event that triggered this run (newest last)."""
    try:
        events = context.get("triggering_asset_events") or {}
        out: list[dict[str, Any]] = []
        for _asset, evs in events.items():
            for ev in evs:
                extra = getattr(ev, "extra", None)
                if extra is None and isinstance(ev, Mapping):
                    extra = ev.get("extra")
                if extra:
                    out.append(dict(extra))
        return out
    except Exception as exc:  # noqa: BLE001 - no events (manual or scheduled run)
        log.debug("no triggering asset events: %s", exc)
        return []


def inputs(context: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The params ``names``: form value → triggering Asset event's ``extra`` → setting."""
    names = list(names)
    params = dict(context.get("params") or {})
    for extra in asset_extras(context):
        for name in names:
            if params.get(name) in (None, "") and extra.get(name) not in (None, ""):
                params[name] = extra[name]
    return resolved(params, {n: ASTRO_SETTINGS[n] for n in names if n in ASTRO_SETTINGS})


class ItemLedger:
    """Collects ``item_records`` rows and writes them in one transaction (after the effects are
    durable). Callable as the ``record(kind, key, status, detail, error)`` of the steps."""

    def __init__(self, pipeline: str, run_id: str) -> None:
        self.pipeline = pipeline
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
                    pipeline=self.pipeline,
                    kind=kind,
                    key=key[:1000],
                    status=status,
                    checksum=(detail or {}).get("checksum"),
                    detail=detail,
                    error=error,
                    run_id=self.run_id,
                )
        self.rows.clear()


def remembered(pipeline: str, kind: str, library: str | None = None) -> dict[str, str]:
    """``{item key: detail["decision"]}`` of the recorded human answers of ``kind``; with
    ``library``, only the answers given about that library (keys are paths relative to it, so an
    answer about another library's frame of the same name is not this one's). Answers recorded
    before the library was stored with them apply to every library."""
    from sqlalchemy import select

    from imaging.appdb import app_engine
    from include.common.db import session_scope
    from include.common.models import ItemRecord

    with session_scope(app_engine()) as s:
        rows = s.execute(
            select(ItemRecord.item_key, ItemRecord.detail).where(
                ItemRecord.pipeline == pipeline, ItemRecord.kind == kind
            )
        ).all()
    return {
        k: (d or {}).get("decision", "")
        for k, d in rows
        if library is None or (d or {}).get("library") in (None, library)
    }


def publisher(context: Any) -> Any:
    """``publish(path, name) -> url | None`` for the steps (a failure is logged, never raised)."""
    from imaging.artefacts import publish_artefact

    def publish(path: Any, name: str | None = None) -> str | None:
        try:
            return publish_artefact(context, path, name)["url"]
        except (OSError, ValueError) as exc:
            log.warning("%s not published: %s", name or path, exc)
            return None

    return publish


BLINK_PREFIX = "/astro-blink"


def blink_page_url(context: Any, task_id: str, map_index: int | None) -> str:
    """Link of the blink page (plugin ``imaging_astro_blink``) for one mapped review task."""
    from urllib.parse import urlencode

    from imaging.artefacts import api_base_url

    base = api_base_url().rstrip("/")
    q = {
        "dag_id": context["ti"].dag_id,
        "run_id": context["run_id"],
        "task_id": task_id,
        "map_index": -1 if map_index is None else int(map_index),
    }
    return f"{base}{BLINK_PREFIX}/?{urlencode(q)}"


def publish_summary(context: Any, summary: Any) -> dict[str, Any]:
    """:func:`imaging.results.publish_run_summary`; when the published root is unusable the
    outcome is only logged (the library keeps its summary files) and the run is still failed when
    another task failed."""
    from airflow.sdk.exceptions import AirflowFailException

    from imaging.results import failed_tasks, publish_run_summary

    try:
        return dict(publish_run_summary(context, summary))
    except OSError as exc:
        log.warning("run summary not published (%s): %s", exc, summary.outcome())
        if failed_tasks(context):
            raise AirflowFailException("a task of this run failed (summary not published)") from exc
        return {"line": summary.outcome(), "url": "", "clean": summary.clean, "errors": 0}


def run_command(cmd: tuple[str, ...] | None, what: str) -> str:
    """Run the installation's sync-service command (none configured: logged)."""
    import subprocess

    if not cmd:
        log.info("no sync service command configured: nothing to %s", what)
        return "none"
    log.info("%s sync service: %s", what, " ".join(cmd))
    subprocess.run(list(cmd), check=True, timeout=120)
    return "done"


__all__ = [
    "ASTRO_SETTINGS",
    "ItemLedger",
    "asset_extras",
    "blink_page_url",
    "inputs",
    "publish_summary",
    "publisher",
    "remembered",
    "run_command",
]
