"""Queues, pools derived from the external APIs' limits, the routing cluster policy, and pool
creation in the session's real Airflow metadata DB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imaging import queues
from imaging.queues import (
    API_LIMITS,
    CPU,
    ETSY_POOL,
    GPU,
    HYPHA_POOL,
    IO,
    ROBOFLOW_POOL,
    ApiLimit,
    QueuePolicyError,
    Route,
    api_pool,
    pool_sizes,
    pools_config,
    route_task,
)

ROOT = Path(__file__).resolve().parents[2]


def test_queue_names() -> None:
    assert (IO, CPU, GPU) == ("io", "cpu", "gpu")
    assert set(queues.QUEUES) == {"default", "io", "cpu", "gpu"}


def test_pool_sizes_follow_the_api_limits() -> None:
    sizes = pool_sizes(env={})
    # Hypha: 25 concurrent PUTs, shared by the upload tasks (each caps itself at put_concurrency)
    assert sizes[HYPHA_POOL] == 25
    # Etsy: 10 req/s x 0.5 s per request = 5 in flight, 80 % -> 4
    assert sizes[ETSY_POOL] == 4
    # Roboflow: budget of 2 batch tasks x 8 upload workers
    assert sizes[ROBOFLOW_POOL] == 16


def test_rate_limit_becomes_concurrency_by_littles_law() -> None:
    lim = ApiLimit("x", "x_pool", "doc", requests_per_s=20, latency_s=0.25, headroom=1.0)
    assert lim.in_flight_limit == pytest.approx(5.0)
    assert lim.pool_slots() == 5
    both = ApiLimit("y", "y_pool", "doc", max_concurrent=3, requests_per_s=100, latency_s=1.0)
    assert both.pool_slots() == 2  # min(3, 100) * 0.8 -> 2
    tiny = ApiLimit("z", "z_pool", "doc", requests_per_s=0.1, latency_s=0.1)
    assert tiny.pool_slots() == 1  # never 0: the tasks could never run


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "max_concurrent and/or requests_per_s"),
        ({"max_concurrent": 0}, "max_concurrent must be >= 1"),
        ({"requests_per_s": -1}, "requests_per_s must be > 0"),
        ({"max_concurrent": 2, "headroom": 1.5}, "headroom"),
        ({"max_concurrent": 2, "latency_s": 0}, "latency_s"),
    ],
)
def test_bad_limits_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApiLimit("svc", "pool", "doc", **kwargs)


def test_env_override_and_its_errors() -> None:
    assert pool_sizes(env={"IMAGING_POOL_SLOTS_ETSY_API": "7"})[ETSY_POOL] == 7
    with pytest.raises(ValueError, match="not an integer"):
        pool_sizes(env={"IMAGING_POOL_SLOTS_ETSY_API": "many"})
    with pytest.raises(ValueError, match="at least 1 slot"):
        pool_sizes(env={"IMAGING_POOL_SLOTS_HYPHA_UPLOADS": "0"})


def test_pools_json_is_generated_from_the_limits() -> None:
    """config/pools.json (for `airflow pools import`) must match the derivation."""
    on_disk = json.loads((ROOT / "config" / "pools.json").read_text())
    assert on_disk == pools_config(env={}), (
        "regenerate: python -m imaging.queues write-json config/pools.json"
    )
    for lim in API_LIMITS:
        assert lim.source in on_disk[lim.pool]["description"]


def test_write_pools_json(tmp_path: Path) -> None:
    out = queues.write_pools_json(tmp_path / "p" / "pools.json", env={})
    assert json.loads(out.read_text()) == pools_config(env={})


def test_api_pool_caps_slots_at_pool_size() -> None:
    assert api_pool(HYPHA_POOL, 4) == {"pool": HYPHA_POOL, "pool_slots": 4}
    assert api_pool(ETSY_POOL, 50) == {"pool": ETSY_POOL, "pool_slots": 4}
    assert api_pool(HYPHA_POOL, 30) == {"pool": HYPHA_POOL, "pool_slots": 25}
    with pytest.raises(KeyError, match="unknown pool"):
        api_pool("nope")
    with pytest.raises(ValueError):
        api_pool(HYPHA_POOL, 0)


def _dag_with_tasks():
    from airflow.sdk import DAG, task

    with DAG("routing_demo", schedule=None) as dag:

        @task
        def plain() -> int:
            return 1

        @task(queue=CPU)
        def chosen() -> int:
            return 2

        @task
        def mapped(x: int) -> int:
            return x

        plain()
        chosen()
        mapped.expand(x=[1, 2])
    return dag


def test_route_task_applies_routes_but_never_overrides_a_declared_queue() -> None:
    dag = _dag_with_tasks()
    routes = {
        "routing_demo": {
            "plain": Route(IO, HYPHA_POOL, concurrency=3),
            "chosen": Route(GPU),
            "mapped": Route(CPU, ETSY_POOL, concurrency=99),
        }
    }
    for t in dag.tasks:
        route_task(t, routes)
    by_id = {t.task_id: t for t in dag.tasks}
    assert (by_id["plain"].queue, by_id["plain"].pool, by_id["plain"].pool_slots) == (
        IO,
        HYPHA_POOL,
        3,
    )
    assert by_id["chosen"].queue == CPU  # declared in the DAG: kept
    assert (by_id["mapped"].queue, by_id["mapped"].pool, by_id["mapped"].pool_slots) == (
        CPU,
        ETSY_POOL,
        4,
    )


def test_unknown_queue_is_a_policy_violation() -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("typo_queue", schedule=None):
        t = EmptyOperator(task_id="t", queue="gpus")
    with pytest.raises(QueuePolicyError, match="served by no worker"):
        route_task(t, {})
    with pytest.raises(AirflowClusterPolicyViolation, match="'gpus'"):
        queues.task_policy(t)


def test_worker_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGING_WORKER_NAME", "worker-cpu")
    assert queues.worker_hostname() == "worker-cpu"
    monkeypatch.delenv("IMAGING_WORKER_NAME")
    assert queues.worker_hostname()


def test_project_dags_use_known_queues_and_pools_and_routes_are_not_stale() -> None:
    """Every task of dags/ (after the policy) runs on a served queue and an existing pool, and
    every route in TASK_ROUTES names a task that exists (when its DAG exists)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))  # import errors: tests/dags/test_dag_integrity.py
    assert bag.dags or bag.import_errors, "no DAG files found"
    pools = set(pools_config(env={})) | {"default_pool"}
    for dag_id, dag in bag.dags.items():
        for t in dag.tasks:
            route_task(t)
            assert t.queue in queues.QUEUES, (dag_id, t.task_id, t.queue)
            assert t.pool in pools, (dag_id, t.task_id, t.pool)
            assert t.pool_slots <= max(pool_sizes(env={}).get(t.pool, 128), 1)
        for task_id in queues.TASK_ROUTES.get(dag_id, {}):
            assert task_id in dag.task_dict, f"stale route {dag_id}.{task_id}"


#: Where the pipelines' heavy and API-bound steps must run: ``(queue, pool, pool_slots)``, as each
#: DAG declares it on the task (every other task runs on ``default``).
EXPECTED_PLACEMENT: dict[str, dict[str, tuple[str, str, int]]] = {
    "astro_calibration_masters": {
        "integrate_master": (CPU, "default_pool", 1),
        "copy_to_library": (IO, "default_pool", 1),
    },
    "astro_prepare_lights": {
        "prepare_raw": (IO, "default_pool", 1),
        "cull_1": (CPU, "default_pool", 1),
        "cull_2": (CPU, "default_pool", 1),
        "blink_sheet": (CPU, "default_pool", 1),
        "distribute": (IO, "default_pool", 1),
        "promote": (IO, "default_pool", 1),
    },
    "design_upload": {
        "processing_and_formatting_images": (CPU, "default_pool", 1),
        "backfill_nas_hashes": (IO, "default_pool", 1),
        "checking_for_duplicates": (CPU, "default_pool", 1),
        "upload_to_nas": (IO, "default_pool", 1),
        "creating_product_mockups": (CPU, "default_pool", 1),
        "uploading_to_etsy_store": (IO, ETSY_POOL, 1),
    },
    "photo_ingest": {
        "chunk.stage_chunk": (IO, "default_pool", 1),
        "chunk.run_ml": (GPU, "default_pool", 1),
    },
    "photo_reprocess": {"run_ml": (GPU, "default_pool", 1)},
    "reef_stitch_upload": {
        "stitch": (CPU, "default_pool", 1),
        "upload_channel": (IO, HYPHA_POOL, 25),
        "commit_folder": (IO, "default_pool", 1),
    },
    "reef_treatment_upload": {"upload_folder": (IO, HYPHA_POOL, 25)},
    "roboflow_upload": {"upload_batch": (IO, ROBOFLOW_POOL, 8)},
}


def test_pipeline_tasks_run_where_their_work_belongs() -> None:
    """The heavy and API-bound steps of every pipeline are on their queue / in their API pool."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    assert set(EXPECTED_PLACEMENT) <= set(bag.dags)
    for dag_id, tasks in EXPECTED_PLACEMENT.items():
        dag = bag.dags[dag_id]
        for task_id, want in tasks.items():
            t = route_task(dag.get_task(task_id))
            assert (t.queue, t.pool, t.pool_slots) == want, (dag_id, task_id)


@pytest.fixture
def fresh_pools(airflow_db: Path):
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    def _clear() -> None:
        with create_session() as s:
            for name in pools_config(env={}):
                s.query(Pool).filter(Pool.pool == name).delete()

    _clear()
    yield
    _clear()


def test_ensure_pools_in_the_metadata_db_is_idempotent(fresh_pools: None) -> None:
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    first = {c.pool: c for c in queues.ensure_pools()}
    assert {c.action for c in first.values()} == {"created"}
    assert {c.pool: c.slots for c in first.values()} == pool_sizes()
    again = queues.ensure_pools()
    assert {c.action for c in again} == {"unchanged"}

    Pool.create_or_update_pool(ETSY_POOL, 9, "tuned by an operator", False)
    kept = {c.pool: c for c in queues.ensure_pools()}
    assert (kept[ETSY_POOL].action, kept[ETSY_POOL].slots) == ("kept", 9)
    forced = {c.pool: c for c in queues.ensure_pools(update=True)}
    assert (forced[ETSY_POOL].action, forced[ETSY_POOL].slots) == ("updated", 4)
    with create_session() as s:
        assert Pool.get_pool(ETSY_POOL, session=s).slots == 4


def test_cli_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert queues.main(["show"]) == 0
    assert json.loads(capsys.readouterr().out) == pools_config()


def test_airflow_local_settings_exposes_the_policy() -> None:
    """config/airflow_local_settings.py (mounted at $AIRFLOW_HOME/config) registers task_policy."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "airflow_local_settings_under_test", ROOT / "config" / "airflow_local_settings.py"
    )
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    assert mod.task_policy is queues.task_policy
