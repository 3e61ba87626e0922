"""The pipeline steps without Airflow: plan → upload each batch → report → verify, on both app-DB
dialects, through the real SDK (RoboflowHook) against the fake API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.common.db import make_engine
from include.roboflow.pipeline import (
    PipelineError,
    plan_run,
    report_run,
    upload_batch_run,
    verify_run,
)
from include.roboflow.samples import generate_dataset
from include.roboflow.upload import RetryPolicy
from tests.fakes.roboflow_server import shared_server


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest):
    url = request.getfixturevalue(
        "pg_app_db_url" if request.param == "postgresql" else "sqlite_app_db_url"
    )
    return make_engine(url)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch):
    from imaging.hooks.roboflow import RoboflowHook

    server = shared_server()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ROBOFLOW_DEFAULT", json.dumps(server.airflow_connection(upload_timeout=0.5))
    )
    yield RoboflowHook()
    server.configure(script={}, rates={})


def test_steps_end_to_end_and_rerun(engine, hook, tmp_path: Path) -> None:
    server = shared_server()
    info = generate_dataset(
        tmp_path / "steps", n_train=3, n_valid=1, n_test=1, n_neither=1, bad=True
    )
    project, neither = server.new_project("steps"), server.new_project("steps-n")
    kwargs = dict(
        dataset_dir=info["dataset_dir"], project=project, neither_project=neither, batch_size=2
    )
    server.configure(script={"train_0000.jpg": ["503", "lost"]})
    batches = plan_run(engine, **kwargs, retry_failed_only=False, run_id="r1")
    assert [b["batch_key"] for b in batches] == [
        "steps-train-0000",
        "steps-train-0001",
        "steps-valid-0000",
        "steps-test-0000",
        "steps-neither-0000",
    ]
    policy = RetryPolicy(attempts=4, base=0.01, cap=0.05)
    results = [
        upload_batch_run(engine, hook, b, tags=["x"], run_id="r1", workers=2, policy=policy)
        for b in batches
    ]
    assert [r["status"] for r in results] == ["completed"] * 5
    assert results[0]["duplicates"] == 1  # the "lost" answer came back as a duplicate
    stats = report_run(engine, batches, "r1")
    assert {k: stats[k] for k in ("submitted", "completed", "failed", "pending")} == {
        "submitted": 5,
        "completed": 5,
        "failed": 0,
        "pending": 0,
    }
    assert verify_run(
        engine, hook.project_image_count, batches, stats, project=project, run_id="r1"
    ) == {
        "expected": {project: 5, neither: 1},
        "actual": {project: 5, neither: 1},
    }
    assert server.report(project)["images"] == 5 and server.report(neither)["images"] == 1
    # a rerun plans nothing new
    assert plan_run(engine, **kwargs, retry_failed_only=False, run_id="r2") == []
    assert plan_run(engine, **kwargs, retry_failed_only=True, run_id="r3") == []


def test_permanent_problems_raise_pipeline_error(engine, hook, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="no Roboflow project"):
        plan_run(
            engine,
            dataset_dir=str(tmp_path),
            project=" ",
            neither_project=None,
            batch_size=5,
            retry_failed_only=False,
            run_id="r",
        )
    with pytest.raises(PipelineError, match="does not exist"):
        plan_run(
            engine,
            dataset_dir=str(tmp_path / "x"),
            project="p",
            neither_project=None,
            batch_size=5,
            retry_failed_only=False,
            run_id="r",
        )
    with pytest.raises(PipelineError, match="nothing to verify"):
        verify_run(engine, hook.project_image_count, None, None, project="p", run_id="r")
    stats = {"submitted": 2, "completed": 1, "failed": 1, "pending": 0, "images": {"failed": 3}}
    with pytest.raises(
        PipelineError, match=r"1 batch\(es\) failed .*3 image\(s\) failed.*retry_failed_only=true"
    ):
        verify_run(
            engine, hook.project_image_count, [], stats, project="nothing-confirmed", run_id="r"
        )
