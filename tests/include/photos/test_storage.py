"""S3 layout, idempotent uploads, lifecycle rules, retries and the circuit breaker — against the
real local S3 server (rclone) and, for lifecycle rules rclone does not implement, moto's server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from include.common.retry import CircuitBreakerError, reset_breakers
from include.photos import storage


@pytest.fixture(autouse=True)
def _fresh_breaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IMAGING_PHOTOS_S3_BACKOFF_S", "0.01")
    reset_breakers()
    yield
    reset_breakers()


def test_keys_are_deterministic_and_dated() -> None:
    iid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert storage.original_key(iid, "JPG", "2026-11-20T10:30:15") == (
        f"originals/2026/11/20/{iid}.jpg"
    )
    assert storage.thumbnail_key(iid, "2026-01-02") == f"thumbnails/2026/01/02/{iid}.jpg"
    assert storage.annotated_key(iid, "2026-01-02") == f"annotated/2026/01/02/{iid}.jpg"
    assert storage.temp_upload_key(iid, "../../etc/pass wd.jpg") == (
        f"temp_uploads/{iid}/etc_pass_wd.jpg"
    )


def test_put_once_is_idempotent_and_never_overwrites_an_original(s3_server: Any) -> None:
    c = s3_server.client()
    key = f"originals/2026/11/20/{uuid.uuid4()}.jpg"
    assert (
        storage.put_once(c, "imaging", key, b"one", "image/jpeg", {"image_id": "x"}) == "uploaded"
    )
    assert storage.put_once(c, "imaging", key, b"one", "image/jpeg", {"image_id": "x"}) == "exists"
    h = storage.head(c, "imaging", key)
    assert h is not None and h["ContentType"] == "image/jpeg"
    assert h.get("ServerSideEncryption") == "AES256"
    assert {k.lower() for k in h["Metadata"]} >= {"image_id", "sha256"}
    with pytest.raises(FileExistsError):
        storage.put_once(c, "imaging", key, b"two", "image/jpeg")
    # regenerable prefixes are replaced
    tkey = f"thumbnails/2026/11/20/{uuid.uuid4()}.jpg"
    storage.put_once(c, "imaging", tkey, b"a", "image/jpeg")
    assert storage.put_once(c, "imaging", tkey, b"b", "image/jpeg") == "uploaded"
    assert storage.get_bytes(c, "imaging", tkey) == b"b"
    assert storage.head(c, "imaging", "originals/missing.jpg") is None


def test_metadata_of_any_text_round_trips(s3_server: Any) -> None:
    from urllib.parse import unquote

    c = s3_server.client()
    key = f"temp_uploads/{uuid.uuid4()}/a.jpg"
    name = "Ünïcode ✓ 100% a/b\tc.jpg"
    storage.put_once(c, "imaging", key, b"x", "image/jpeg", {"original_filename": name})
    h = storage.head(c, "imaging", key)
    assert h is not None
    meta = {k.lower(): v for k, v in h["Metadata"].items()}
    assert meta["original_filename"].isascii() and unquote(meta["original_filename"]) == name
    assert storage.metadata_text("plain name.jpg") == "plain name.jpg"


def test_lifecycle_unsupported_by_rclone_is_reported_not_fatal(s3_server: Any) -> None:
    res = storage.ensure_lifecycle(s3_server.client(), "imaging")
    assert res["applied"] is False and res["reason"]
    assert res["rules"] == [r["ID"] for r in storage.LIFECYCLE_RULES]


def test_lifecycle_rules_set_once_and_merged_on_moto() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        c.create_bucket(Bucket="photos")
        other = {
            "ID": "keep-me",
            "Filter": {"Prefix": "logs/"},
            "Status": "Enabled",
            "Expiration": {"Days": 7},
        }
        c.put_bucket_lifecycle_configuration(
            Bucket="photos", LifecycleConfiguration={"Rules": [other]}
        )
        first = storage.ensure_lifecycle(c, "photos")
        assert first["applied"] and first["changed"] and first["reason"] is None
        again = storage.ensure_lifecycle(c, "photos")
        assert again["applied"] and not again["changed"]
        rules = {r["ID"]: r for r in c.get_bucket_lifecycle_configuration(Bucket="photos")["Rules"]}
        assert rules["photos-temp-uploads-24h"]["Expiration"] == {"Days": 1}
        assert rules["photos-thumbnails-90d"]["Expiration"] == {"Days": 90}
        assert rules["photos-annotated-30d"]["Expiration"] == {"Days": 30}
        assert "keep-me" in rules
        assert not any(r["Filter"].get("Prefix") == "originals/" for r in rules.values())


def _dead_client() -> Any:
    import boto3
    from botocore.config import Config

    from include.common.local_services import free_port

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        aws_access_key_id="a",
        aws_secret_access_key="b",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )


def test_breaker_opens_after_repeated_failures_and_fails_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from botocore.exceptions import EndpointConnectionError

    monkeypatch.setenv("IMAGING_PHOTOS_BREAKER_FAIL_MAX", "3")
    monkeypatch.setenv("IMAGING_PHOTOS_BREAKER_RESET_S", "60")
    c = _dead_client()
    calls = {"n": 0}

    def counted(**kw: Any) -> Any:
        calls["n"] += 1
        return c.head_object(**kw)

    # 3 consecutive connection failures (with retries) open the breaker
    with pytest.raises((CircuitBreakerError, EndpointConnectionError)):
        storage.s3_call(counted, Bucket="imaging", Key="k", attempts=5)
    assert storage.breaker().current_state == "open"
    n = calls["n"]
    t = time.perf_counter()
    with pytest.raises(CircuitBreakerError):
        storage.s3_call(counted, Bucket="imaging", Key="k")
    assert calls["n"] == n  # not even tried
    assert time.perf_counter() - t < 0.5


def test_client_errors_do_not_trip_the_breaker(s3_server: Any, monkeypatch) -> None:
    monkeypatch.setenv("IMAGING_PHOTOS_BREAKER_FAIL_MAX", "2")
    c = s3_server.client()
    for _ in range(5):
        assert storage.head(c, "imaging", f"nope/{uuid.uuid4()}") is None
    assert storage.breaker().current_state == "closed"
