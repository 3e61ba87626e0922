"""Per-image upload with retries, against the fake Roboflow API through the real SDK (RoboflowHook).

Faults come from the fake server: 503, 429, timeouts, "lost" answers (stored, then an error: the retry
gets ``duplicate``), permanent 400s. Nothing may be lost and nothing stored twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.roboflow.batching import image_key, plan_batches
from include.roboflow.dataset import scan_dataset
from include.roboflow.models import Status
from include.roboflow.samples import generate_dataset
from include.roboflow.upload import ImageJob, RetryPolicy, is_retryable, upload_many, upload_one
from tests.fakes.roboflow_server import FakeRoboflowServer, shared_server

FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


@pytest.fixture(scope="module")
def server() -> FakeRoboflowServer:
    return shared_server()


@pytest.fixture
def hook(server: FakeRoboflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from imaging.hooks.roboflow import RoboflowHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_ROBOFLOW_DEFAULT", json.dumps(server.airflow_connection(upload_timeout=0.5))
    )
    yield RoboflowHook()
    server.configure(script={}, rates={}, latency_s=0.0, rate_limit_per_s=None)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    info = generate_dataset(
        tmp_path_factory.mktemp("rfu") / "ds",
        n_train=8,
        n_valid=2,
        n_test=2,
        n_neither=0,
        bad=False,
    )
    scan = scan_dataset(info["dataset_dir"])
    return {"scan": scan, **info}


def _jobs(scan, project: str, batch_size: int = 100) -> list[ImageJob]:
    jobs = []
    for plan in plan_batches(
        scan.items, batch_size=batch_size, dataset_name=scan.name, project=project
    ):
        for it in plan.items:
            jobs.append(
                ImageJob(
                    image_key(scan.name, it),
                    project,
                    it.path,
                    it.label_path,
                    plan.upload_split,
                    plan.batch_key,
                    ("t1", plan.split),
                )
            )
    return jobs


def test_upload_one_plain_success_keeps_split_batch_tags_and_annotation(
    server, hook, dataset
) -> None:
    project = server.new_project()
    job = _jobs(dataset["scan"], project)[-1]  # a test-split image
    out = upload_one(hook, job, labelmap=dataset["scan"].labelmap, policy=FAST)
    assert out.status == Status.COMPLETED, out.error
    assert out.attempts == 2 and out.annotated and not out.duplicate
    rep = server.report(project)
    name = Path(job.path).name
    assert rep["by_name"][name] == {
        "split": "test",
        "batch": job.batch_name,
        "tags": ["t1", "test"],
        "annotated": True,
    }
    assert hook.project_image_count(project) == 1


@pytest.mark.parametrize("faults", [["503"], ["429", "503"], ["timeout"], ["503", "503", "429"]])
def test_transient_faults_are_retried(server, hook, dataset, faults) -> None:
    project = server.new_project()
    job = _jobs(dataset["scan"], project)[0]
    server.configure(script={Path(job.path).name: list(faults)})
    sleeps: list[float] = []
    out = upload_one(hook, job, labelmap=dataset["scan"].labelmap, policy=FAST, sleep=sleeps.append)
    assert out.status == Status.COMPLETED, out.error
    assert out.attempts == len(faults) + 2  # image attempts + one annotation
    assert len(sleeps) == len(faults)
    for fault, slept in zip(faults, sleeps, strict=True):
        # full jitter in [0, cap]; a 429 carries Retry-After: 1, which is honoured
        assert (slept >= 1.0) if fault == "429" else (0.0 <= slept <= FAST.cap)
    rep = server.report(project)
    assert rep["images"] == 1 and rep["stored_per_name"] == {Path(job.path).name: 1}


@pytest.mark.parametrize("fault", ["lost", "lost_timeout"])
def test_lost_answer_then_duplicate_counts_as_confirmed(server, hook, dataset, fault) -> None:
    project = server.new_project()
    job = _jobs(dataset["scan"], project)[1]
    server.configure(script={Path(job.path).name: [fault]})
    out = upload_one(
        hook, job, labelmap=dataset["scan"].labelmap, policy=FAST, sleep=lambda s: None
    )
    assert out.status == Status.COMPLETED, out.error
    assert out.duplicate and any("duplicate after retry" in n for n in out.notes)
    rep = server.report(project)
    assert rep["images"] == 1 and rep["duplicates"] == 1 and rep["annotated"] == 1
    assert rep["stored_per_name"] == {Path(job.path).name: 1}


def test_annotation_is_retried_and_reannotation_is_not_an_error(server, hook, dataset) -> None:
    project = server.new_project()
    job = _jobs(dataset["scan"], project)[2]
    server.configure(script={Path(job.path).name: ["annotate_503"]})
    out = upload_one(
        hook, job, labelmap=dataset["scan"].labelmap, policy=FAST, sleep=lambda s: None
    )
    assert out.status == Status.COMPLETED and out.annotated, out.error
    again = upload_one(hook, job, labelmap=dataset["scan"].labelmap, policy=FAST)
    assert again.status == Status.COMPLETED and again.duplicate
    assert server.report(project)["images"] == 1


def test_permanent_error_is_not_retried_and_gives_a_clear_reason(server, hook, tmp_path) -> None:
    project = server.new_project()
    bogus = tmp_path / "fake.jpg"
    bogus.write_bytes(b"this is not a JPEG")
    job = ImageJob("k/fake.jpg", project, str(bogus), None, "train", "b")
    out = upload_one(hook, job, labelmap=None, policy=FAST)
    assert out.status == Status.FAILED and out.attempts == 1
    assert "HTTP 400" in (out.error or "") and "Invalid image" in (out.error or "")
    gone = ImageJob("k/gone.jpg", project, str(tmp_path / "gone.jpg"), None, "train", "b")
    out = upload_one(hook, gone, labelmap=None, policy=FAST)
    assert (
        out.status == Status.FAILED
        and out.attempts == 1
        and "FileNotFoundError" in (out.error or "")
    )


def test_retries_exhausted_fail_only_that_image(server, hook, dataset) -> None:
    project = server.new_project()
    jobs = _jobs(dataset["scan"], project)
    bad = Path(jobs[3].path).name
    server.configure(script={bad: ["503"] * 10})
    outs = upload_many(
        hook, jobs, workers=4, labelmap=dataset["scan"].labelmap, policy=FAST, sleep=lambda s: None
    )
    by_key = {o.image_key: o for o in outs}
    assert len(outs) == len(jobs)
    failed = [o for o in outs if o.status == Status.FAILED]
    assert [o.image_key for o in failed] == [jobs[3].image_key]
    assert failed[0].attempts == FAST.attempts and "HTTP 503" in (failed[0].error or "")
    assert all(by_key[j.image_key].status == Status.COMPLETED for j in jobs if j is not jobs[3])
    rep = server.report(project)
    assert rep["images"] == len(jobs) - 1 and set(rep["stored_per_name"].values()) == {1}


def test_random_faults_nothing_lost_nothing_twice(server, hook, dataset) -> None:
    project = server.new_project()
    jobs = _jobs(dataset["scan"], project)
    server.configure(rates={"503": 0.2, "429": 0.1, "lost": 0.1, "timeout": 0.05}, seed=7)
    outs = upload_many(
        hook,
        jobs,
        workers=4,
        labelmap=dataset["scan"].labelmap,
        policy=RetryPolicy(attempts=8, base=0.01, cap=0.05),
    )
    assert [o.error for o in outs if o.status != Status.COMPLETED] == []
    rep = server.report(project)
    assert rep["images"] == len(jobs) == hook.project_image_count(project)
    assert set(rep["stored_per_name"].values()) == {1}
    assert rep["annotated"] == len(jobs)
    assert rep["upload_requests"] > len(jobs)  # faults really happened


def test_real_rate_limit_429s_are_absorbed(server, hook, dataset) -> None:
    project = server.new_project()
    jobs = _jobs(dataset["scan"], project)
    server.configure(rate_limit_per_s=5)
    outs = upload_many(
        hook,
        jobs,
        workers=6,
        labelmap=dataset["scan"].labelmap,
        policy=RetryPolicy(attempts=10, base=0.2, cap=1.0),
    )
    assert all(o.status == Status.COMPLETED for o in outs), [o.error for o in outs]
    rep = server.report(project)
    assert rep["images"] == len(jobs) and rep["upload_requests"] > len(jobs)


def test_dead_service_stops_after_consecutive_failures(server, hook, dataset) -> None:
    project = server.new_project()
    jobs = _jobs(dataset["scan"], project)
    server.configure(rates={"503": 1.0})
    done: list[str] = []
    outs = upload_many(
        hook,
        jobs,
        workers=2,
        labelmap=None,
        policy=RetryPolicy(attempts=2, base=0.01, cap=0.02),
        on_done=lambda o: done.append(o.status),
        stop_after_failures=3,
    )
    statuses = [o.status for o in outs]
    assert len(outs) == len(jobs) == len(done)
    assert statuses.count(Status.FAILED) in (3, 4)  # the ones in flight when the limit was hit
    assert statuses.count(Status.PENDING) == len(jobs) - statuses.count(Status.FAILED)
    assert all("not attempted" in (o.error or "") for o in outs if o.status == Status.PENDING)
    assert server.report(project)["images"] == 0


def test_is_retryable_classification() -> None:
    class E(Exception):
        def __init__(self, status):
            super().__init__("x")
            self.status_code = status

    assert (
        is_retryable(E(None))
        and is_retryable(E(429))
        and is_retryable(E(503))
        and is_retryable(E(408))
    )
    assert not is_retryable(E(400)) and not is_retryable(E(401)) and not is_retryable(E(404))
    assert is_retryable(TimeoutError()) and not is_retryable(FileNotFoundError())


def test_retry_after_is_honoured_on_429(server, hook, dataset) -> None:
    project = server.new_project()
    job = _jobs(dataset["scan"], project)[4]
    server.configure(script={Path(job.path).name: ["429", "503"]})
    sleeps: list[float] = []
    out = upload_one(hook, job, labelmap=dataset["scan"].labelmap, policy=FAST, sleep=sleeps.append)
    assert out.status == Status.COMPLETED, out.error
    assert len(sleeps) == 2
    assert sleeps[0] >= 1.0  # the fake answers 429 with Retry-After: 1; the jitter alone is <= 0.05
    assert sleeps[1] <= FAST.cap  # 503 without Retry-After: plain full jitter


def test_parse_retry_after() -> None:
    from email.utils import formatdate

    from imaging.hooks.roboflow import parse_retry_after

    assert parse_retry_after("2") == 2.0 and parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    import time

    in_a_minute = parse_retry_after(formatdate(time.time() + 60, usegmt=True))
    assert in_a_minute is not None and 55 <= in_a_minute <= 61
