"""Run summaries from tasks: publish a :class:`include.common.results.RunSummary` as the run's
``summary.html`` (+ ``summary.json``) under ``/artefacts`` and record its one-line outcome.

The outcome travels as the XCom ``run_outcome`` of the calling task; the ``imaging_run_notes``
listener (:mod:`imaging.run_notes`) copies it into the run's note when the run ends, and
``make run-dag`` prints it. Call this from the last task of a DAG (``trigger_rule="all_done"``
where a summary is wanted after failures too).
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict
from urllib.parse import quote

from imaging.artefacts import api_base_url
from include.common.publish import publish_text
from include.common.results import RunSummary, render_html

log = logging.getLogger(__name__)

OUTCOME_KEY = "run_outcome"


class OutcomeRef(TypedDict):
    line: str
    url: str
    clean: bool
    errors: int


def airflow_run_url(dag_id: str, run_id: str, base_url: str | None = None) -> str:
    base = (base_url or api_base_url()).rstrip("/")
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def summary_url(dag_id: str, run_id: str, base_url: str | None = None) -> str:
    from include.common.publish import artefact_url

    return artefact_url(dag_id, run_id, "summary.html", base_url or api_base_url())


def failed_tasks(context: Any) -> int:
    """How many other task instances of this run failed (or could not run because of a failure)."""
    ti = context["ti"]
    others = [t for t in context["dag"].task_ids if t != ti.task_id]
    if not others:
        return 0
    return int(
        ti.get_ti_count(
            dag_id=ti.dag_id,
            task_ids=others,
            run_ids=[context["run_id"]],
            states=["failed", "upstream_failed"],
        )
    )


def publish_run_summary(
    context: Any, summary: RunSummary, *, fail_when_tasks_failed: bool = True
) -> OutcomeRef:
    """Publish the page, push the outcome XCom, log the line; returns the outcome.

    The summary task runs ``all_done`` and is the DAG's last (leaf) task, so Airflow would mark the
    run successful even when a step failed: with ``fail_when_tasks_failed`` (the default) it fails
    itself after publishing when any other task of the run failed, and the run ends failed."""
    base = api_base_url()
    page = render_html(
        summary, airflow_run_url=airflow_run_url(summary.dag_id, summary.run_id, base)
    )
    pub = publish_text(page, summary.dag_id, summary.run_id, "summary.html")
    publish_text(summary.to_json(), summary.dag_id, summary.run_id, "summary.json")
    url = pub.url(base)
    out = OutcomeRef(
        line=summary.outcome(url), url=url, clean=summary.clean, errors=len(summary.errors)
    )
    ti = context["ti"]
    ti.xcom_push(key=OUTCOME_KEY, value=dict(out))
    log.info("outcome: %s", out["line"])
    for err in summary.errors:
        log.warning("item error: %s [%s]: %s", err.item, err.step, err.reason)
    if fail_when_tasks_failed:
        n = failed_tasks(context)
        if n:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"{n} task(s) of this run failed (see their logs); the summary is at {url}"
            )
    return out


__all__ = [
    "OUTCOME_KEY",
    "OutcomeRef",
    "airflow_run_url",
    "failed_tasks",
    "publish_run_summary",
    "summary_url",
]
