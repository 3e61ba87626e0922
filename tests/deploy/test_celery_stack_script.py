"""scripts/celery_stack.py without starting the whole stack: the Redis database claim, cleanup
after a failed start, the environment every process shares, and the cluster policy the stack
installs applied by a real DagBag (a typo'd queue or pool becomes an import error instead of a task
queued for ever; declared placements are kept, nothing is routed)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from scripts.celery_stack import (
    CLAIM_KEY,
    REDIS_URL,
    CeleryStack,
    claim_redis_db,
    release_redis_db,
)

ROOT = Path(__file__).resolve().parents[2]


def _redis(n: int):
    import redis

    return redis.Redis.from_url(f"{REDIS_URL}/{n}")


def test_redis_claim_takes_an_empty_database_and_release_flushes_only_its_own() -> None:
    token = secrets.token_hex(4)
    n = claim_redis_db(token=token)
    client = _redis(n)
    try:
        assert client.get(CLAIM_KEY).decode() == token
        client.set("celery-key", "x")
        # a second claim never gets the same (non-empty) database
        other = claim_redis_db(token="other")
        assert other != n
        release_redis_db(REDIS_URL, other, "other")
        # someone else's marker: not flushed
        release_redis_db(REDIS_URL, n, "not-the-owner")
        assert client.exists("celery-key")
        release_redis_db(REDIS_URL, n, token)
        assert client.dbsize() == 0
    finally:
        release_redis_db(REDIS_URL, n, token)
        client.close()


def test_failed_start_stops_and_cleans_up(tmp_path: Path) -> None:
    """Broker unreachable: start() raises, the metadata database it created is dropped."""
    import redis
    from sqlalchemy import create_engine, text

    stack = CeleryStack(home=tmp_path / "home", redis_url="redis://127.0.0.1:1")
    with pytest.raises(redis.exceptions.ConnectionError):
        stack.start(timeout=30)
    state = json.loads((tmp_path / "home" / "stack.json").read_text())
    assert state["pids"] == {} and state["db_name"] == ""
    admin = create_engine(stack.pg_admin_url)
    with admin.connect() as conn:
        leftovers = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
            {"p": f"airflow_celery_%_{stack.token}"},
        ).all()
    admin.dispose()
    assert leftovers == []


def test_stack_environment(tmp_path: Path) -> None:
    stack = CeleryStack(
        home=tmp_path, extra_bundles={"probe": ROOT / "tests" / "deploy" / "dags"}, api_port=8123
    )
    stack.db_name, stack.redis_db = "airflow_celery_x", 7
    env = stack.env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"{REDIS_URL}/7"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "imaging.queues.worker_hostname"
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    bundles = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    assert [b["name"] for b in bundles] == ["dags-folder", "probe"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == stack.env()["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert not [k for k in env if k.startswith("AIRFLOW__") and k not in stack.env()]
    workers = {w.name: w for w in stack.workers}
    assert workers["worker-cpu"].pool == "solo" and "gpu" in workers["worker-cpu"].queues
    assert workers["worker-io"].queues == "default,io"


def test_policy_in_a_real_dagbag_turns_a_bad_queue_into_an_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    from imaging import queues

    (tmp_path / "typo_dag.py").write_text(
        "from airflow.sdk import dag, task\n"
        "@dag(schedule=None)\n"
        "def typo_dag():\n"
        "    @task(queue='gpus')\n"
        "    def infer(): return 1\n"
        "    infer()\n"
        "typo_dag()\n"
    )
    (tmp_path / "pool_typo_dag.py").write_text(
        "from airflow.sdk import dag, task\n"
        "@dag(schedule=None)\n"
        "def pool_typo_dag():\n"
        "    @task(queue='io', pool='roboflow')\n"
        "    def upload(): return 1\n"
        "    upload()\n"
        "pool_typo_dag()\n"
    )
    (tmp_path / "declared_dag.py").write_text(
        "from airflow.sdk import dag, task\n"
        "from imaging.dag_defaults import CPU, DEFAULT_ARGS, IO, ROBOFLOW_POOL, api_pool\n"
        "@dag(dag_id='roboflow_upload', schedule=None, default_args=DEFAULT_ARGS)\n"
        "def declared():\n"
        "    @task(queue=IO, **api_pool(ROBOFLOW_POOL, concurrency=8))\n"
        "    def upload_batch(): return 1\n"
        "    @task(queue=CPU)\n"
        "    def crunch(x): return x\n"
        "    @task\n"
        "    def report(x): return x\n"  # a pipeline's task name, but nothing routes it
        "    report(crunch.expand(x=[upload_batch()]))\n"
        "declared()\n"
    )
    # the policy exactly as the stack installs it: its copy of config/airflow_local_settings.py
    spec = importlib.util.spec_from_file_location(
        "stack_local_settings", ROOT / "config" / "airflow_local_settings.py"
    )
    local_settings = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(local_settings)  # type: ignore[union-attr]
    monkeypatch.setattr(settings, "task_policy", local_settings.task_policy)
    bag = DagBag(dag_folder=str(tmp_path))
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    assert set(errors) == {"typo_dag.py", "pool_typo_dag.py"}
    assert "'gpus'" in errors["typo_dag.py"] and "served by no worker" in errors["typo_dag.py"]
    assert "pool 'roboflow' does not exist" in errors["pool_typo_dag.py"]
    dag = bag.dags["roboflow_upload"]
    placed = {t.task_id: (t.queue, t.pool, t.pool_slots) for t in dag.tasks}
    assert placed == {
        "upload_batch": (queues.IO, queues.ROBOFLOW_POOL, 8),
        "crunch": (queues.CPU, "default_pool", 1),
        "report": ("default", "default_pool", 1),
    }
