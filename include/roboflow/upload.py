"""Upload images with their annotations: per-image retries with exponential backoff and full jitter,
and a bounded number of concurrent uploads.

The network side is an :class:`Uploader` (the Airflow ``RoboflowHook`` on the real SDK, whose
requests time out after the connection's ``upload_timeout``). Rules:

* a timeout, a connection error, HTTP 408/425/429 and 5xx are retried (``include.common.retry``:
  ``min(cap, base * 2**n)`` with full jitter, and at least the server's ``Retry-After`` when the
  uploader attaches it to the exception as ``retry_after``); any other HTTP error is permanent for
  that image;
* a ``duplicate`` answer means the API already holds that exact image — after a retry it usually
  means the first, "failed", request did arrive — so it confirms the image (no second copy exists);
* the annotation is sent after the image is confirmed, with the same retry rules; an "already
  annotated" answer confirms it too;
* a failure of one image never stops the others; after ``stop_after_failures`` consecutive image
  failures the remaining images are not attempted (they stay pending) so a dead service does not
  cost ``images × retries`` requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from include.common.retry import retrying
from include.roboflow.models import Status

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429})
MAX_RETRY_AFTER = 300.0  # seconds: a larger Retry-After is waited this long, then retried


class Uploader(Protocol):
    def upload_image(
        self,
        project: str,
        image_path: str,
        *,
        split: str,
        batch_name: str,
        tags: list[str] | None = None,
    ) -> dict[str, Any]: ...

    def save_annotation(
        self,
        project: str,
        annotation_path: str,
        *,
        image_id: str,
        labelmap: dict[int, str] | None,
        job_name: str,
    ) -> dict[str, Any]: ...


class RetryableUploadError(Exception):
    """An answer that should be retried (e.g. a 200 without an image id)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0


@dataclass(frozen=True)
class ImageJob:
    image_key: str
    project: str
    path: str
    label_path: str | None
    split: str
    batch_name: str
    tags: tuple[str, ...] = ()


@dataclass
class ImageOutcome:
    image_key: str
    status: str  # Status.COMPLETED / FAILED / PENDING (not attempted)
    remote_id: str | None = None
    duplicate: bool = False
    attempts: int = 0
    annotated: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def is_retryable(exc: BaseException) -> bool:
    """Network errors and timeouts (no HTTP status), 408/425/429 and 5xx are worth another try."""
    if isinstance(exc, RetryableUploadError):
        return True
    status = getattr(exc, "status_code", None)
    if status is None:
        return not isinstance(
            exc, (FileNotFoundError, PermissionError, IsADirectoryError, ValueError, TypeError)
        )
    return int(status) in RETRYABLE_STATUS or int(status) >= 500


def _call_with_retries(
    fn: Callable[[], dict[str, Any]],
    *,
    policy: RetryPolicy,
    name: str,
    sleep: Callable[[float], None],
    counter: list[int],
) -> dict[str, Any]:
    import tenacity

    retryer = retrying(
        attempts=policy.attempts,
        base=policy.base,
        cap=policy.cap,
        jitter=True,
        retry_on=(Exception,),
        sleep=sleep,
        name=name,
    )
    jitter = tenacity.wait_random_exponential(multiplier=policy.base, max=policy.cap)

    def wait(state: tenacity.RetryCallState) -> float:
        """Full-jitter backoff, but never shorter than the server's ``Retry-After``."""
        delay = jitter(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        return delay

    retryer = retryer.copy(retry=tenacity.retry_if_exception(is_retryable), wait=wait)

    def attempt() -> dict[str, Any]:
        counter[0] += 1
        return fn()

    return retryer(attempt)


def upload_one(
    uploader: Uploader,
    job: ImageJob,
    *,
    labelmap: dict[int, str] | None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> ImageOutcome:
    """Upload one image (and its label file); never raises for a per-image failure."""
    out = ImageOutcome(image_key=job.image_key, status=Status.FAILED)
    counter = [0]

    def send_image() -> dict[str, Any]:
        res = uploader.upload_image(
            job.project, job.path, split=job.split, batch_name=job.batch_name, tags=list(job.tags)
        )
        if not res or not res.get("id"):
            raise RetryableUploadError(f"the API answered without an image id: {res!r}")
        return res

    try:
        res = _call_with_retries(
            send_image, policy=policy, name=f"upload {job.image_key}", sleep=sleep, counter=counter
        )
    except Exception as exc:
        out.attempts = counter[0]
        out.error = f"image upload failed after {counter[0]} attempt(s): {_describe(exc)}"
        return out
    out.attempts = counter[0]
    out.remote_id = str(res["id"])
    out.duplicate = bool(res.get("duplicate"))
    if out.duplicate and counter[0] > 1:
        out.notes.append("duplicate after retry: an earlier attempt had reached the API")
    elif out.duplicate:
        out.notes.append("already in the project (duplicate)")

    if job.label_path and Path(job.label_path).read_text(encoding="utf-8").strip():
        ann_counter = [0]

        def send_annotation() -> dict[str, Any]:
            return uploader.save_annotation(
                job.project,
                job.label_path or "",
                image_id=out.remote_id or "",
                labelmap=labelmap,
                job_name=job.batch_name,
            )

        try:
            ann = _call_with_retries(
                send_annotation,
                policy=policy,
                name=f"annotate {job.image_key}",
                sleep=sleep,
                counter=ann_counter,
            )
        except Exception as exc:
            out.attempts += ann_counter[0]
            out.error = f"annotation failed after {ann_counter[0]} attempt(s): {_describe(exc)}"
            return out
        out.attempts += ann_counter[0]
        out.annotated = True
        if isinstance(ann, dict) and ann.get("warn"):
            out.notes.append(f"annotation: {ann['warn']}")
    out.status = Status.COMPLETED
    return out


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = str(exc) or type(exc).__name__
    return f"HTTP {status}: {text}" if status else f"{type(exc).__name__}: {text}"


def upload_many(
    uploader: Uploader,
    jobs: Iterable[ImageJob],
    *,
    workers: int,
    labelmap: dict[int, str] | None,
    policy: RetryPolicy = RetryPolicy(),
    on_start: Callable[[ImageJob], None] | None = None,
    on_done: Callable[[ImageOutcome], None] | None = None,
    stop_after_failures: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ImageOutcome]:
    """Upload ``jobs`` with at most ``workers`` in flight. ``on_start``/``on_done`` run in the calling
    thread (so they may use a DB session). Returns one outcome per job, in completion order."""
    workers = max(1, int(workers))
    pending: Iterator[ImageJob] = iter(jobs)
    outcomes: list[ImageOutcome] = []
    in_flight: dict[Future[ImageOutcome], ImageJob] = {}
    consecutive = 0
    stop = threading.Event()

    def submit_next(pool: ThreadPoolExecutor) -> bool:
        job = next(pending, None)
        if job is None:
            return False
        if on_start is not None:
            on_start(job)
        in_flight[
            pool.submit(upload_one, uploader, job, labelmap=labelmap, policy=policy, sleep=sleep)
        ] = job
        return True

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rf-upload") as pool:
        for _ in range(workers):
            if not submit_next(pool):
                break
        while in_flight:
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in done:
                job = in_flight.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # a bug, not an API answer: record it for this image
                    outcome = ImageOutcome(
                        job.image_key, Status.FAILED, error=f"unexpected error: {_describe(exc)}"
                    )
                outcomes.append(outcome)
                if on_done is not None:
                    on_done(outcome)
                consecutive = consecutive + 1 if outcome.status == Status.FAILED else 0
                if stop_after_failures and consecutive >= stop_after_failures and not stop.is_set():
                    stop.set()
                    log.error(
                        "%d images failed in a row: not attempting the rest of this batch",
                        consecutive,
                    )
                if not stop.is_set():
                    submit_next(pool)
    if stop.is_set():
        for job in pending:
            outcome = ImageOutcome(
                job.image_key,
                Status.PENDING,
                error=f"not attempted: {stop_after_failures} images failed in a row",
            )
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    return outcomes
