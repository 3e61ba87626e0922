"""Celery worker queues and Airflow pools of the imaging pipelines.

**Queues** (``queue=`` on a task; served by ``airflow celery worker --queues ...``):

| queue | what runs there | worker sizing |
|---|---|---|
| ``default`` | light orchestration (plan, report, verify, approvals) | any worker; the io worker serves it |
| ``io`` (:data:`IO`) | uploads/downloads: S3, Hypha, Roboflow, Etsy, NAS copies | many slots, little CPU |
| ``cpu`` (:data:`CPU`) | stitching, hashing, calibration, pyramids | one slot per core |
| ``gpu`` (:data:`GPU`) | YOLO / SAHI inference | one slot per GPU |

**Pools** cap how many task slots talk to one external API at the same time, across every worker.
Each pool's size is *derived* from the API's published limit (:class:`ApiLimit`): a hard concurrency
limit is used as is, a request-rate limit is turned into concurrency with Little's law
(``in-flight = rate x request latency``); both are then scaled by ``headroom`` so retries and other
clients of the same account have room. A task that runs ``k`` requests in parallel inside itself
takes ``pool_slots=k`` (see :func:`api_pool`). Pools cap concurrency, not rate: the hooks still
honour ``429``/``Retry-After``.

:func:`ensure_pools` creates the pools in the metadata DB (init container, scripts:
``python -m imaging.queues ensure``); :func:`ensure_pools_via_api` does the same through the REST API
(usable from a DAG's setup task, which in Airflow 3 has no metadata-DB access);
``python -m imaging.queues write-json config/pools.json`` writes the file for
``airflow pools import``.

**Placement** is declared by each task in its DAG file (``@task(queue=CPU)``,
``@task(queue=IO, **api_pool(HYPHA_POOL, concurrency=25))``; names and ``DEFAULT_ARGS`` from
:mod:`imaging.dag_defaults`). The cluster policy :func:`task_policy`
(``config/airflow_local_settings.py``) routes nothing: it only rejects a queue no worker serves, an
unknown pool or more ``pool_slots`` than the pool has, as an import error of the DAG file.

:func:`worker_hostname` is a ``[core] hostname_callable`` that lets several workers on one machine
report distinct host names (``IMAGING_WORKER_NAME``) on their task instances.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT = "default"
IO = "io"
CPU = "cpu"
GPU = "gpu"
QUEUES: tuple[str, ...] = (DEFAULT, IO, CPU, GPU)

ETSY_POOL = "etsy_api"
ROBOFLOW_POOL = "roboflow_api"
HYPHA_POOL = "hypha_uploads"

#: Environment variable prefix to override a pool's size: ``IMAGING_POOL_SLOTS_ETSY_API=8``.
OVERRIDE_PREFIX = "IMAGING_POOL_SLOTS_"


@dataclass(frozen=True)
class ApiLimit:
    """An external API's limit and the Airflow pool derived from it."""

    service: str
    pool: str
    source: str  # where the number comes from (documentation, contract, assumption)
    max_concurrent: int | None = None  # hard cap on requests in flight
    requests_per_s: float | None = None  # rate limit
    latency_s: float = 0.5  # typical request duration, turns a rate into in-flight requests
    headroom: float = 0.8  # share of the limit this deployment may use

    def __post_init__(self) -> None:
        if self.max_concurrent is None and self.requests_per_s is None:
            raise ValueError(f"{self.service}: give max_concurrent and/or requests_per_s")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"{self.service}: max_concurrent must be >= 1")
        if self.requests_per_s is not None and self.requests_per_s <= 0:
            raise ValueError(f"{self.service}: requests_per_s must be > 0")
        if self.latency_s <= 0:
            raise ValueError(f"{self.service}: latency_s must be > 0")
        if not 0 < self.headroom <= 1:
            raise ValueError(f"{self.service}: headroom must be in (0, 1]")

    @property
    def in_flight_limit(self) -> float:
        """Requests that may be in flight at once without breaking the limit."""
        caps: list[float] = []
        if self.max_concurrent is not None:
            caps.append(float(self.max_concurrent))
        if self.requests_per_s is not None:
            caps.append(self.requests_per_s * self.latency_s)  # Little's law
        return min(caps)

    def pool_slots(self) -> int:
        """The pool size: the in-flight limit scaled by ``headroom``, at least 1."""
        # round() first so 25 * 0.8 is 20, not 19 through float error
        return max(1, math.floor(round(self.in_flight_limit * self.headroom, 6)))

    def description(self) -> str:
        parts = []
        if self.max_concurrent is not None:
            parts.append(f"{self.max_concurrent} concurrent requests")
        if self.requests_per_s is not None:
            parts.append(f"{self.requests_per_s:g} req/s x {self.latency_s:g} s latency")
        return f"{self.service}: {' and '.join(parts)} x {self.headroom:g} headroom ({self.source})"


API_LIMITS: tuple[ApiLimit, ...] = (
    ApiLimit(
        service="Etsy Open API v3",
        pool=ETSY_POOL,
        source="Etsy: 10 requests/s and 10,000/day per app key",
        requests_per_s=10,
        latency_s=0.5,
    ),
    ApiLimit(
        service="Roboflow upload API",
        pool=ROBOFLOW_POOL,
        source="assumed budget, no fixed number published: 2 batch tasks x 8 upload workers; "
        "429 + Retry-After honoured by the hook",
        max_concurrent=16,
        headroom=1.0,
    ),
    ApiLimit(
        service="Hypha artifact manager",
        pool=HYPHA_POOL,
        source="Hypha server: 25 concurrent presigned PUTs; the hook already caps itself at "
        "put_concurrency, so the pool shares the whole limit between tasks",
        max_concurrent=25,
        headroom=1.0,
    ),
)


def _limits_by_pool(limits: Iterable[ApiLimit] = API_LIMITS) -> dict[str, ApiLimit]:
    return {lim.pool: lim for lim in limits}


def pool_sizes(
    limits: Iterable[ApiLimit] = API_LIMITS, env: Mapping[str, str] | None = None
) -> dict[str, int]:
    """``{pool name: slots}``; ``IMAGING_POOL_SLOTS_<POOL>`` in ``env`` overrides a size."""
    env = os.environ if env is None else env
    sizes: dict[str, int] = {}
    for lim in limits:
        key = OVERRIDE_PREFIX + lim.pool.upper()
        raw = env.get(key)
        if raw is None or raw == "":
            sizes[lim.pool] = lim.pool_slots()
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{key}={raw!r}: not an integer") from None
        if value < 1:
            raise ValueError(f"{key}={raw!r}: a pool needs at least 1 slot")
        sizes[lim.pool] = value
    return sizes


def pools_config(
    limits: Iterable[ApiLimit] = API_LIMITS, env: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The pools in ``airflow pools import`` format."""
    limits = tuple(limits)
    sizes = pool_sizes(limits, env)
    return {
        lim.pool: {
            "slots": sizes[lim.pool],
            "description": lim.description(),
            "include_deferred": False,
        }
        for lim in limits
    }


def api_pool(
    pool: str, concurrency: int = 1, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Task arguments for a task that runs ``concurrency`` requests to ``pool``'s API at once:
    ``@task(queue=IO, **api_pool(HYPHA_POOL, concurrency=4))``. ``pool_slots`` is capped at the
    pool's size so the task can always be scheduled."""
    sizes = pool_sizes(env=env)
    if pool not in sizes:
        raise KeyError(f"unknown pool {pool!r}; known: {sorted(sizes)}")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    return {"pool": pool, "pool_slots": min(concurrency, sizes[pool])}


# ------------------------------------------------------------------ the guard (cluster policy)
#
# Each task declares its queue (and API pool) in its DAG file (see imaging.dag_defaults); the
# policy does not route anything, it only rejects declarations no deployment can run.


class QueuePolicyError(ValueError):
    """A task names a queue no worker serves or a pool that does not exist (it would stay queued
    for ever), or takes more slots than its pool has."""


def check_task(task: Any, env: Mapping[str, str] | None = None) -> Any:
    """Check the queue, pool and pool slots ``task`` (an operator or mapped operator) declares;
    raises :class:`QueuePolicyError`, else returns the task unchanged."""
    from airflow.sdk.definitions._internal.abstractoperator import DEFAULT_QUEUE

    where = f"task {getattr(task, 'dag_id', None)}.{task.task_id}"
    if task.queue not in QUEUES and task.queue != DEFAULT_QUEUE:
        raise QueuePolicyError(
            f"{where}: queue {task.queue!r} is served by no worker; use one of {QUEUES}"
        )
    pool = task.pool or "default_pool"
    if pool == "default_pool":
        return task
    sizes = pool_sizes(env=env)
    if pool not in sizes:
        raise QueuePolicyError(
            f"{where}: pool {pool!r} does not exist; use one of {sorted(sizes)} or none "
            "(imaging.queues.API_LIMITS defines the pools)"
        )
    slots = int(task.pool_slots or 1)
    if slots > sizes[pool]:
        raise QueuePolicyError(
            f"{where}: pool_slots={slots} but pool {pool!r} has {sizes[pool]} slots, so the task "
            f"could never start; use api_pool({pool!r}, concurrency) to cap it"
        )
    return task


def task_policy(task: Any) -> None:
    """Airflow cluster policy (``airflow_local_settings.task_policy``): rejects a task on a queue
    no worker serves, in an unknown pool or with more slots than its pool, with
    ``AirflowClusterPolicyViolation`` (an import error of the DAG file). Changes nothing."""
    from airflow.exceptions import AirflowClusterPolicyViolation

    try:
        check_task(task)
    except QueuePolicyError as exc:
        raise AirflowClusterPolicyViolation(str(exc)) from exc


# ------------------------------------------------------------------ creating the pools


@dataclass(frozen=True)
class PoolChange:
    pool: str
    action: (
        str  # "created" | "updated" | "unchanged" | "kept" (exists with other slots, not forced)
    )
    slots: int  # slots now in the metadata DB
    wanted: int


def _decide(name: str, wanted: int, existing: int | None, update: bool) -> str:
    if existing is None:
        return "created"
    if existing == wanted:
        return "unchanged"
    return "updated" if update else "kept"


def ensure_pools(
    config: Mapping[str, Mapping[str, Any]] | None = None, *, update: bool = False
) -> list[PoolChange]:
    """Create the missing pools in the metadata DB (init container / CLI context, not from a task).

    Existing pools whose size differs (tuned by an operator in the UI) are kept unless
    ``update=True``. Idempotent."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session
    from sqlalchemy import select

    config = pools_config() if config is None else config
    changes: list[PoolChange] = []
    with create_session() as session:
        for name, spec in config.items():
            wanted = int(spec["slots"])
            row = session.scalar(select(Pool).where(Pool.pool == name))
            action = _decide(name, wanted, None if row is None else row.slots, update)
            if action in ("created", "updated"):
                Pool.create_or_update_pool(
                    name=name,
                    slots=wanted,
                    description=str(spec.get("description", "")),
                    include_deferred=bool(spec.get("include_deferred", False)),
                    session=session,
                )
                slots = wanted
            else:
                slots = int(row.slots)  # type: ignore[union-attr]
            changes.append(PoolChange(name, action, slots, wanted))
    return changes


def ensure_pools_via_api(
    base_url: str,
    token: str | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    update: bool = False,
    timeout: float = 30.0,
) -> list[PoolChange]:
    """The same as :func:`ensure_pools` through the Airflow REST API (``/api/v2/pools``)."""
    import requests

    config = pools_config() if config is None else config
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    api = base_url.rstrip("/") + "/api/v2/pools"
    changes: list[PoolChange] = []
    with requests.Session() as http:
        http.headers.update(headers)
        for name, spec in config.items():
            wanted = int(spec["slots"])
            got = http.get(f"{api}/{name}", timeout=timeout)
            if got.status_code == 404:
                existing = None
            else:
                got.raise_for_status()
                existing = int(got.json()["slots"])
            action = _decide(name, wanted, existing, update)
            body = {
                "name": name,
                "slots": wanted,
                "description": str(spec.get("description", "")),
                "include_deferred": bool(spec.get("include_deferred", False)),
            }
            if action == "created":
                http.post(api, json=body, timeout=timeout).raise_for_status()
            elif action == "updated":
                http.patch(f"{api}/{name}", json=body, timeout=timeout).raise_for_status()
            slots = wanted if action in ("created", "updated") else int(existing or 0)
            changes.append(PoolChange(name, action, slots, wanted))
    return changes


def write_pools_json(path: str | Path, env: Mapping[str, str] | None = None) -> Path:
    """Write :func:`pools_config` for ``airflow pools import``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(pools_config(env=env), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def worker_hostname() -> str:
    """``[core] hostname_callable``: ``IMAGING_WORKER_NAME`` if set, else the FQDN."""
    return os.environ.get("IMAGING_WORKER_NAME") or socket.getfqdn()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m imaging.queues", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    ens = sub.add_parser("ensure", help="create the pools in the metadata DB")
    ens.add_argument("--update", action="store_true", help="also resize existing pools")
    api = sub.add_parser("ensure-api", help="create the pools through the REST API")
    api.add_argument("--url", required=True)
    api.add_argument("--token", default=os.environ.get("AIRFLOW_API_TOKEN"))
    api.add_argument("--update", action="store_true")
    wj = sub.add_parser("write-json", help="write the pools file for `airflow pools import`")
    wj.add_argument("path")
    sub.add_parser("show", help="print the pools as JSON")
    args = parser.parse_args(argv)
    if args.cmd == "ensure":
        changes = ensure_pools(update=args.update)
    elif args.cmd == "ensure-api":
        changes = ensure_pools_via_api(args.url, args.token, update=args.update)
    elif args.cmd == "write-json":
        print(write_pools_json(args.path))
        return 0
    else:
        print(json.dumps(pools_config(), indent=2, sort_keys=True))
        return 0
    for c in changes:
        print(f"pool {c.pool}: {c.action} (slots {c.slots}, derived {c.wanted})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
