"""Listener: when a DAG run ends, its note gets the run's one-line outcome (the XCom
``run_outcome`` pushed by :func:`imaging.results.publish_run_summary`), so the run page shows what
happened and links the summary. A failed run without an outcome gets the failed tasks' names.

Runs inside the scheduler (and ``dag.test()``), in the session that is changing the run's state: the
note is written in the same transaction (a second connection would wait on SQLite's write lock).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

OUTCOME_KEY = "run_outcome"  # = imaging.results.OUTCOME_KEY (kept import-light for the scheduler)
MAX_NOTE = 1000  # dag_run_note.content is String(1000)


def _outcome(dag_run: Any, session: Any) -> str | None:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    rows = session.execute(
        select(XComModel.value, XComModel.timestamp)
        .where(XComModel.dag_run_id == dag_run.id, XComModel.key == OUTCOME_KEY)
        .order_by(XComModel.timestamp.desc())
    ).all()
    for value, _ in rows:
        val = value
        if isinstance(val, str):
            try:
                val = json.loads(val)
            except ValueError:
                continue
        if isinstance(val, dict) and val.get("line"):
            return str(val["line"])
    return None


def _failed_tasks(dag_run: Any, session: Any) -> list[str]:
    from airflow.utils.state import TaskInstanceState

    return sorted(
        {
            ti.task_id
            for ti in dag_run.get_task_instances(session=session)
            if ti.state == TaskInstanceState.FAILED
        }
    )


def note_for(dag_run: Any, session: Any, failed: bool) -> str | None:
    line = _outcome(dag_run, session)
    if failed:
        tasks = _failed_tasks(dag_run, session)
        head = "✘ run failed" + (f" in {', '.join(tasks)}" if tasks else "")
        line = f"{head} · {line}" if line else head + " (see the task logs)"
    return line


def _write(dag_run: Any, session: Any, failed: bool) -> None:
    line = note_for(dag_run, session, failed)
    if not line:
        return
    old = dag_run.note or ""
    if line in old:
        return
    note = line if not old else f"{line}\n{old}"
    dag_run.note = note[:MAX_NOTE]


def _set_note(dag_run: Any, failed: bool) -> None:
    from sqlalchemy.orm import object_session

    try:
        session = object_session(dag_run)
        if session is not None:  # the scheduler: same session, same transaction
            _write(dag_run, session, failed)
            return
        # dag.test() hands a detached run: a short session of our own
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as own:
            run = own.get(DagRun, dag_run.id)
            if run is not None:
                _write(run, own, failed)
    except Exception:  # noqa: BLE001 - a note must never break the scheduler
        log.exception("could not write the outcome note of %s", getattr(dag_run, "run_id", "?"))


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _set_note(dag_run, failed=False)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _set_note(dag_run, failed=True)
