"""HyphaArtifactHook against the real Hypha server (artifact manager on the real rclone S3 server)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from imaging.hooks.hypha import DEFAULTS, HyphaArtifactHook, HyphaConnectionError
from include.common.local_services import free_port
from include.reef.upload import UploadFile

FAST = {
    "connect_backoff_base": 0.5,
    "connect_backoff_cap": 2,
    "commit_backoff_base": 0.5,
    "commit_backoff_cap": 2,
    "put_backoff_base": 0.2,
    "put_backoff_cap": 1,
    "rpc_timeout_s": 30,
}


def _set_conn(monkeypatch, server, **extra) -> None:
    conn = server.airflow_connection(workspace="reef-hook-tests")
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_HYPHA", json.dumps(conn))


def _files(tmp_path: Path, n: int, size: int = 1000) -> list[UploadFile]:
    out = []
    for i in range(n):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(size + i))
        out.append(UploadFile(str(p), f"d/sub{i % 3}/f{i}.bin", size + i))
    return out


def _get(hook: HyphaArtifactHook, aid: str, path: str) -> bytes:
    url = hook.call("get_file", hook.artifact_id(aid), file_path=path)
    r = httpx.get(url, timeout=30, follow_redirects=True)
    r.raise_for_status()
    return r.content


def test_defaults_are_the_original_uploaders_numbers(hypha_server, monkeypatch):
    _set_conn(monkeypatch, hypha_server)
    s = HyphaArtifactHook().settings
    assert s.server_url == hypha_server.url and s.workspace == "reef-hook-tests"
    assert (s.opt("connect_backoff_base"), s.opt("connect_backoff_cap")) == (5, 180)
    assert (s.opt("commit_backoff_base"), s.opt("commit_backoff_cap")) == (5, 60)
    assert s.opt("put_concurrency") == 25
    assert DEFAULTS["put_concurrency"] == 25


def test_stage_upload_commit_in_place_keeps_one_version(hypha_server, monkeypatch, tmp_path: Path):
    _set_conn(monkeypatch, hypha_server, multipart_threshold=6_000_000, part_size=5_242_880, **FAST)
    small = _files(tmp_path, 40)
    big_path = tmp_path / "big.bin"
    big_path.write_bytes(os.urandom(12_000_000))
    big = UploadFile(str(big_path), "big.bin", 12_000_000)  # 3 parts
    alias = f"ds-{time.time_ns()}"
    with HyphaArtifactHook() as hook:
        coll = hook.ensure_collection("hook-tests", {"name": "hook tests"})
        assert hook.ensure_collection("hook-tests", {"name": "hook tests"}) == coll
        hook.ensure_staged_dataset(alias, coll, {"name": alias})
        assert hook.is_staged(alias)
        up = hook.upload_files(alias, [*small, big])
        assert hook.list_files(alias, stage=True) == up
        art = hook.commit(alias, expected=up)
        assert [v["version"] for v in art["versions"]] == ["v0"]
        assert not hook.is_staged(alias)
        assert hook.list_files(alias) == up
        assert _get(hook, alias, "big.bin") == big_path.read_bytes()
        assert _get(hook, alias, small[7].remote) == Path(small[7].local).read_bytes()
        # a later edit is staged in place: overwriting a path adds no file and no version
        Path(small[0].local).write_bytes(b"changed" * 100)
        changed = UploadFile(small[0].local, small[0].remote, 700)
        hook.ensure_staged_dataset(alias, coll, {"name": alias})
        hook.upload_files(alias, [changed])
        art = hook.commit(alias)
        assert [v["version"] for v in art["versions"]] == ["v0"]
        listing = hook.list_files(alias)
        assert len(listing) == len(up) and listing[small[0].remote] == 700


def test_commit_whose_answer_was_lost_is_recognised(hypha_server, monkeypatch, tmp_path: Path):
    """A retry that finds the artifact already committed with the expected files counts as done."""
    _set_conn(monkeypatch, hypha_server, **FAST)
    alias = f"lost-{time.time_ns()}"
    files = _files(tmp_path, 3)
    with HyphaArtifactHook() as hook:
        coll = hook.ensure_collection("hook-tests", {"name": "hook tests"})
        hook.ensure_staged_dataset(alias, coll, {"name": alias})
        up = hook.upload_files(alias, files)
        hook.commit(alias, expected=up)
        art = hook.commit(alias, expected=up)  # not staged any more: refused, but committed
        assert [v["version"] for v in art["versions"]] == ["v0"]
        assert hook.stats["commit_retries"] == 0  # a remote refusal is not retried
        with pytest.raises(HyphaConnectionError, match="commit of"):
            hook.commit(alias, expected={**up, "other.bin": 5})


def test_connection_backoff_follows_min_cap_base_2n(monkeypatch):
    """Nothing listens on the port: every try fails; the waits are min(cap, base * 2**n)."""
    conn = {
        "conn_type": "generic",
        "host": f"http://127.0.0.1:{free_port()}",
        "password": "x",
        "extra": {"workspace": "w", "connect_attempts": 5, "rpc_timeout_s": 5},
    }
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_HYPHA", json.dumps(conn))
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    with (
        HyphaArtifactHook(sleep=record) as hook,
        pytest.raises(HyphaConnectionError, match="after 5 attempts"),
    ):
        hook.get_conn()
    assert waits == [5, 10, 20, 40]
    conn["extra"].update(connect_backoff_base=50, connect_attempts=4)
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_HYPHA", json.dumps(conn))
    waits.clear()
    with HyphaArtifactHook(sleep=record) as hook, pytest.raises(HyphaConnectionError):
        hook.get_conn()
    assert waits == [50, 100, 180]


def test_server_restart_between_upload_and_commit(hypha_server, monkeypatch, tmp_path: Path):
    """The cached connection dies with the server; the commit reconnects once it is back."""
    _set_conn(monkeypatch, hypha_server, **FAST, connect_attempts=12)
    alias = f"restart-{time.time_ns()}"
    files = _files(tmp_path, 10)
    with HyphaArtifactHook() as hook:
        coll = hook.ensure_collection("hook-tests", {"name": "hook tests"})
        hook.ensure_staged_dataset(alias, coll, {"name": alias})
        up = hook.upload_files(alias, files)
        hypha_server.stop()
        restarter = threading.Timer(3.0, hypha_server.start)
        restarter.start()
        try:
            art = hook.commit(alias, expected=up)
        finally:
            restarter.join()
        assert [v["version"] for v in art["versions"]] == ["v0"]
        assert hook.list_files(alias) == up
        assert hook.stats["connects"] >= 2


def test_failed_put_is_retried_with_a_fresh_url(hypha_server, monkeypatch, tmp_path: Path):
    """A file that vanishes locally is reported (a local error: not retried); the others are
    uploaded."""
    _set_conn(monkeypatch, hypha_server, **FAST, put_attempts=2)
    alias = f"putfail-{time.time_ns()}"
    files = _files(tmp_path, 5)
    Path(files[2].local).unlink()
    with HyphaArtifactHook() as hook:
        coll = hook.ensure_collection("hook-tests", {"name": "hook tests"})
        hook.ensure_staged_dataset(alias, coll, {"name": alias})
        from imaging.hooks.hypha import HyphaUploadError

        with pytest.raises(HyphaUploadError, match="1 of 5 file"):
            hook.upload_files(alias, files)
        assert hook.stats["put_retries"] == 0
        staged = hook.list_files(alias, stage=True)
        assert set(staged) == {f.remote for i, f in enumerate(files) if i != 2}


def test_hook_loop_thread_is_stopped_on_close(hypha_server, monkeypatch):
    _set_conn(monkeypatch, hypha_server, **FAST)
    hook = HyphaArtifactHook()
    hook.get_conn()
    t = hook._thread
    hook.close()
    assert t is not None and not t.is_alive()
    assert asyncio.iscoroutinefunction(hook._aget_am)


def _anonymous(server, aid: str, path: str = "") -> int:
    """What a browser without a token gets for the artifact's page (or one of its files)."""
    ws, alias = aid.split("/")
    url = f"{server.url}/{ws}/artifacts/{alias}" + (f"/files/{path}" if path else "")
    return httpx.get(url, timeout=30, follow_redirects=True).status_code


def test_collections_and_datasets_open_without_a_token(hypha_server, monkeypatch, tmp_path: Path):
    """New collections/datasets are public-read; ones created earlier without it (here: raw
    ``create`` calls, as the hook did before) get it on their next ``ensure_*``; the owner keeps
    full rights (it stages, uploads and commits again afterwards)."""
    _set_conn(monkeypatch, hypha_server, **FAST)
    tag = time.time_ns()
    files = _files(tmp_path, 2)
    with HyphaArtifactHook() as hook:
        coll = hook.ensure_collection(f"pub-{tag}", {"name": "public"})
        ds = hook.ensure_staged_dataset(f"pub-ds-{tag}", coll, {"name": "d"})["id"]
        up = hook.upload_files(ds, files)
        hook.commit(ds, expected=up)
        assert _anonymous(hypha_server, coll) == 200
        assert _anonymous(hypha_server, ds) == 200
        assert _anonymous(hypha_server, ds, files[0].remote) == 200

        # created earlier, without public read: a token is needed
        old_coll = hook.artifact_id(f"old-{tag}")
        hook.call("create", alias=old_coll, type="collection", manifest={"name": "old"})
        old_ds = hook.artifact_id(f"old-ds-{tag}")
        hook.call("create", alias=old_ds, parent_id=old_coll, type="dataset", manifest={"n": 1})
        assert _anonymous(hypha_server, old_coll) == 403
        assert _anonymous(hypha_server, old_ds) == 403
        owner = set(hook.read(old_ds)["config"]["permissions"])
        # the dataset's next upload (staged, then committed) publishes it with its commit
        hook.ensure_staged_dataset(old_ds, old_coll, {"n": 1})
        up = hook.upload_files(old_ds, files)
        art = hook.commit(old_ds, expected=up)
        assert art["config"]["permissions"]["*"] == "r"
        assert owner <= set(art["config"]["permissions"])  # the owner's entry is kept
        # (Hypha checks read on the collection too: still private until it is touched)
        assert _anonymous(hypha_server, old_ds) == 403
        # the collection: on its next ensure_collection (config kept, no new version)
        before = hook.read(old_coll)
        assert hook.ensure_collection(f"old-{tag}", {"name": "old"}) == old_coll
        after = hook.read(old_coll)
        assert after["config"]["permissions"] == {**before["config"]["permissions"], "*": "r"}
        assert after["config"].get("is_collection") == before["config"].get("is_collection")
        assert after["versions"] == before["versions"]
        assert _anonymous(hypha_server, old_coll) == 200
        assert _anonymous(hypha_server, old_ds) == 200
        assert _anonymous(hypha_server, old_ds, files[1].remote) == 200
        # the owner still edits and commits (full rights kept)
        hook.ensure_staged_dataset(old_ds, old_coll, {"n": 2})
        hook.call("edit", old_ds, manifest={"n": 2}, stage=True)
        hook.commit(old_ds)
        assert hook.read(old_ds)["manifest"] == {"n": 2}


def test_after_an_automatic_reconnection_the_service_is_fetched_again(
    hypha_server, monkeypatch, tmp_path: Path
):
    """The server restarts while the hook is idle between two steps; hypha-rpc reconnects its
    websocket by itself. The next calls fetch the artifact manager again on that connection (the
    old proxy names the old server's service: a call on it waits for the RPC timeout), without a
    new connection, and the upload commits once."""
    _set_conn(monkeypatch, hypha_server, **{**FAST, "rpc_timeout_s": 20}, connect_attempts=12)
    alias = f"refetch-{time.time_ns()}"
    files = _files(tmp_path, 8)
    with HyphaArtifactHook() as hook:
        coll = hook.ensure_collection("hook-tests", {"name": "hook tests"})
        hook.ensure_staged_dataset(alias, coll, {"name": alias})
        first = hook.upload_files(alias, files[:4])
        hypha_server.stop()
        hypha_server.start()
        deadline = time.monotonic() + 60
        while hook.stats["reconnects"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hook.stats["reconnects"] >= 1, hook.stats
        t0 = time.monotonic()
        up = {**first, **hook.upload_files(alias, files[4:])}
        art = hook.commit(alias, expected=up)
        took = time.monotonic() - t0
        assert [v["version"] for v in art["versions"]] == ["v0"] and not hook.is_staged(alias)
        assert hook.list_files(alias) == up
        assert hook.stats["service_refetches"] >= 1, hook.stats
        assert hook.stats["connects"] == 1 and hook.stats["rpc_timeouts"] == 0, hook.stats
        assert took < 15, took  # no call waited for the 20 s RPC timeout
