"""The project on the CeleryExecutor, on this machine without Docker (``scripts/celery_stack.py``):
a fresh PostgreSQL metadata DB, the local Redis as broker, api-server (execution API), scheduler,
dag-processor, triggerer and two Celery workers on different queues (``worker-io``: default,io;
``worker-cpu``: cpu). Real DAG runs are triggered through the REST API and must succeed with their
tasks on the worker that serves their queue. Every process is stopped at the end, the database
dropped and the Redis database flushed; the teardown checks it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imaging.queues import CPU, ETSY_POOL, HYPHA_POOL, IO, ensure_pools_via_api, pool_sizes
from scripts.celery_stack import CeleryStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
WORKER_OF_QUEUE = {"default": "worker-io", IO: "worker-io", CPU: "worker-cpu"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def stack(
    app_db_url: str, s3_server: Any, hypha_server: Any, tmp_root: Path
) -> Iterator[CeleryStack]:
    """The running stack; the app DB / S3 / Hypha connections of the session are inherited by
    every Airflow process through their AIRFLOW_CONN_* variables."""
    s = CeleryStack(
        home=tmp_root / "celery-stack",
        extra_bundles={"deploy-probe": ROOT / "tests" / "deploy" / "dags"},
    )
    s.start()
    pids = {name: p.pid for name, p in s.procs.items()}
    db_name, redis_db = s.db_name, s.redis_db
    try:
        yield s
    finally:
        s.stop()
    # nothing left behind: processes, metadata database, broker database
    assert not [n for n, pid in pids.items() if _alive(pid)], "processes still running"
    from sqlalchemy import create_engine, text

    admin = create_engine(s.pg_admin_url)
    with admin.connect() as conn:
        left = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": db_name})
        assert left.first() is None, f"database {db_name} not dropped"
    admin.dispose()
    import redis

    client = redis.Redis.from_url(f"{s.redis_url}/{redis_db}")
    assert client.dbsize() == 0, f"redis db {redis_db} not flushed"
    client.close()


def _check_placement(tis: list[dict[str, Any]]) -> set[str]:
    """Every task instance ran on the worker serving its queue; returns the workers used."""
    wrong = [
        (ti["task_id"], ti["map_index"], ti["queue"], ti["hostname"])
        for ti in tis
        if ti["state"] == "success" and WORKER_OF_QUEUE.get(ti["queue"]) != ti["hostname"]
    ]
    assert not wrong, f"tasks on the wrong worker: {wrong}"
    return {ti["hostname"] for ti in tis if ti["state"] == "success"}


def test_probe_dag_runs_on_both_workers(stack: CeleryStack) -> None:
    run_id = stack.trigger("celery_queues_probe", {"fan_out": 3})
    assert stack.wait_run("celery_queues_probe", run_id, timeout=180) == "success"
    tis = stack.task_instances("celery_queues_probe", run_id)
    assert {ti["state"] for ti in tis} == {"success"}
    assert len(tis) == 6  # plan, upload_like, crunch x3, report
    assert _check_placement(tis) == {"worker-io", "worker-cpu"}
    by_id = {(ti["task_id"], ti["map_index"]): ti for ti in tis}
    assert by_id[("upload_like", -1)]["pool"] == HYPHA_POOL
    assert by_id[("upload_like", -1)]["pool_slots"] == 2
    assert {by_id[("crunch", i)]["queue"] for i in range(3)} == {CPU}
    # the workers' own logs show they received work
    for name in ("worker-io", "worker-cpu"):
        assert "received" in stack.worker_log(name), f"{name} got no task"
    # the probe's own check: the report task saw results from two different workers
    xcom = stack.api(
        "GET",
        f"/dags/celery_queues_probe/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value",
    )
    assert "worker-cpu" in str(xcom["value"]) and "worker-io" in str(xcom["value"])


def test_pools_created_at_init_and_ensure_via_api_is_idempotent(stack: CeleryStack) -> None:
    pools = {p["name"]: p for p in stack.api("GET", "/pools?limit=100")["pools"]}
    for name, slots in pool_sizes().items():
        assert pools[name]["slots"] == slots, name
    assert {c.action for c in ensure_pools_via_api(stack.base_url)} == {"unchanged"}
    tuned = {"name": ETSY_POOL, "slots": 9, "include_deferred": False, "description": "tuned"}
    stack.api("PATCH", f"/pools/{ETSY_POOL}", json=tuned)
    kept = {c.pool: c for c in ensure_pools_via_api(stack.base_url)}
    assert (kept[ETSY_POOL].action, kept[ETSY_POOL].slots) == ("kept", 9)
    forced = {c.pool: c for c in ensure_pools_via_api(stack.base_url, update=True)}
    assert forced[ETSY_POOL].action == "updated"
    assert stack.api("GET", f"/pools/{ETSY_POOL}")["slots"] == pool_sizes()[ETSY_POOL]
