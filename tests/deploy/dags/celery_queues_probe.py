"""
# celery_queues_probe

A small, real DAG that proves the CeleryExecutor routing of this project: each task declares the
queue it must run on (`default`, `io`, `cpu`), one task takes slots in an API pool, and a mapped task
fans out over the `cpu` queue and starts its own process pool (as the CPU-heavy pipeline steps
do). Every task returns the worker that ran it (`IMAGING_WORKER_NAME`,
reported as the task instance's hostname through `imaging.queues.worker_hostname`) so the test can
check that each queue was served by the right worker.

Not part of the product: it lives in `tests/deploy/dags/` and is loaded as its own DAG bundle by
`scripts/celery_stack.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from imaging.queues import CPU, DEFAULT, HYPHA_POOL, IO


def _where(label: str) -> dict[str, Any]:
    import os

    from imaging.queues import worker_hostname

    return {"task": label, "worker": worker_hostname(), "pid": os.getpid()}


def _square_sum(n: int) -> int:
    return sum(k * k for k in range(n))


@dag(
    dag_id="celery_queues_probe",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["deploy", "celery", "probe"],
    default_args={
        "retries": 2,
        "retry_exponential_backoff": True,
        "retry_delay": timedelta(seconds=2),
    },
    params={
        "fan_out": Param(3, type="integer", minimum=1, maximum=16, description="Mapped cpu tasks."),
        "hold_s": Param(
            0,
            type="integer",
            minimum=0,
            maximum=600,
            description="Seconds each cpu task keeps running (to crash its worker meanwhile).",
        ),
    },
)
def celery_queues_probe() -> None:
    @task(queue=DEFAULT)
    def plan(params: dict[str, Any] | None = None) -> list[int]:
        n = int((params or {}).get("fan_out", 3))
        return list(range(n))

    @task(queue=IO, pool=HYPHA_POOL, pool_slots=2)
    def upload_like() -> dict[str, Any]:
        return _where("upload_like")

    @task(queue=CPU)
    def crunch(i: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
        # CPU tasks fan out over cores with their own process pool: this must work on a worker
        import time
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2) as pool:
            total = sum(pool.map(_square_sum, [20_000 + i, 10_000]))
        time.sleep(int((params or {}).get("hold_s", 0)))
        return {**_where(f"crunch[{i}]"), "total": total}

    @task(queue=DEFAULT)
    def report(io_result: dict[str, Any], cpu_results: list[dict[str, Any]]) -> dict[str, Any]:
        workers = {io_result["worker"], *(r["worker"] for r in cpu_results)}
        if len(workers) < 2:
            raise RuntimeError(f"expected io and cpu tasks on different workers, got {workers}")
        return {"io": io_result["worker"], "cpu": sorted({r["worker"] for r in cpu_results})}

    report(upload_like(), crunch.expand(i=plan()))


celery_queues_probe()
