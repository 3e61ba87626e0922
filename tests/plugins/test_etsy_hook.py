"""EtsyHook against the local fake Etsy Open API v3 server (real HTTP, documented endpoints)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from include.design import etsy
from tests.fakes.etsy_server import FakeEtsyServer

CONN_ID = "etsy_hooktest"


def _use(server: FakeEtsyServer, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Any:
    from imaging.hooks.etsy import EtsyHook

    conn = server.airflow_connection()
    conn["extra"].update(extra)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return EtsyHook(etsy_conn_id=CONN_ID, backoff_base=0.05, backoff_cap=0.5)


@pytest.fixture
def server() -> Iterator[FakeEtsyServer]:
    srv = FakeEtsyServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    out = []
    for i, colour in enumerate(((200, 30, 30), (30, 200, 30))):
        p = tmp_path / f"mock_{i}.jpg"
        Image.new("RGB", (64, 48), colour).save(p)
        out.append(p)
    return out


def _payload(tag: str) -> dict[str, str]:
    listing = {"price": 18, "quantity": 5, "taxonomy_id": 2078, "tags": ["art print"]}
    return etsy.listing_payload(title="Art print", stem="bloom_01", listing=listing, tag=tag)


def _publish(hook: Any, tag: str, images: list[Path], known: int | None = None) -> Any:
    recorded: list[int] = []
    res = etsy.publish(
        hook,
        payload=_payload(tag),
        tag=tag,
        images=images,
        known_listing_id=known,
        on_listing=recorded.append,
    )
    assert recorded == ([] if known is not None else [res.listing_id])
    return res


def test_creates_draft_listing_and_uploads_images(server, monkeypatch, images) -> None:
    hook = _use(server, monkeypatch)
    res = _publish(hook, "d-abc123abc123", images)
    assert res.created and res.uploaded == [1, 2]
    listing = server.listings[res.listing_id]
    assert listing["state"] == "draft" and "d-abc123abc123" in listing["tags"]
    assert listing["title"] == "Art print, Wall Art Print" and listing["price"]["amount"] == 1800
    assert [i["rank"] for i in server.images(res.listing_id)] == [1, 2]


def test_retry_after_crash_adopts_the_listing_never_two(server, monkeypatch, images) -> None:
    hook = _use(server, monkeypatch)
    first = _publish(hook, "d-000000000001", images[:1])
    # the worker died before recording the listing id: the retry knows nothing
    again = _publish(hook, "d-000000000001", images)
    assert not again.created and again.listing_id == first.listing_id
    assert again.skipped == [1] and again.uploaded == [2]
    assert len(server.listings) == 1 and len(server.images(first.listing_id)) == 2
    # and with the id recorded: nothing to do
    third = _publish(hook, "d-000000000001", images, known=first.listing_id)
    assert third.uploaded == [] and third.skipped == [1, 2]


def test_lost_create_response_does_not_duplicate(server, monkeypatch, images) -> None:
    hook = _use(server, monkeypatch)
    server.fail(r"^POST .*/listings$", 502, times=1, after_effect=True)
    server.fail(r"^POST .*/images$", 500, times=1, after_effect=True)
    res = _publish(hook, "d-lost00000000", images)
    assert len(server.listings) == 1 and res.listing_id in server.listings
    assert [i["rank"] for i in server.images(res.listing_id)] == [1, 2]


def test_server_error_before_effect_is_raised_for_the_task_retry(
    server, monkeypatch, images
) -> None:
    hook = _use(server, monkeypatch)
    server.fail(r"^POST .*/listings$", 503, times=1)
    with pytest.raises(etsy.EtsyError) as err:
        _publish(hook, "d-fail00000000", images)
    assert err.value.status == 503 and not server.listings
    res = _publish(hook, "d-fail00000000", images)  # the Airflow retry
    assert res.created and len(server.listings) == 1


def test_get_requests_retry_server_errors(server, monkeypatch) -> None:
    hook = _use(server, monkeypatch)
    server.fail(r"^GET ", 500, times=2)
    assert hook.get_listings_by_shop()["count"] == 0
    assert [s for _, _, s in server.state.requests] == [500, 500, 200]


def test_rate_limit_429_is_respected(monkeypatch, images) -> None:
    srv = FakeEtsyServer(per_second=3).start()
    try:
        hook = _use(srv, monkeypatch, per_second=10)  # configured higher than the server allows
        t0 = time.monotonic()
        for _ in range(9):
            hook.get_listings_by_shop()
        elapsed = time.monotonic() - t0
        statuses = [s for _, _, s in srv.state.requests]
        assert statuses.count(200) == 9
        assert hook.limiter.per_second == 3  # adopted from x-limit-per-second
        assert elapsed >= 1.9  # 9 requests at 3/s
    finally:
        srv.stop()


def test_daily_quota_stops_without_hammering(monkeypatch) -> None:
    srv = FakeEtsyServer(per_day=3).start()
    try:
        hook = _use(srv, monkeypatch)
        for _ in range(3):
            hook.get_listings_by_shop()
        assert hook.limiter.remaining_today == 0
        with pytest.raises(etsy.EtsyQuotaExhausted):
            hook.get_listings_by_shop()
        assert (
            len(srv.state.requests) == 3
        )  # refused on our side, from the x-remaining-today header
    finally:
        srv.stop()


def test_daily_quota_429_from_server_is_not_retried(monkeypatch) -> None:
    srv = FakeEtsyServer(per_day=1).start()
    try:
        hook = _use(srv, monkeypatch)
        srv.state.used_today = 1  # used up by another process
        with pytest.raises(etsy.EtsyQuotaExhausted):
            hook.get_listings_by_shop()
        assert [s for _, _, s in srv.state.requests] == [429]
    finally:
        srv.stop()


def test_bad_token_fails_at_once(server, monkeypatch) -> None:
    from imaging.hooks.etsy import EtsyHook

    conn = server.airflow_connection()
    conn["password"] = "wrong"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    with pytest.raises(etsy.EtsyAuthError):
        EtsyHook(etsy_conn_id=CONN_ID).get_listings_by_shop()
    assert [s for _, _, s in server.state.requests] == [401]


def test_validation_error_is_reported(server, monkeypatch) -> None:
    hook = _use(server, monkeypatch)
    payload = _payload("d-x")
    del payload["title"]
    with pytest.raises(etsy.EtsyError, match="title"):
        hook.create_draft_listing(payload)
    assert len(server.state.requests) == 1


def test_hook_is_configured_only_with_a_connection(server, monkeypatch) -> None:
    from imaging.hooks.etsy import EtsyHook

    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", raising=False)
    assert not EtsyHook.is_configured(CONN_ID)
    _use(server, monkeypatch)
    assert EtsyHook.is_configured(CONN_ID)


def test_fake_server_runs_as_a_module(tmp_path: Path) -> None:
    import subprocess
    import sys

    from include.common.local_services import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.etsy_server", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        line = json.loads(proc.stdout.readline())
        assert line["url"].endswith(f":{port}")
        import requests

        r = requests.get(
            f"{line['url']}/v3/application/shops/424242/listings",
            headers={
                "x-api-key": "fakekeystring",
                "Authorization": "Bearer 123456.fake-oauth-token",
            },
            timeout=5,
        )
        assert r.status_code == 200 and r.headers["x-limit-per-second"] == "10"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
