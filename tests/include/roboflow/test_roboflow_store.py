"""Upload state in the app database (real PostgreSQL and SQLite): plans are idempotent, confirmed
images are never re-queued, batch states follow their images, stats and the count check."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy import func, select

from include.common.db import make_engine, session_scope
from include.common.items import status_counts
from include.common.models import ItemRecord
from include.roboflow import store
from include.roboflow.batching import image_key, plan_batches
from include.roboflow.dataset import scan_dataset
from include.roboflow.models import PIPELINE, RoboflowBatch, RoboflowImage, Status
from include.roboflow.samples import generate_dataset
from include.roboflow.stats import (
    batch_stats,
    check_counts,
    confirmed_per_project,
    format_stats,
    image_stats,
    save_run_stats,
)
from include.roboflow.upload import ImageOutcome

_n = itertools.count()


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory):
    info = generate_dataset(
        tmp_path_factory.mktemp("rfs") / "ds", n_train=5, n_valid=2, n_test=1, n_neither=2
    )
    return scan_dataset(info["dataset_dir"])


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest):
    url = request.getfixturevalue(
        "pg_app_db_url" if request.param == "postgresql" else "sqlite_app_db_url"
    )
    return make_engine(url)


def _plan(engine, scan, project, neither=None, batch_size=3):
    plans = plan_batches(
        scan.items,
        batch_size=batch_size,
        dataset_name=scan.name,
        project=project,
        neither_project=neither,
    )
    with session_scope(engine) as s:
        store.record_scan_issues(s, scan.name, scan.issues, "run-1")
        store.record_plan(s, plans, dataset_dir=scan.root, dataset_name=scan.name, run_id="run-1")
    return plans


def _complete(engine, project, plan, failed=()):
    with session_scope(engine) as s:
        store.start_batch(s, store.BatchRef(project, plan.batch_key), "run-1")
        for it in plan.items:
            key = image_key("ds", it)
            if it.rel_path in failed:
                out = ImageOutcome(key, Status.FAILED, attempts=5, error="HTTP 503: down")
            else:
                out = ImageOutcome(
                    key, Status.COMPLETED, remote_id="id-" + it.sha256[:8], attempts=2
                )
            store.record_outcome(s, project, out, "run-1")
        return store.refresh_batch(s, store.BatchRef(project, plan.batch_key), error="first error")


def test_plan_record_is_idempotent_and_keeps_confirmed_images(engine, scan) -> None:
    project, neither = f"p{next(_n)}", f"n{next(_n)}"
    plans = _plan(engine, scan, project, neither)
    assert [p.batch_key for p in plans] == [
        "ds-train-0000",
        "ds-train-0001",
        "ds-valid-0000",
        "ds-test-0000",
        "ds-neither-0000",
    ]
    assert _complete(engine, project, plans[0]) == Status.COMPLETED
    assert (
        _complete(engine, project, plans[1], failed={plans[1].items[0].rel_path}) == Status.FAILED
    )
    _plan(engine, scan, project, neither)  # rerun: same plan
    with session_scope(engine) as s:
        rows = {
            b.batch_key: b
            for b in s.scalars(select(RoboflowBatch).where(RoboflowBatch.project == project))
        }
        assert (
            rows["ds-train-0000"].status == Status.COMPLETED
            and rows["ds-train-0000"].n_completed == 3
        )
        assert (
            rows["ds-train-0001"].status == Status.PENDING
        )  # failed image re-queued by a normal run
        assert rows["ds-valid-0000"].n_images == 2
        n_images = s.scalar(
            select(func.count()).select_from(RoboflowImage).where(RoboflowImage.project == project)
        )
        assert n_images == 8
        _b, jobs = store.batch_jobs(s, store.BatchRef(project, "ds-train-0000"))
        assert jobs == []  # confirmed images are never sent again
        _b, jobs = store.batch_jobs(s, store.BatchRef(project, "ds-train-0001"), tags=["extra", ""])
        assert len(jobs) == 1 and jobs[0].tags == ("extra", "ds", "train")  # only the failed one
        _b, jobs = store.batch_jobs(s, store.BatchRef(neither, "ds-neither-0000"))
        assert [j.split for j in jobs] == ["train", "train"] and _b.split == "neither"
        errs = {
            r.item_key: r.status
            for r in s.scalars(
                select(ItemRecord).where(
                    ItemRecord.pipeline == PIPELINE, ItemRecord.kind == "scan_error"
                )
            )
            if r.item_key.startswith("ds/")
        }
    assert errs == {f"ds/{i.rel_path}": "failed" for i in scan.issues}


def test_changed_content_is_sent_again(engine, scan, tmp_path: Path) -> None:
    project = f"p{next(_n)}"
    plans = _plan(engine, scan, project)
    _complete(engine, project, plans[0])
    changed = [
        it if i else type(it)(**{**it.__dict__, "sha256": "0" * 64})
        for i, it in enumerate(plans[0].items)
    ]
    again = plan_batches(changed, batch_size=3, dataset_name="ds", project=project)
    with session_scope(engine) as s:
        store.record_plan(s, again, dataset_dir=scan.root, dataset_name="ds", run_id="run-2")
        _b, jobs = store.batch_jobs(s, store.BatchRef(project, "ds-train-0000"))
    assert [j.image_key for j in jobs] == [image_key("ds", plans[0].items[0])]


def test_failed_batches_stats_and_counts(engine, scan) -> None:
    project = f"p{next(_n)}"
    plans = _plan(engine, scan, project)
    refs = [store.BatchRef(project, p.batch_key) for p in plans]
    _complete(engine, project, plans[0])
    _complete(engine, project, plans[1], failed={plans[1].items[1].rel_path})
    with session_scope(engine) as s:
        store.start_batch(s, refs[2], "run-1")  # interrupted: stays submitted
        assert store.batches_with_status(s, [project], [Status.FAILED]) == [refs[1]]
        b = batch_stats(s, refs)
        i = image_stats(s, refs)
        row = s.scalar(
            select(RoboflowBatch).where(
                RoboflowBatch.batch_key == refs[1].batch_key, RoboflowBatch.project == project
            )
        )
        assert row.error == "first error" and row.n_failed == 1 and row.n_completed == 1
        stats = {**b, "batches": b, "images": i}
        save_run_stats(s, f"run-{project}", stats)
        assert status_counts(s, PIPELINE, "run_stats").get("failed", 0) >= 1
        confirmed = confirmed_per_project(s, [project, "nobody"])
    assert b == {"submitted": 4, "completed": 1, "failed": 1, "pending": 2}
    assert i == {"submitted": 8, "completed": 4, "failed": 1, "pending": 3}
    assert confirmed == {project: 4, "nobody": 0}
    assert "1 failed" in format_stats(stats)
    assert check_counts(confirmed, {project: 4, "nobody": 0}) == []
    problems = check_counts(confirmed, {project: 3})
    assert len(problems) == 2
    assert any(f"project {project!r}" in m and "1 missing" in m for m in problems)
    assert any("'nobody'" in m and "no image count" in m for m in problems)


def test_unknown_batch_is_a_clear_error(engine) -> None:
    with session_scope(engine) as s, pytest.raises(KeyError, match="no planned batch"):
        store.batch_jobs(s, store.BatchRef("nope", "nope-train-0000"))


def test_count_shortfall_marks_the_project_for_resending(engine, scan) -> None:
    project = f"p{next(_n)}"
    plans = _plan(engine, scan, project)
    _complete(engine, project, plans[0])
    _complete(engine, project, plans[1], failed={plans[1].items[0].rel_path})
    with session_scope(engine) as s:
        assert store.mark_project_unverified(s, project, "count shortfall") == 4
        failed = store.batches_with_status(s, [project], [Status.FAILED])
        assert [r.batch_key for r in failed] == ["ds-train-0000", "ds-train-0001"]
        _b, jobs = store.batch_jobs(s, failed[0])
        assert len(jobs) == 3  # every image of the completed batch is sent again
        assert confirmed_per_project(s, [project]) == {project: 0}
