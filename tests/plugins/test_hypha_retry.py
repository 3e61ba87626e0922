"""The Hypha hook's retry policy on a fake artifact manager (no server): errors are classified by
type, and a call in flight when the client reconnects is sent again at once (issue 16.5)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from imaging.hooks.hypha import HyphaArtifactHook, HyphaConnectionError


class FakeRpc:
    def __init__(self) -> None:
        self.handlers: dict[str, list] = {}

    def on(self, event, handler) -> None:
        self.handlers.setdefault(event, []).append(handler)

    def fire(self, event, data=None) -> None:
        for h in self.handlers.get(event, []):
            h(data)


class FakeServer:
    def __init__(self, am=None) -> None:
        self.rpc = FakeRpc()
        self.am = am
        self.service_fetches = 0

    async def get_service(self, name):
        """After a reconnection the hook fetches the artifact manager again."""
        assert name == "public/artifact-manager"
        self.service_fetches += 1
        return self.am

    async def disconnect(self) -> None:
        pass


class FakeAM:
    def __init__(self, behaviour) -> None:
        self.calls = 0
        self.behaviour = behaviour

    async def read(self, *a, **kw):
        self.calls += 1
        return await self.behaviour(self.calls)


def _hook(monkeypatch, am: FakeAM, **extra) -> tuple[HyphaArtifactHook, FakeServer]:
    conn = {
        "conn_type": "generic",
        "host": "http://127.0.0.1:1",
        "extra": {"workspace": "w", "rpc_timeout_s": 20, "connect_backoff_base": 0.01, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_HYPHA", json.dumps(conn))
    hook = HyphaArtifactHook()
    server = FakeServer(am)

    async def connect_once():
        hook._watch_reconnects(server)
        hook._server, hook._am = server, am
        hook.stats["connects"] += 1
        return am

    monkeypatch.setattr(hook, "_connect_once", connect_once)
    return hook, server


def test_call_in_flight_is_resent_as_soon_as_the_client_reconnected(monkeypatch):
    async def behaviour(n):
        if n == 1:
            await asyncio.sleep(3600)  # the answer is lost with the old connection
        return {"ok": n}

    am = FakeAM(behaviour)
    hook, server = _hook(monkeypatch, am)
    with hook:
        hook.get_conn()
        loop = hook._ensure_loop()
        loop.call_later(0.3, server.rpc.fire, "connected", {})
        t0 = time.monotonic()
        assert hook.call("read", "w/x") == {"ok": 2}
        assert time.monotonic() - t0 < 5  # not the 20 s rpc timeout
    assert am.calls == 2 and hook.stats["connects"] == 1  # same (reconnected) client
    # ... whose artifact manager was fetched again (the old proxy names the old service)
    assert server.service_fetches == 1 and hook.stats["service_refetches"] == 1


def test_only_connection_errors_are_retried(monkeypatch):
    async def remote_error(n):
        raise RuntimeError("artifact is not in staging mode")  # a remote error: not retried

    am = FakeAM(remote_error)
    hook, _ = _hook(monkeypatch, am)
    with hook, pytest.raises(RuntimeError, match="staging"):
        hook.call("read", "w/x")
    assert am.calls == 1

    async def flaky(n):
        if n < 3:
            raise ConnectionResetError("reset by peer")
        return "fine"

    am2 = FakeAM(flaky)
    hook2, _ = _hook(monkeypatch, am2)
    with hook2:
        assert hook2.call("read", "w/x") == "fine"
    assert am2.calls == 3 and hook2.stats["connects"] == 3  # each retry on a new connection

    async def dead(n):
        raise TimeoutError("no answer")

    hook3, _ = _hook(monkeypatch, FakeAM(dead), connect_attempts=3)
    with hook3, pytest.raises(TimeoutError):
        hook3.call("read", "w/x")


def test_connect_gives_up_with_a_clear_error(monkeypatch):
    hook, _ = _hook(monkeypatch, FakeAM(None), connect_attempts=2)

    async def refuse():
        raise ConnectionRefusedError("nothing listens")

    monkeypatch.setattr(hook, "_connect_once", refuse)
    with hook, pytest.raises(HyphaConnectionError, match="after 2 attempts"):
        hook.get_conn()
