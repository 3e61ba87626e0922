"""What every pipeline DAG shares: ``default_args`` and the names of the Celery queues and API
pools its tasks declare.

A DAG file imports this at module level (it is light: stdlib only, through
:mod:`imaging.queues`) and puts the placement on the task itself::

    from imaging.dag_defaults import CPU, DEFAULT_ARGS, HYPHA_POOL, IO, api_pool

    @dag(..., default_args=DEFAULT_ARGS)
    def pipeline():
        @task(queue=CPU)
        def stitch(...): ...

        @task(queue=IO, **api_pool(HYPHA_POOL, concurrency=25))
        def upload(...): ...

A DAG that needs other retry settings says so next to the DAG:
``default_args={**DEFAULT_ARGS, "retries": 3}``. Tasks without ``queue=`` run on ``default``.
The cluster policy (:func:`imaging.queues.task_policy`) only checks the declarations: a queue no
worker serves or a pool that does not exist is an import error of the DAG file.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from imaging.queues import (
    CPU,
    DEFAULT,
    ETSY_POOL,
    GPU,
    HYPHA_POOL,
    IO,
    QUEUES,
    ROBOFLOW_POOL,
    api_pool,
)

__all__ = [
    "CPU",
    "DEFAULT",
    "DEFAULT_ARGS",
    "ETSY_POOL",
    "GPU",
    "HYPHA_POOL",
    "IO",
    "QUEUES",
    "ROBOFLOW_POOL",
    "api_pool",
]

#: ``default_args`` of the pipeline DAGs: two retries, 10 s, 20 s ... with exponential backoff,
#: never more than 5 min apart. Airflow copies the dict into each DAG, so a DAG cannot change it
#: for the others; extend it with ``{**DEFAULT_ARGS, ...}``.
DEFAULT_ARGS: dict[str, Any] = {
    "retries": 2,
    "retry_exponential_backoff": True,
    "retry_delay": timedelta(seconds=10),
    "max_retry_delay": timedelta(minutes=5),
}
