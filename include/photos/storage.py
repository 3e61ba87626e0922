"""S3 layout of the photo pipeline, idempotent uploads behind retries + a circuit breaker, and the
bucket lifecycle rules.

Layout (seed "S3 Storage Structure")::

    originals/YYYY/MM/DD/<image_id>.<ext>      kept forever (source data)
    thumbnails/YYYY/MM/DD/<image_id>.jpg       300x300, expire after 90 days (regenerable)
    annotated/YYYY/MM/DD/<processed_id>.jpg    expire after 30 days (regenerable)
    temp_uploads/<upload_session_id>/<file>    staged by the upload API, expire after 24 h

The date is the photo's EXIF capture date, else the upload session's date; keys never depend on
the wall clock, so a rerun writes the same keys. Every function takes the shared
:class:`include.common.storage.S3Store` (``S3Hook(aws_conn_id="imaging_s3")``: head, list and
get are the hook's calls) or a plain boto3 client.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from include.common.files import safe_name
from include.common.retry import CircuitBreakerError, circuit_breaker, retrying
from include.common.storage import S3Store

log = logging.getLogger(__name__)
T = TypeVar("T")

ORIGINALS, THUMBNAILS, ANNOTATED, TEMP_UPLOADS = (
    "originals",
    "thumbnails",
    "annotated",
    "temp_uploads",
)

LIFECYCLE_RULES: list[dict[str, Any]] = [
    {
        "ID": "photos-temp-uploads-24h",
        "Filter": {"Prefix": f"{TEMP_UPLOADS}/"},
        "Status": "Enabled",
        "Expiration": {"Days": 1},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    },
    {
        "ID": "photos-thumbnails-90d",
        "Filter": {"Prefix": f"{THUMBNAILS}/"},
        "Status": "Enabled",
        "Expiration": {"Days": 90},
    },
    {
        "ID": "photos-annotated-30d",
        "Filter": {"Prefix": f"{ANNOTATED}/"},
        "Status": "Enabled",
        "Expiration": {"Days": 30},
    },
    # originals/: no rule — kept indefinitely (critical data)
]

BREAKER_NAME = "photos-s3"


def _day(d: date | datetime | str) -> str:
    if isinstance(d, str):
        d = datetime.fromisoformat(d.replace("Z", "+00:00"))
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}"


def original_key(image_id: uuid.UUID | str, ext: str, day: date | datetime | str) -> str:
    return f"{ORIGINALS}/{_day(day)}/{image_id}.{ext.lower().lstrip('.')}"


def thumbnail_key(image_id: uuid.UUID | str, day: date | datetime | str, ext: str = "jpg") -> str:
    return f"{THUMBNAILS}/{_day(day)}/{image_id}.{ext}"


def annotated_key(processed_id: uuid.UUID | str, day: date | datetime | str) -> str:
    return f"{ANNOTATED}/{_day(day)}/{processed_id}.jpg"


def temp_upload_key(upload_session_id: uuid.UUID | str, filename: str) -> str:
    return f"{TEMP_UPLOADS}/{upload_session_id}/{safe_name(filename)}"


# --------------------------------------------------------------------------- resilience
def _transient_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    return (
        EndpointConnectionError,
        ConnectionClosedError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionError,
        TransientS3Error,
    )


class TransientS3Error(RuntimeError):
    """A 5xx/throttling answer worth retrying."""


def _classify(exc: Exception) -> Exception:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if status >= 500 or code in (
            "SlowDown",
            "RequestTimeout",
            "ServiceUnavailable",
            "InternalError",
        ):
            return TransientS3Error(f"S3 {code or status}: {exc}")
    return exc


def breaker():
    """The process-wide S3 circuit breaker (pybreaker). Thresholds from the environment:
    ``IMAGING_PHOTOS_BREAKER_FAIL_MAX`` (5) and ``IMAGING_PHOTOS_BREAKER_RESET_S`` (30)."""
    return circuit_breaker(
        BREAKER_NAME,
        fail_max=int(os.environ.get("IMAGING_PHOTOS_BREAKER_FAIL_MAX", "5")),
        reset_timeout=float(os.environ.get("IMAGING_PHOTOS_BREAKER_RESET_S", "30")),
        exclude=(_NotAFailure,),
    )


class _NotAFailure(Exception):
    """Wraps an expected client error (404, 403...) so the breaker does not count it."""

    def __init__(self, inner: Exception):
        super().__init__(str(inner))
        self.inner = inner


def s3_call(fn: Callable[..., T], *args: Any, attempts: int | None = None, **kwargs: Any) -> T:
    """Call ``fn`` through the circuit breaker with full-jitter retries on transient errors.

    Connection errors and 5xx count as breaker failures; 4xx answers (missing key...) are raised
    unchanged and do not. When the breaker is open, :class:`CircuitBreakerError` is raised at
    once (no retries): the task fails fast and Airflow's retries take over.
    """
    transient = _transient_errors()
    cb = breaker()

    def guarded() -> T:
        def inner() -> T:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - classified below
                cls = _classify(exc)
                if isinstance(cls, transient):
                    raise cls from exc
                raise _NotAFailure(exc) from exc

        try:
            return cb.call(inner)
        except _NotAFailure as wrapped:
            raise wrapped.inner from None

    policy = retrying(
        attempts=attempts or int(os.environ.get("IMAGING_PHOTOS_S3_ATTEMPTS", "4")),
        base=float(os.environ.get("IMAGING_PHOTOS_S3_BACKOFF_S", "0.2")),
        cap=5.0,
        jitter=True,
        retry_on=transient,
        give_up_on=(CircuitBreakerError,),
        name="s3",
    )
    return policy(guarded)


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _client(client: Any) -> Any:
    """The boto3 client of an :class:`~include.common.storage.S3Store` (the hook's), or
    ``client`` itself."""
    return client.client if isinstance(client, S3Store) else client


def head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """``head_object`` or ``None`` when the key does not exist (``S3Hook.head_object`` when
    ``client`` is an :class:`~include.common.storage.S3Store`)."""
    if isinstance(client, S3Store):
        return s3_call(client.head, key)
    try:
        return s3_call(client.head_object, Bucket=bucket, Key=key)
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise


def _meta(h: dict[str, Any]) -> dict[str, str]:
    # some servers (rclone) capitalise user-metadata keys: compare case-insensitively
    return {k.lower(): v for k, v in (h.get("Metadata") or {}).items()}


# printable ASCII other than "%" stays as it is in S3 user metadata; the rest is %-encoded
_META_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%")


def metadata_text(value: object) -> str:
    """An S3 user-metadata value (ASCII only) for any text, e.g. a user's file name: non-ASCII
    and control characters (and ``%``) are %-encoded, so ``urllib.parse.unquote`` gives it back."""
    from urllib.parse import quote

    return quote(str(value), safe=_META_SAFE)


def put_once(
    client: Any,
    bucket: str,
    key: str,
    body: bytes,
    content_type: str,
    metadata: dict[str, str] | None = None,
    sse: bool = True,
) -> str:
    """Upload ``body`` unless the same content (sha256 in the object metadata) is already there.

    Metadata values may be any text (made ASCII by :func:`metadata_text`).
    Returns ``"uploaded"`` or ``"exists"``. A different object under the same key is replaced
    only for regenerable prefixes (thumbnails/annotated); an original is never overwritten.
    """
    digest = hashlib.sha256(body).hexdigest()
    h = head(client, bucket, key)
    if h is not None:
        if _meta(h).get("sha256") == digest:
            return "exists"
        if key.startswith(f"{ORIGINALS}/"):
            raise FileExistsError(f"s3://{bucket}/{key} exists with different content")
    meta = {k: metadata_text(v) for k, v in (metadata or {}).items()}
    meta["sha256"] = digest
    extra: dict[str, Any] = {"ContentType": content_type, "Metadata": meta}
    if sse:
        extra["ServerSideEncryption"] = "AES256"
    s3_call(_client(client).put_object, Bucket=bucket, Key=key, Body=body, **extra)
    return "uploaded"


def get_bytes(client: Any, bucket: str, key: str) -> bytes:
    if isinstance(client, S3Store):
        return s3_call(client.get_bytes, key)

    def _get() -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    return s3_call(_get)


def list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, sorted (``S3Hook.list_keys`` through an ``S3Store``)."""
    if isinstance(client, S3Store):
        return s3_call(client.list_keys, prefix)
    keys: list[str] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        page = s3_call(client.list_objects_v2, **kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return sorted(keys)
        token = page.get("NextContinuationToken")


def ensure_lifecycle(
    client: Any, bucket: str, rules: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Merge our rules (by ``ID``) into the bucket's lifecycle configuration; a no-op when they
    are already there. Returns ``{"applied": bool, "changed": bool, "rules": [...ids],
    "reason": str|None}``; servers without lifecycle support (e.g. ``rclone serve s3``) give
    ``applied=False`` and the reason instead of failing the pipeline."""
    from botocore.exceptions import ClientError

    rules = rules or LIFECYCLE_RULES
    ids = [r["ID"] for r in rules]
    try:
        current = s3_call(_client(client).get_bucket_lifecycle_configuration, Bucket=bucket).get(
            "Rules"
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code != "NoSuchLifecycleConfiguration":
            return {"applied": False, "changed": False, "rules": ids, "reason": f"{code}: {exc}"}
        current = []
    current = current or []
    by_id = {r.get("ID"): r for r in current}
    wanted = {r["ID"]: r for r in rules}

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        keys = ("Filter", "Status", "Expiration", "AbortIncompleteMultipartUpload")
        return all(a.get(k) == b.get(k) for k in keys if k in b)

    if all(i in by_id and same(by_id[i], wanted[i]) for i in ids):
        return {"applied": True, "changed": False, "rules": ids, "reason": None}
    merged = [r for r in current if r.get("ID") not in wanted] + rules
    try:
        s3_call(
            _client(client).put_bucket_lifecycle_configuration,
            Bucket=bucket,
            LifecycleConfiguration={"Rules": merged},
        )
        back = (
            s3_call(_client(client).get_bucket_lifecycle_configuration, Bucket=bucket).get("Rules")
            or []
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return {"applied": False, "changed": False, "rules": ids, "reason": f"{code}: {exc}"}
    got = {r.get("ID") for r in back}
    if not set(ids) <= got:
        return {
            "applied": False,
            "changed": False,
            "rules": ids,
            "reason": "the server accepted the lifecycle configuration but does not return it "
            "(lifecycle unsupported)",
        }
    return {"applied": True, "changed": True, "rules": ids, "reason": None}


def presigned_get(client: Any, bucket: str, key: str, expires: int = 3600) -> str:
    """A presigned GET URL (the gallery's thumbnail/original links, 1 hour by default)."""
    return _client(client).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
    )
