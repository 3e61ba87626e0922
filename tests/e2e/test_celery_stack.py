"""The project on the CeleryExecutor, on this machine without Docker (``scripts/celery_stack.py``):
a fresh PostgreSQL metadata DB, the local Redis as broker, api-server (execution API), scheduler,
dag-processor, triggerer and two Celery workers on different queues (``worker-io``: default,io,
prefork; ``worker-cpu``: cpu,gpu, solo). Real DAG runs are triggered through the REST API: the probe
DAG of ``tests/deploy/dags`` and one run per pipeline family (its approvals answered over REST); they
must succeed with every task on the queue, API pool and pool slots its DAG file declares, run by the
worker that serves that queue. A worker
killed mid-task loses nothing. Every process is stopped at the end, the database dropped and the
Redis database flushed; the teardown checks it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imaging.queues import (
    CPU,
    ETSY_POOL,
    GPU,
    HYPHA_POOL,
    IO,
    ROBOFLOW_POOL,
    ensure_pools_via_api,
    pool_sizes,
)
from scripts.celery_stack import CeleryStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
WORKER_OF_QUEUE = {"default": "worker-io", IO: "worker-io", CPU: "worker-cpu", GPU: "worker-cpu"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


PIPELINES = (
    "astro_calibration_masters",
    "reef_treatment_upload",
    "photo_ingest",
    "design_upload",
    "roboflow_upload",
)


@pytest.fixture(scope="module")
def pipeline_confs(
    app_db_url: str, s3_server: Any, hypha_server: Any, tmp_root: Path
) -> Iterator[dict[str, dict[str, Any]]]:
    """One run per pipeline family with its own generated sample data; the connections the runs
    need are put in the environment the stack's processes inherit (AIRFLOW_CONN_*)."""
    from include.astro.samples_masters import make_calibration_sets
    from include.common.db import make_engine, session_scope
    from include.design import samples as design_samples
    from include.photos.catalog import upsert_site
    from include.photos.samples import generate_demo as photo_demo
    from include.reef.samples import GridSpec, generate_timelapse
    from include.roboflow.samples import generate_dataset
    from tests.fakes.roboflow_server import shared_server

    base = tmp_root / "celery-samples"
    make_calibration_sets(base / "astro-library", n_frames=3, shape=(24, 32))
    confs: dict[str, dict[str, Any]] = {
        "astro_calibration_masters": {"library_dir": str(base / "astro-library")}
    }

    exp = "reef-celery"
    generate_timelapse(base / "mic", exp, n_folders=3, grid=GridSpec(rows=2, cols=2, tile=64))
    confs["reef_treatment_upload"] = {
        "base_dir": str(base / "mic"),
        "experiment_id": exp,
        "work_dir": str(base / "reef-work"),
    }

    photos = photo_demo(base / "photos", n_good=2, width=800, height=600)
    with session_scope(make_engine(app_db_url)) as s:
        upsert_site(s, photos["warehouses"], photos["locations"])
    confs["photo_ingest"] = {
        "source_dir": str(Path(photos["dir"]).resolve()),
        "uploaded_by": "celery",
    }

    design = design_samples.build_demo(base / "design", n_designs=3)
    confs["design_upload"] = {
        "source_dir": design["source_dir"],
        "templates_dir": design["templates_dir"],
        "template": design["template"],
        "shop": "celery-shop",
        # 1: hash in the task process. With more, include/design/workers.py starts a forkserver
        # pool whose children re-import the task's __main__ (the `airflow` CLI under a real
        # executor) with the task's blocked metadata-DB URL and die; under dag.test() __main__ is
        # pytest, so only a deployment shows it. Reported to the design pipeline's owner.
        "max_workers": 1,
    }

    rf = shared_server()
    info = generate_dataset(base / "roboflow", n_train=6, n_valid=2, n_test=2, n_neither=0)
    confs["roboflow_upload"] = {
        "dataset_dir": info["dataset_dir"],
        "project": rf.new_project("celery"),
        "batch_size": 4,
    }

    hypha_conn = hypha_server.airflow_connection()
    hypha_conn["extra"].update(connect_backoff_base=0.5, commit_backoff_base=0.5, rpc_timeout_s=30)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_IMAGING_HYPHA", json.dumps(hypha_conn))
        mp.setenv(
            "AIRFLOW_CONN_NAS_DEFAULT",
            json.dumps({"conn_type": "fs", "extra": {"path": design["nas_root"]}}),
        )
        mp.delenv("AIRFLOW_CONN_ETSY_DEFAULT", raising=False)  # design: listings to the outbox
        mp.setenv(
            "AIRFLOW_CONN_ROBOFLOW_DEFAULT",
            json.dumps(rf.airflow_connection(upload_workers=4, upload_timeout=5)),
        )
        yield confs


@pytest.fixture(scope="module")
def stack(pipeline_confs: dict[str, Any], tmp_root: Path) -> Iterator[CeleryStack]:
    """The running stack; the app DB / S3 / Hypha / NAS / Roboflow connections of the session are
    inherited by every Airflow process through their AIRFLOW_CONN_* variables."""
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


def test_one_run_per_pipeline_family_on_both_workers(
    stack: CeleryStack, pipeline_confs: dict[str, dict[str, Any]]
) -> None:
    """The project's real DAGs, triggered together through the REST API, all succeed; each task
    ran on the queue, pool and pool slots its DAG file declares (the cluster policy only checks)
    and on the worker that serves that queue (both workers used)."""
    # the astro run waits for approvals (blink review): answered over REST, as a person would
    responder = stack.answer_approvals("astro_calibration_masters")
    try:
        runs = {dag_id: stack.trigger(dag_id, pipeline_confs[dag_id]) for dag_id in PIPELINES}
        states = {
            dag_id: stack.wait_run(dag_id, run_id, timeout=300) for dag_id, run_id in runs.items()
        }
    finally:
        responder.stop()
    assert responder.answered and not responder.errors, responder.errors
    tis = {dag_id: stack.task_instances(dag_id, run_id) for dag_id, run_id in runs.items()}
    failed = {
        d: [(t["task_id"], t["map_index"], t["state"]) for t in tis[d] if t["state"] != "success"]
        for d, st in states.items()
        if st != "success"
    }
    errors = {d: stack.task_log_errors(d, runs[d]) for d in failed}
    assert not failed, f"failed runs: {failed}; errors: {errors}"
    workers = set()
    for dag_id in PIPELINES:
        workers |= _check_placement(tis[dag_id])
    assert workers == {"worker-io", "worker-cpu"}

    # the placement declared on each task in dags/ reached the deployment and the workers
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    placed = 0
    for dag_id in PIPELINES:
        for ti in tis[dag_id]:
            if ti["state"] != "success":
                continue
            task = bag.dags[dag_id].get_task(ti["task_id"])
            got = (ti["queue"], ti["pool"], ti["pool_slots"], ti["hostname"])
            want = (task.queue, task.pool, task.pool_slots, WORKER_OF_QUEUE[task.queue])
            assert got == want, (dag_id, ti["task_id"], ti["map_index"])
            placed += task.queue != "default"
    assert placed >= 8
    ran = {
        (t["queue"], t["hostname"]) for d in PIPELINES for t in tis[d] if t["state"] == "success"
    }
    assert {(IO, "worker-io"), (CPU, "worker-cpu"), (GPU, "worker-cpu")} <= ran
    pools = {t["pool"] for d in PIPELINES for t in tis[d]}
    assert {HYPHA_POOL, ROBOFLOW_POOL} <= pools


def test_a_crashed_worker_loses_no_task(stack: CeleryStack) -> None:
    """Kill the cpu worker (and its running task) mid-task: the scheduler notices the missing
    heartbeat, the task is retried on the restarted worker and the run still succeeds."""
    run_id = stack.trigger("celery_queues_probe", {"fan_out": 1, "hold_s": 15})
    deadline = time.monotonic() + 120
    while True:
        tis = {t["task_id"]: t for t in stack.task_instances("celery_queues_probe", run_id)}
        if tis.get("crunch", {}).get("state") == "running":
            break
        assert time.monotonic() < deadline, f"crunch never started: {tis}"
        time.sleep(1)
    time.sleep(3)
    stack.crash_worker("worker-cpu")
    stack.restart_worker("worker-cpu")
    assert stack.wait_run("celery_queues_probe", run_id, timeout=240) == "success"
    crunch = [
        t for t in stack.task_instances("celery_queues_probe", run_id) if t["task_id"] == "crunch"
    ]
    assert [(t["state"], t["hostname"]) for t in crunch] == [("success", "worker-cpu")]
    assert crunch[0]["try_number"] == 2  # the killed attempt counted, the retry succeeded
