"""Every DAG file imports without connections or network, parses fast, and follows the project's
rules (tags, retries >= 2, doc_md, file name = dag_id, described params)."""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
HEAVY = {
    "numpy",
    "PIL",
    "astropy",
    "boto3",
    "zarr",
    "ome_zarr",
    "skimage",
    "roboflow",
    "hypha_rpc",
    "imagehash",
    "torch",
    "cv2",
    "sqlalchemy",
}


def test_there_are_dags() -> None:
    assert DAG_FILES, "no DAG files in dags/"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_no_heavy_imports_at_module_level(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in tree.body:  # module level only; imports inside tasks are fine
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for n in names:
            assert n.split(".")[0] not in HEAVY, f"{path.name}: heavy import {n} at module level"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_file_parses(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    # no connections, no network: a DAG must not need them at parse time
    for k in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("no_proxy", "*")
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=str(path))
    elapsed = time.perf_counter() - t0
    assert not bag.import_errors, bag.import_errors
    assert path.stem in bag.dags, (
        f"{path.name} must define the DAG {path.stem!r} (file name = dag_id)"
    )
    assert len(bag.dags) == 1, f"{path.name}: one DAG per file, found {sorted(bag.dags)}"
    dag = bag.dags[path.stem]
    assert elapsed < 1.0 or _second_parse(path) < 1.0, f"{path.name} parsed in {elapsed:.2f} s"
    assert dag.tags, f"{dag.dag_id}: no tags"
    assert dag.doc_md and len(dag.doc_md) > 80, f"{dag.dag_id}: doc_md missing or too short"
    for task in dag.tasks:
        assert task.retries >= 2, f"{dag.dag_id}.{task.task_id}: retries={task.retries} < 2"
    for name, param in dag.params.items():
        assert param.description, f"{dag.dag_id}: param {name!r} has no description"


def _second_parse(path: Path) -> float:
    """The first parse in a process pays for importing Airflow's operators; time a warm one."""
    from airflow.dag_processing.dagbag import DagBag

    t0 = time.perf_counter()
    DagBag(dag_folder=str(path))
    return time.perf_counter() - t0


def _all_dags() -> dict[str, object]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return dict(bag.dags)


def test_every_pool_and_queue_a_task_names_is_created_by_the_setup_step() -> None:
    """A task in a pool that does not exist stays *scheduled* for ever under the scheduler (and
    ``dag.test()`` hides it): every pool must come from ``imaging.airflow_setup``, every queue must
    be one a worker serves."""
    from imaging.airflow_setup import pools_created
    from imaging.queues import QUEUES

    pools = pools_created() | {"default_pool"}
    bad: list[str] = []
    for dag_id, dag in _all_dags().items():
        for task in dag.tasks:  # type: ignore[attr-defined]
            if (task.pool or "default_pool") not in pools:
                bad.append(f"{dag_id}.{task.task_id}: pool {task.pool!r}")
            if task.queue not in QUEUES:
                bad.append(f"{dag_id}.{task.task_id}: queue {task.queue!r}")
    assert not bad, f"not created by python -m imaging.airflow_setup: {bad}"


def _form_required(schema: dict) -> bool:
    """The rule of Airflow 3.3's trigger/approval form (ui/src FlexibleForm): a field is required
    (red star, and an empty one disables the button) unless its type list includes "null"."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


#: params a run cannot go without (a red star, no default, typed in by the user): nothing else
REQUIRED = {("photo_reprocess", "image_id")}


def _unsubmittable(params: object, owner: str = "") -> list[str]:
    import jsonschema

    problems: list[str] = []
    for name, param in params.items():  # type: ignore[attr-defined]
        from airflow.sdk.definitions._internal.types import NOTSET

        if param.value is NOTSET:
            if (owner, name) not in REQUIRED:
                problems.append(f"{name}: no default, so the form cannot submit without typing")
            continue
        value, schema = param.value, param.schema
        if _form_required(schema) and (value is None or value == ""):
            problems.append(f"{name}: required by the form but its default is {value!r}")
            continue
        if value is not None or _form_required(schema):
            try:
                jsonschema.validate(value, schema)
            except jsonschema.ValidationError as exc:
                problems.append(f"{name}: default {value!r} fails its own schema: {exc.message}")
    return problems


def test_every_trigger_form_submits_with_its_defaults() -> None:
    """8 of 10 forms could not be submitted: a ``Param("", type="string")`` is required and empty."""
    bad = {d: p for d, dag in _all_dags().items() if (p := _unsubmittable(dag.params, d))}  # type: ignore[attr-defined]
    assert not bad, bad


def test_every_approval_form_submits_without_typing() -> None:
    """Approval (HITL) forms: "reject nothing" and Hold must not need a typed value."""
    bad: dict[str, list[str]] = {}
    for dag_id, dag in _all_dags().items():
        for task in dag.tasks:  # type: ignore[attr-defined]
            if "hitl" not in type(task).__module__ and "HITL" not in type(task).__name__:
                continue
            problems = _unsubmittable(getattr(task, "params", {}) or {})
            if problems:
                bad[f"{dag_id}.{task.task_id}"] = problems
    assert not bad, bad
