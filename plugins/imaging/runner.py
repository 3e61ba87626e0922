"""Run one DAG run to completion in this process (``dag.test()``), optionally answering its
human-in-the-loop tasks. Shared by ``scripts/run_dag.py`` and the test suite."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaging.hitl_responder import Answer, HitlResponder, approve_all

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str] = field(default_factory=dict)
    answered: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "success"


def load_dag(dag_id: str, dags_folder: str | Path | None = None) -> Any:
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag

    folder = Path(dags_folder or conf.get("core", "dags_folder"))
    candidate = folder / f"{dag_id}.py"
    bag = DagBag(dag_folder=str(candidate if candidate.exists() else folder))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {folder}")
    return dag


def run_dag(
    dag_id: str,
    conf: dict[str, Any] | None = None,
    *,
    approve: None | str | Answer = None,
    delay: float = 1.5,
    dags_folder: str | Path | None = None,
) -> RunResult:
    """Run ``dag_id`` once with ``conf``. ``approve="all"`` answers every approval with its approving
    option; a callable answers with the body it returns (``None`` leaves the task waiting)."""
    dag = load_dag(dag_id, dags_folder)
    responder = None
    if approve is not None:
        answer = approve_all if approve == "all" else approve
        if not callable(answer):
            raise ValueError(f"approve must be 'all' or a callable, not {approve!r}")
        responder = HitlResponder(dag_id, answer, delay=delay)
        responder.start()
    try:
        dr = dag.test(run_conf=conf or {})
    finally:
        if responder is not None:
            responder.stop()
            responder.join(timeout=10)
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=dr.run_id).one()
        states = {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
            for ti in run.get_task_instances(session=session)
        }
        state = str(run.state)
    return RunResult(
        dag_id=dag_id,
        run_id=dr.run_id,
        state=state,
        task_states=states,
        answered=responder.answered if responder else [],
    )
