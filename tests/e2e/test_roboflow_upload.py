"""End to end: ``roboflow_upload`` runs with dag.test() against the fake Roboflow API (through the
real SDK) and the real PostgreSQL app database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from include.common.db import make_engine, session_scope
from include.common.files import safe_name
from include.common.items import get_item, status_counts
from include.common.models import ItemRecord
from include.common.publish import published_root
from include.roboflow.models import PIPELINE, RoboflowBatch, RoboflowImage, Status
from include.roboflow.samples import generate_dataset
from tests.fakes.roboflow_server import FakeRoboflowServer, shared_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> FakeRoboflowServer:
    return shared_server()


@pytest.fixture
def rf_conn(
    server: FakeRoboflowServer, monkeypatch: pytest.MonkeyPatch, app_db_url: str
) -> FakeRoboflowServer:
    conn = server.airflow_connection(
        upload_workers=4, upload_timeout=0.5, retry_attempts=4, retry_base=0.02, retry_cap=0.1
    )
    monkeypatch.setenv("AIRFLOW_CONN_ROBOFLOW_DEFAULT", json.dumps(conn))
    yield server
    server.configure(script={}, rates={}, rate_limit_per_s=None)


def _batches(app_db_url: str, project: str) -> dict[str, RoboflowBatch]:
    with session_scope(make_engine(app_db_url)) as s:
        return {
            b.batch_key: b
            for b in s.scalars(select(RoboflowBatch).where(RoboflowBatch.project == project))
        }


def _report_xcom(run_id: str) -> dict:
    """What the run shows: the return value of its ``report`` task."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id="roboflow_upload", run_id=run_id, task_id="report", key="return_value"
            )
            .one()
        )
        return XComModel.deserialize_value(row)


def _run_stats(app_db_url: str, run_id: str) -> dict:
    with session_scope(make_engine(app_db_url)) as s:
        item = get_item(s, PIPELINE, "run_stats", run_id)
        assert item is not None
        return dict(item.detail or {})


def test_upload_dataset_with_bad_files_and_neither_project(
    rf_conn, run_dag, app_db_url, tmp_path: Path
) -> None:
    server = rf_conn
    info = generate_dataset(
        tmp_path / "survey", n_train=7, n_valid=3, n_test=2, n_neither=2, bad=True
    )
    project, neither = server.new_project("main"), server.new_project("neither")
    conf = {
        "dataset_dir": info["dataset_dir"],
        "project": project,
        "neither_project": neither,
        "batch_size": 4,
        "tags": ["e2e"],
    }
    # transient faults on the way: all absorbed, nothing stored twice
    server.configure(
        script={
            "train_0001.jpg": ["503", "429"],
            "valid_0000.jpg": ["lost"],
            "test_0001.jpg": ["lost_timeout"],
        }
    )

    result = run_dag("roboflow_upload", conf=conf)
    assert result.state == "success", result.task_states

    main, other = server.report(project), server.report(neither)
    assert main["images"] == info["good"] == 12 and main["annotated"] == 12
    assert set(main["stored_per_name"].values()) == {1}
    assert other["images"] == 2 and other["annotated"] == 0
    assert main["by_name"]["valid_0000.jpg"] == {
        "split": "valid",
        "batch": "survey-valid-0000",
        "tags": ["e2e", "survey", "valid"],
        "annotated": True,
    }
    assert other["by_name"]["neither_0000.jpg"]["tags"] == ["e2e", "survey", "neither"]
    assert sorted(main["batches"]) == [
        "survey-test-0000",
        "survey-train-0000",
        "survey-train-0001",
        "survey-valid-0000",
    ]
    for name in info["bad"]:
        assert Path(name).name not in main["names"]

    # the run's summary page and its one-line outcome (the run's note): bad files are item errors
    assert result.outcome and result.outcome["errors"] == len(info["bad"]), result.outcome
    assert result.outcome["line"].startswith(f"⚠ {len(info['bad'])} item errors")
    assert "14 of 14 images uploaded in 5 of 5 batches" in result.outcome["line"]
    assert result.note and result.note.startswith(result.outcome["line"]), result.note
    page = published_root() / "roboflow_upload" / safe_name(result.run_id) / "summary.html"
    html_text = page.read_text()
    for batch in ("survey-train-0000", "survey-valid-0000"):
        assert batch in html_text
    for name in info["bad"]:
        assert name in html_text, name

    batches = _batches(app_db_url, project)
    assert {b.status for b in batches.values()} == {Status.COMPLETED}
    assert sum(b.n_completed for b in batches.values()) == 12
    stats = _run_stats(app_db_url, result.run_id)
    assert _report_xcom(result.run_id) == stats
    assert {k: stats[k] for k in ("submitted", "completed", "failed", "pending")} == {
        "submitted": 5,
        "completed": 5,
        "failed": 0,
        "pending": 0,
    }
    assert stats["images"] == {"submitted": 14, "completed": 14, "failed": 0, "pending": 0}
    with session_scope(make_engine(app_db_url)) as s:
        issues = {
            r.item_key: r.detail["kind"]
            for r in s.scalars(
                select(ItemRecord).where(
                    ItemRecord.pipeline == PIPELINE, ItemRecord.kind == "scan_error"
                )
            )
            if r.item_key.startswith("survey/")
        }
        assert issues == {f"survey/{k}": v for k, v in info["bad"].items()}
        dup = s.scalar(
            select(RoboflowImage).where(
                RoboflowImage.project == project,
                RoboflowImage.image_key == "survey/valid/images/valid_0000.jpg",
            )
        )
        assert dup.status == Status.COMPLETED and dup.duplicate and dup.remote_id
        assert status_counts(s, PIPELINE, "scan_error").get("failed", 0) >= len(info["bad"])

    # rerun: nothing is sent again
    before = main["upload_requests"]
    again = run_dag("roboflow_upload", conf=conf)
    assert again.state == "success", again.task_states
    assert server.report(project)["upload_requests"] == before
    assert server.report(project)["images"] == 12
    assert _run_stats(app_db_url, again.run_id)["submitted"] == 0


def test_failed_batch_fails_the_run_and_retry_failed_only_requeues_just_it(
    rf_conn, run_dag, app_db_url, tmp_path: Path
) -> None:
    server = rf_conn
    info = generate_dataset(
        tmp_path / "reef", n_train=6, n_valid=2, n_test=0, n_neither=0, bad=False
    )
    project = server.new_project("main")
    conf = {"dataset_dir": info["dataset_dir"], "project": project, "batch_size": 3}
    server.configure(script={"train_0004.jpg": ["503"] * 50})

    first = run_dag("roboflow_upload", conf=conf)
    assert first.state == "failed"
    assert first.task_states["verify"] == "failed" and first.task_states["report"] == "success"
    batches = _batches(app_db_url, project)
    assert (
        batches["reef-train-0001"].status == Status.FAILED
        and "HTTP 503" in batches["reef-train-0001"].error
    )
    assert (
        batches["reef-train-0000"].status == Status.COMPLETED
        and batches["reef-valid-0000"].status == Status.COMPLETED
    )
    stats = _run_stats(app_db_url, first.run_id)
    assert {k: stats[k] for k in ("submitted", "completed", "failed", "pending")} == {
        "submitted": 3,
        "completed": 2,
        "failed": 1,
        "pending": 0,
    }
    assert server.report(project)["images"] == 7

    server.configure(script={})
    requests_before = server.report(project)["upload_requests"]
    retry = run_dag(
        "roboflow_upload",
        conf={**conf, "retry_failed_only": True, "dataset_dir": "/nonexistent/not/scanned"},
    )
    assert retry.state == "success", retry.task_states
    assert server.report(project)["upload_requests"] == requests_before + 1  # only the failed image
    assert server.report(project)["images"] == 8
    assert _batches(app_db_url, project)["reef-train-0001"].status == Status.COMPLETED
    stats = _run_stats(app_db_url, retry.run_id)
    assert {k: stats[k] for k in ("submitted", "completed", "failed", "pending")} == {
        "submitted": 1,
        "completed": 1,
        "failed": 0,
        "pending": 0,
    }

    # nothing failed any more: an empty retry maps no batch and still verifies the counts
    empty = run_dag("roboflow_upload", conf={**conf, "retry_failed_only": True})
    assert empty.state == "success", empty.task_states
    assert _run_stats(app_db_url, empty.run_id)["submitted"] == 0
    assert server.report(project)["upload_requests"] == requests_before + 1


def test_silent_loss_is_caught_by_the_count_check(
    rf_conn, run_dag, app_db_url, tmp_path: Path
) -> None:
    server = rf_conn
    info = generate_dataset(
        tmp_path / "lossy", n_train=4, n_valid=0, n_test=0, n_neither=0, bad=False
    )
    project = server.new_project("main")
    server.configure(script={"train_0002.jpg": ["drop"]})  # 200 success, but nothing stored
    result = run_dag(
        "roboflow_upload",
        conf={"dataset_dir": info["dataset_dir"], "project": project, "batch_size": 10},
    )
    assert result.state == "failed"
    assert result.task_states["verify"] == "failed" and result.task_states["report"] == "success"
    assert server.report(project)["images"] == 3 and server.report(project)["dropped"] == [
        "train_0002.jpg"
    ]
    # every image was acknowledged (stats taken before the check): only the count check failed the run
    stats = _run_stats(app_db_url, result.run_id)
    assert stats["images"] == {"submitted": 4, "completed": 4, "failed": 0, "pending": 0}
    # the shortfall marked the project for re-sending: the retry restores the lost image, once
    assert {b.status for b in _batches(app_db_url, project).values()} == {Status.FAILED}
    retry = run_dag(
        "roboflow_upload",
        conf={
            "dataset_dir": info["dataset_dir"],
            "project": project,
            "batch_size": 10,
            "retry_failed_only": True,
        },
    )
    assert retry.state == "success", retry.task_states
    rep = server.report(project)
    assert (
        rep["images"] == 4
        and set(rep["stored_per_name"].values()) == {1}
        and rep["duplicates"] == 3
    )


def test_missing_project_fails_without_retrying(
    rf_conn, run_dag, app_db_url, tmp_path: Path
) -> None:
    info = generate_dataset(
        tmp_path / "nowhere", n_train=2, n_valid=0, n_test=0, n_neither=0, bad=False
    )
    result = run_dag(
        "roboflow_upload",
        conf={"dataset_dir": info["dataset_dir"], "project": "no-such-project", "batch_size": 10},
    )
    assert result.state == "failed"
    assert result.task_states["upload_batch[0]"] == "failed"
    assert result.task_states["verify"] == "failed"
    stats = _run_stats(app_db_url, result.run_id)
    assert {k: stats[k] for k in ("submitted", "completed", "failed", "pending")} == {
        "submitted": 1,
        "completed": 0,
        "failed": 0,
        "pending": 1,
    }


def test_bad_params_fail_clearly(rf_conn, run_dag, tmp_path: Path) -> None:
    result = run_dag(
        "roboflow_upload", conf={"dataset_dir": str(tmp_path / "missing"), "project": "x"}
    )
    assert result.state == "failed" and result.task_states["plan"] == "failed"


def test_upload_on_the_sqlite_app_db(rf_conn, use_sqlite_app_db, run_dag, tmp_path: Path) -> None:
    """The demo's embedded default: the same DAG with ``imaging_db`` on SQLite."""
    server = rf_conn
    info = generate_dataset(
        tmp_path / "lite", n_train=5, n_valid=1, n_test=1, n_neither=0, bad=False
    )
    project = server.new_project("lite")
    server.configure(rates={"503": 0.2, "lost": 0.1}, seed=3)
    result = run_dag(
        "roboflow_upload",
        conf={"dataset_dir": info["dataset_dir"], "project": project, "batch_size": 2},
    )
    assert result.state == "success", result.task_states
    rep = server.report(project)
    assert rep["images"] == 7 and set(rep["stored_per_name"].values()) == {1}
    stats = _run_stats(use_sqlite_app_db, result.run_id)
    assert {k: stats[k] for k in ("submitted", "completed", "failed", "pending")} == {
        "submitted": 5,
        "completed": 5,
        "failed": 0,
        "pending": 0,
    }


def test_dag_interface(airflow_db) -> None:
    """The public interface of issue 3: DAG id, params, one mapped upload task per batch with a cap."""
    from imaging.runner import load_dag

    dag = load_dag("roboflow_upload")
    assert set(dag.params) == {
        "dataset_dir",
        "project",
        "neither_project",
        "batch_size",
        "retry_failed_only",
        "tags",
    }
    assert {t.task_id for t in dag.tasks} == {"plan", "upload_batch", "report", "verify", "summary"}
    upload = dag.get_task("upload_batch")
    assert upload.max_active_tis_per_dag == 2 and upload.retries >= 2
    assert dag.get_task("report").trigger_rule == "all_done" == dag.get_task("verify").trigger_rule
    assert dag.max_active_runs == 1
