"""Queues, pools derived from the external APIs' limits, the placement each pipeline task declares
in its DAG file (checked, not routed, by the cluster policy), the shared ``default_args``, and pool
creation in the session's real Airflow metadata DB."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
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
    api_pool,
    check_task,
    pool_sizes,
    pools_config,
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

    with DAG("placement_demo", schedule=None) as dag:

        @task
        def plain() -> int:
            return 1

        @task(queue=CPU)
        def chosen() -> int:
            return 2

        @task(queue=IO, **api_pool(HYPHA_POOL, 3))
        def mapped(x: int) -> int:
            return x

        plain()
        chosen()
        mapped.expand(x=[1, 2])
    return dag


def _placement(t) -> tuple[str, str, int]:
    return (t.queue, t.pool, t.pool_slots)


def test_policy_keeps_the_declared_placement_and_routes_nothing() -> None:
    """Declared queues/pools stay as they are; a task without one stays on ``default``, whatever
    its dag_id/task_id (there is no central routing table any more)."""
    dag = _dag_with_tasks()
    before = {t.task_id: _placement(t) for t in dag.tasks}
    for t in dag.tasks:
        queues.task_policy(t)
    assert (
        {t.task_id: _placement(t) for t in dag.tasks}
        == before
        == {
            "plain": ("default", "default_pool", 1),
            "chosen": (CPU, "default_pool", 1),
            "mapped": (IO, HYPHA_POOL, 3),
        }
    )
    assert not hasattr(queues, "TASK_ROUTES") and not hasattr(queues, "route_task")


def test_unknown_queue_is_a_policy_violation() -> None:
    from airflow.exceptions import AirflowClusterPolicyViolation
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("typo_queue", schedule=None):
        t = EmptyOperator(task_id="t", queue="gpus")
    with pytest.raises(QueuePolicyError, match="served by no worker"):
        check_task(t)
    with pytest.raises(AirflowClusterPolicyViolation, match="'gpus'"):
        queues.task_policy(t)


def test_unknown_pool_and_too_many_slots_are_policy_violations() -> None:
    """A task in a pool that does not exist, or asking for more slots than its pool has, would
    stay queued for ever: both are rejected with the fix in the message."""
    from airflow.exceptions import AirflowClusterPolicyViolation
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("bad_pools", schedule=None):
        typo = EmptyOperator(task_id="typo", queue=IO, pool="hypha_upload")
        greedy = EmptyOperator(task_id="greedy", queue=IO, pool=ETSY_POOL, pool_slots=5)
        fits = EmptyOperator(task_id="fits", queue=IO, pool=ETSY_POOL, pool_slots=4)
    with pytest.raises(QueuePolicyError, match="pool 'hypha_upload' does not exist"):
        check_task(typo)
    with pytest.raises(AirflowClusterPolicyViolation, match=r"bad_pools.greedy: pool_slots=5"):
        queues.task_policy(greedy)
    assert check_task(fits) is fits
    # the slots follow the deployment's pool size (IMAGING_POOL_SLOTS_<POOL>)
    assert check_task(greedy, env={"IMAGING_POOL_SLOTS_ETSY_API": "5"}) is greedy
    with pytest.raises(QueuePolicyError, match="has 2 slots"):
        check_task(fits, env={"IMAGING_POOL_SLOTS_ETSY_API": "2"})


def test_worker_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGING_WORKER_NAME", "worker-cpu")
    assert queues.worker_hostname() == "worker-cpu"
    monkeypatch.delenv("IMAGING_WORKER_NAME")
    assert queues.worker_hostname()


@pytest.fixture(scope="module")
def project_dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))  # per-file rules: tests/dags/test_dag_integrity.py
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, "no DAG files found"
    return bag.dags


def test_project_dags_declare_known_queues_and_pools(project_dags: dict) -> None:
    """Every task of dags/ passes the policy as declared (queue served by a worker, existing pool,
    slots that fit) and the policy leaves it as it is."""
    for dag_id, dag in project_dags.items():
        for t in dag.tasks:
            declared = _placement(t)
            queues.task_policy(t)
            assert _placement(t) == declared, (dag_id, t.task_id)
            assert t.queue in queues.QUEUES, (dag_id, t.task_id, t.queue)


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
        "upload_channel": (IO, HYPHA_POOL, 5),  # 5 of 25: channels upload in parallel
        "commit_folder": (IO, "default_pool", 1),
        "timelapse": (IO, "default_pool", 1),
    },
    "reef_treatment_upload": {"upload_folder": (IO, HYPHA_POOL, 25)},
    "roboflow_upload": {"upload_batch": (IO, ROBOFLOW_POOL, 8)},
}


def test_pipeline_tasks_run_where_their_work_belongs(project_dags: dict) -> None:
    """The heavy and API-bound steps of every pipeline declare their queue / API pool."""
    assert set(EXPECTED_PLACEMENT) <= set(project_dags)
    for dag_id, tasks in EXPECTED_PLACEMENT.items():
        dag = project_dags[dag_id]
        for task_id, want in tasks.items():
            assert _placement(dag.get_task(task_id)) == want, (dag_id, task_id)


#: The DAGs whose retries differ from DEFAULT_ARGS, and how (written next to their @dag).
DEFAULT_ARGS_DIFFERENCES: dict[str, dict[str, object]] = {
    "photo_ingest": {"retries": 3, "retry_delay": timedelta(seconds=5)},
    "photo_reprocess": {"retries": 3, "retry_delay": timedelta(seconds=5)},
    "reef_stitch_upload": {
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "max_retry_delay": timedelta(minutes=10),
    },
    "reef_treatment_upload": {
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "max_retry_delay": timedelta(minutes=10),
    },
}


def test_dags_share_one_default_args(project_dags: dict) -> None:
    """Every DAG takes imaging.dag_defaults.DEFAULT_ARGS (plus its listed differences) and no DAG
    file keeps its own copy of the retry settings."""
    from imaging.dag_defaults import DEFAULT_ARGS

    expected = {
        "retries": 2,
        "retry_exponential_backoff": True,
        "retry_delay": timedelta(seconds=10),
        "max_retry_delay": timedelta(minutes=5),
    }
    assert expected == DEFAULT_ARGS
    for dag_id, dag in project_dags.items():
        want = {**DEFAULT_ARGS, **DEFAULT_ARGS_DIFFERENCES.get(dag_id, {})}
        assert {k: dag.default_args.get(k) for k in want} == want, dag_id
        for t in dag.tasks:  # a task may still override them (none does today)
            assert (t.retries, t.retry_delay) == (want["retries"], want["retry_delay"]), t.task_id
        src = (ROOT / "dags" / f"{dag_id}.py").read_text()
        assert "retry_exponential_backoff" not in src, f"{dag_id}: copy of the default_args"


def test_dag_defaults_is_light_to_import() -> None:
    """DAG files import imaging.dag_defaults at module level: it must not pull Airflow, numpy,
    boto3, SQLAlchemy... into the DAG processor's parse."""
    code = (
        "import sys; import imaging.dag_defaults as d; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'plugins'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    heavy = {"airflow", "numpy", "PIL", "boto3", "botocore", "sqlalchemy", "requests", "pydantic"}
    assert not heavy & set(out), heavy & set(out)
    assert "imaging" in out


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
    """config/airflow_local_settings.py (mounted at $AIRFLOW_HOME/config) registers the guard."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "airflow_local_settings_under_test", ROOT / "config" / "airflow_local_settings.py"
    )
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    assert mod.task_policy is queues.task_policy
