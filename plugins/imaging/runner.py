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
    note: str | None = None  # the run's note (its one-line outcome, see imaging.run_notes)
    outcome: dict[str, Any] | None = None  # the XCom run_outcome: {line, url, clean, errors}
    # other runs of the DAG that ran meanwhile (e.g. the scheduled run that unpausing started)
    others: list[dict[str, Any]] = field(default_factory=list)

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
        note = run.note
        outcome = _outcome_of(session, run.id)
    return RunResult(
        dag_id=dag_id,
        run_id=dr.run_id,
        state=state,
        task_states=states,
        answered=responder.answered if responder else [],
        note=note,
        outcome=outcome,
    )


def _outcome_of(session: Any, dag_run_id: int) -> dict[str, Any] | None:
    import json

    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    from imaging.results import OUTCOME_KEY

    for value in session.scalars(
        select(XComModel.value).where(
            XComModel.dag_run_id == dag_run_id, XComModel.key == OUTCOME_KEY
        )
    ):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                continue
        if isinstance(value, dict):
            return value
    return None


def api_is_up(base_url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{base_url}/api/v2/monitor/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def api_token(base_url: str, username: str, password: str) -> str:
    import httpx

    r = httpx.post(
        f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def run_dag_remote(
    base_url: str,
    dag_id: str,
    conf: dict[str, Any] | None = None,
    *,
    token: str,
    approve: None | str | Answer = None,
    delay: float = 1.5,
    timeout: float = 3600,
    poll: float = 2.0,
) -> RunResult:
    """Trigger ``dag_id`` on a running Airflow (REST API), wait for the run to finish, and answer its
    approvals when asked. Used by ``make run-dag`` while the demo is up."""
    import json
    import time

    import httpx

    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    before = {
        r["dag_run_id"]
        for r in client.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1000})
        .json()
        .get("dag_runs", [])
    }
    client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    r = client.post(
        f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
    )
    r.raise_for_status()
    run_id = r.json()["dag_run_id"]
    log.info("triggered %s %s", dag_id, run_id)
    responder = None
    if approve is not None:
        answer = approve_all if approve == "all" else approve
        responder = HitlResponder(dag_id, answer, delay=delay, client=client, run_id=run_id)  # type: ignore[arg-type]
        responder.start()
    deadline = time.monotonic() + timeout
    state = "queued"
    try:
        while time.monotonic() < deadline:
            state = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                break
            time.sleep(poll)
    finally:
        if responder is not None:
            responder.stop()
            responder.join(timeout=10)
    tis = client.get(
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
    ).json()
    states = {
        (ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"): str(
            ti["state"]
        )
        for ti in tis.get("task_instances", [])
    }
    note = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json().get("note")
    outcome = None
    found = client.get(
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries",
        params={"xcom_key": "run_outcome"},
    )
    for entry in found.json().get("xcom_entries", []) if found.status_code == 200 else []:
        r = client.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{entry['task_id']}"
            "/xcomEntries/run_outcome",
            params={"map_index": entry.get("map_index", -1), "deserialize": True},
        )
        value = r.json().get("value") if r.status_code == 200 else None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if isinstance(value, dict):
            outcome = value
    others = [
        {"run_id": r["dag_run_id"], "state": r["state"], "note": r.get("note")}
        for r in client.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 1000})
        .json()
        .get("dag_runs", [])
        if r["dag_run_id"] not in before and r["dag_run_id"] != run_id
    ]
    return RunResult(
        dag_id,
        run_id,
        state,
        states,
        responder.answered if responder else [],
        note=note,
        outcome=outcome,
        others=others,
    )
