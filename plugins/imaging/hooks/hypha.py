"""Hypha artifact manager hook on the real ``hypha-rpc`` client.

Connection ``imaging_hypha``: ``host`` = server URL, ``password`` = token, ``extra.workspace`` =
workspace of the artifacts (created persistent if the token may create it). Other extras (the
original reef uploader's numbers are the defaults):

==========================  ==========  ======================================================
extra                       default     meaning
==========================  ==========  ======================================================
connect_attempts            10          connection tries, backoff ``min(cap, base * 2**n)`` s
connect_backoff_base        5
connect_backoff_cap         180
commit_attempts             6           commit tries, each on a fresh connection
commit_backoff_base         5
commit_backoff_cap          60
put_concurrency             25          concurrent presigned PUTs
put_attempts                5           tries per file (new presigned URL each time)
put_backoff_base            1
put_backoff_cap             30
timeout_base_s              60          per-file timeout = base + size / min rate
timeout_min_rate_bps        1000000
multipart_threshold         16777216    files at least this big go multipart
part_size                   8388608     multipart part size (grown to stay <= 10,000 parts)
rpc_timeout_s               120         one RPC call
url_batch                   10          files per ``put_file`` RPC (one call, many URLs)
public_read                 1           collections and datasets readable by anyone (no token)
==========================  ==========  ======================================================

Public read: the run summaries link to the artifacts' HTTP pages (``<server>/<ws>/artifacts/<alias>``),
which a user opens in a browser without a Hypha token. Collections and datasets are therefore created
with ``config={"permissions": {"*": "r", ...}}`` (the server adds the creator with ``"*"``: the owner
keeps full rights), and one created earlier without it gets ``"*": "r"`` added to its own
permissions (the rest of its config kept) the next time :meth:`HyphaArtifactHook.ensure_collection` /
:meth:`HyphaArtifactHook.ensure_staged_dataset` touches it (a staged dataset takes it with its commit).
``public_read: 0`` keeps new ones private (workspace members only); it does not take ``"*"`` away
from artifacts that already have it.

The hypha-rpc client is asyncio-only; the hook runs one event loop in a daemon thread and exposes a
synchronous API. The connection is cached (``get_conn``).

Retries: one tenacity policy (:meth:`HyphaArtifactHook._policy`, backoff ``min(cap, base * 2**n)``)
for connecting, RPC calls, presigned PUTs and commits; errors are classified by type
(:data:`RETRYABLE`: connection errors, timeouts, HTTP transport errors, a PUT refused by the store,
:class:`HyphaReconnected`); anything else (a remote error such as "not found") is raised at once.
A call in flight when the client's websocket reconnects by itself (hypha-rpc fires ``connected``)
ends right away with :class:`HyphaReconnected` and is sent again on the new connection, instead of
waiting for ``rpc_timeout_s``; the artifact-manager service is then fetched again on the new
connection (``get_service``): the server's service id changes when it restarts, and a call on the old
service proxy would only end with the RPC timeout. ``put_concurrency`` can be lowered per hook (``HyphaArtifactHook(
put_concurrency=5)``) so that several upload tasks share the Hypha pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import httpx
import tenacity
from airflow.sdk import BaseHook

from include.reef.upload import UploadFile, part_ranges, timeout_for

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULTS: dict[str, float] = {
    "connect_attempts": 10,
    "connect_backoff_base": 5,
    "connect_backoff_cap": 180,
    "commit_attempts": 6,
    "commit_backoff_base": 5,
    "commit_backoff_cap": 60,
    "put_concurrency": 25,
    "put_attempts": 5,
    "put_backoff_base": 1,
    "put_backoff_cap": 30,
    "timeout_base_s": 60,
    "timeout_min_rate_bps": 1_000_000,
    "multipart_threshold": 16 * 1024 * 1024,
    "part_size": 8 * 1024 * 1024,
    "rpc_timeout_s": 120,
    "url_batch": 10,
    "public_read": 1,
}

#: The permission entry that lets anyone (no token) read an artifact, list and download its files.
PUBLIC_READ: dict[str, str] = {"*": "r"}
#: Keys the server adds to a ``read`` answer's config (counts): not written back with an edit.
_DERIVED_CONFIG_KEYS = ("child_count", "vector_count")


class HyphaConnectionError(ConnectionError):
    """The server could not be reached after all retries."""


class HyphaUploadError(RuntimeError):
    """A file could not be uploaded after all retries."""


class HyphaReconnected(ConnectionError):
    """The client reconnected while a call was in flight: send it again on the new connection."""


class PresignedPutError(HyphaUploadError):
    """The object store refused a presigned PUT (expired URL, server error): retried, new URL."""


#: What is worth another try; everything else is raised at once.
RETRYABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # incl. HyphaReconnected, refused/reset connections
    TimeoutError,  # incl. asyncio.TimeoutError
    httpx.TransportError,
    PresignedPutError,
)


@dataclass(frozen=True)
class HyphaSettings:
    server_url: str
    token: str | None
    workspace: str
    options: dict[str, float]

    def opt(self, key: str) -> float:
        return self.options[key]


class HyphaArtifactHook(BaseHook):
    """Create/stage/upload/commit/list artifacts in a Hypha artifact manager."""

    conn_name_attr = "hypha_conn_id"
    default_conn_name = "imaging_hypha"
    conn_type = "generic"
    hook_name = "Hypha artifact manager"

    def __init__(
        self,
        hypha_conn_id: str = default_conn_name,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        put_concurrency: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hypha_conn_id = hypha_conn_id
        self._put_concurrency = put_concurrency
        self._reconnected: asyncio.Event | None = None
        self._sleep = sleep or asyncio.sleep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._am: Any = None
        self._am_stale = False  # the client reconnected: fetch the service again before a call
        self._workspace_ready = False
        self.stats: dict[str, int] = {
            "connects": 0,
            "reconnects": 0,
            "service_refetches": 0,
            "rpc_timeouts": 0,
            "put_retries": 0,
            "commit_retries": 0,
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port", "login"],
            "relabeling": {"host": "Server URL", "password": "Token"},
            "placeholders": {"extra": '{"workspace": "reef-imaging", "put_concurrency": 25}'},
        }

    # ------------------------------------------------------------------ settings
    @cached_property
    def settings(self) -> HyphaSettings:
        conn = self.get_connection(self.hypha_conn_id)
        extra = conn.extra_dejson or {}
        url = conn.host or ""
        if not url.startswith(("http://", "https://")):
            scheme = extra.get("scheme", "https")
            url = f"{scheme}://{url}" + (f":{conn.port}" if conn.port else "")
        options = {k: float(extra.get(k, v)) for k, v in DEFAULTS.items()}
        if self._put_concurrency:
            options["put_concurrency"] = float(
                min(self._put_concurrency, options["put_concurrency"])
            )
        return HyphaSettings(
            url.rstrip("/"), conn.password or None, extra.get("workspace") or "", options
        )

    def artifact_id(self, alias: str) -> str:
        """``workspace/alias`` (an id that already has a workspace is returned as is)."""
        if "/" in alias:
            return alias
        ws = self.settings.workspace
        return f"{ws}/{alias}" if ws else alias

    # ------------------------------------------------------------------ event loop
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._loop.is_running():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=run, name="hypha-hook-loop", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
        return self._loop

    def _run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result()  # type: ignore[arg-type]

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self._drop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> HyphaArtifactHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ connection
    async def _drop(self) -> None:
        server, self._server, self._am = self._server, None, None
        self._am_stale = False
        if server is not None:
            with contextlib.suppress(Exception):  # it is already broken
                await asyncio.wait_for(server.disconnect(), 5)

    async def _connect_once(self) -> Any:
        from hypha_rpc import connect_to_server

        s = self.settings
        cfg: dict[str, Any] = {
            "server_url": s.server_url,
            "method_timeout": s.opt("rpc_timeout_s"),
        }
        if s.token:
            cfg["token"] = s.token
        server = await asyncio.wait_for(connect_to_server(cfg), s.opt("rpc_timeout_s"))
        try:
            am = await asyncio.wait_for(
                server.get_service("public/artifact-manager"), s.opt("rpc_timeout_s")
            )
            if s.workspace and not self._workspace_ready:
                await self._ensure_workspace(server)
        except BaseException:
            await asyncio.wait_for(server.disconnect(), 5)
            raise
        self._watch_reconnects(server)
        self._server, self._am, self._am_stale = server, am, False
        self.stats["connects"] += 1
        return am

    async def _refetch_service(self, server: Any) -> Any:
        """``get_service("public/artifact-manager")`` through a workspace-manager proxy fetched
        now: hypha-rpc 0.21 retargets the ``server`` proxy only from the second reconnection on
        (it takes the first ``manager_refreshed`` for the initial connection), so after the first
        one ``server.get_service`` still goes to the old server's manager and never answers."""
        rpc = getattr(server, "rpc", None)
        wm = server
        if rpc is not None and hasattr(rpc, "get_manager_service"):
            wm = await rpc.get_manager_service(
                {"timeout": self.settings.opt("rpc_timeout_s"), "case_conversion": "snake"}
            )
        return await wm.get_service("public/artifact-manager")

    async def _service(self) -> Any:
        """The artifact-manager proxy for the next call: connects when there is no connection;
        after hypha-rpc reconnected by itself, fetched again on that connection (the proxy of the
        old connection names a service that may no longer exist)."""
        if self._am is None or self._server is None:
            return await self._connect_once()
        if self._am_stale:
            self._am_stale = False
            try:
                self._am = await self._race(
                    self._refetch_service(self._server),
                    self.settings.opt("rpc_timeout_s"),
                    "get_service",
                )
            except BaseException:
                self._am_stale = True
                raise
            self.stats["service_refetches"] += 1
            log.info("Hypha reconnected: artifact manager service fetched again")
        return self._am

    def _watch_reconnects(self, server: Any) -> None:
        """hypha-rpc reconnects its websocket by itself and fires ``connected`` each time."""
        self._reconnected = asyncio.Event()
        rpc = getattr(server, "rpc", None)
        if rpc is not None and hasattr(rpc, "on"):
            rpc.on("connected", self._on_reconnected)

    def _on_reconnected(self, _info: Any = None) -> None:
        ev, self._reconnected = self._reconnected, asyncio.Event()
        self._am_stale = True  # the next call fetches the service again on the new connection
        self.stats["reconnects"] += 1
        if ev is not None:
            ev.set()  # every call waiting on the old connection ends now

    async def _race(self, aw: Awaitable[T], timeout: float, what: str) -> T:
        """``aw`` bounded by ``timeout``, ended early by a reconnection of the client."""
        ev = self._reconnected
        task = asyncio.ensure_future(aw)
        if ev is None:
            try:
                return await asyncio.wait_for(task, timeout)
            except TimeoutError:
                self.stats["rpc_timeouts"] += 1
                raise
        waiter = asyncio.ensure_future(ev.wait())
        try:
            done, _ = await asyncio.wait(
                {task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if waiter in done:
            raise HyphaReconnected(f"{what}: the connection was re-established mid-call")
        self.stats["rpc_timeouts"] += 1
        raise TimeoutError(f"{what}: no answer in {timeout:g} s")

    def _policy(self, kind: str, attempts: int | None = None) -> tenacity.AsyncRetrying:
        """The one retry policy: ``kind`` is ``connect``, ``put`` or ``commit`` (its settings
        ``<kind>_attempts``, ``<kind>_backoff_base``, ``<kind>_backoff_cap``); only
        :data:`RETRYABLE` errors are retried; a reconnection is retried at once."""
        s = self.settings
        n = attempts or int(s.opt(f"{kind}_attempts"))
        backoff = tenacity.wait_exponential(
            multiplier=s.opt(f"{kind}_backoff_base"), max=s.opt(f"{kind}_backoff_cap"), exp_base=2
        )

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return 0.0 if isinstance(exc, HyphaReconnected) else backoff(state)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if kind in ("put", "commit"):
                self.stats[f"{kind}_retries"] += 1
            log.warning(
                "Hypha %s failed (try %d/%d: %s: %s); retrying in %.1f s",
                kind,
                state.attempt_number,
                n,
                type(exc).__name__,
                exc,
                state.next_action.sleep if state.next_action else 0.0,
            )

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(n),
            wait=wait,
            retry=tenacity.retry_if_exception_type(RETRYABLE),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    async def _ensure_workspace(self, server: Any) -> None:
        """Artifacts can only be created in a persistent workspace: create it when missing."""
        ws = self.settings.workspace
        if server.config.workspace == ws:
            self._workspace_ready = True
            return
        try:
            await server.create_workspace(
                {"name": ws, "description": "imaging pipelines", "persistent": True},
                overwrite=False,
            )
            log.info("created persistent Hypha workspace %s", ws)
        except Exception as exc:
            if "already exists" not in str(exc):
                raise
        self._workspace_ready = True

    async def _aget_am(self) -> Any:
        if self._am is not None and not self._am_stale:
            return self._am
        s = self.settings
        try:
            async for attempt in self._policy("connect"):
                with attempt:
                    try:
                        return await self._service()
                    except HyphaReconnected:
                        raise
                    except RETRYABLE:
                        await self._drop()
                        raise
        except RETRYABLE as exc:
            raise HyphaConnectionError(
                f"cannot connect to Hypha at {s.server_url} after "
                f"{int(s.opt('connect_attempts'))} attempts: {type(exc).__name__}: {exc}"
            ) from exc
        raise AssertionError("unreachable")

    def get_conn(self) -> Any:
        """The artifact-manager service proxy (connected, cached)."""
        return self._run(self._aget_am())

    async def _call(
        self, method: str, *args: Any, attempts: int | None = None, **kwargs: Any
    ) -> Any:
        """One artifact-manager RPC under the retry policy: a connection problem drops the
        connection (the next try reconnects); a reconnection mid-call retries at once."""
        s = self.settings
        async for attempt in self._policy("connect", attempts):
            with attempt:
                try:
                    am = await self._service()
                    return await self._race(
                        getattr(am, method)(*args, **kwargs), s.opt("rpc_timeout_s"), method
                    )
                except HyphaReconnected:
                    raise
                except RETRYABLE:
                    await self._drop()
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._call(method, *args, **kwargs))

    # ------------------------------------------------------------------ artifacts
    async def _aread(self, artifact_id: str, stage: bool = False) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"silent": True}
        if stage:
            kwargs["stage"] = True
        try:
            return await self._call("read", self.artifact_id(artifact_id), **kwargs)
        except Exception as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise

    def read(self, artifact_id: str, *, stage: bool = False) -> dict[str, Any] | None:
        """The artifact's committed record (``stage=True``: with its staged state; ``staging`` is
        None when it is not staged), or None when it does not exist."""
        return self._run(self._aread(artifact_id, stage))

    def is_staged(self, artifact_id: str) -> bool:
        art = self.read(artifact_id, stage=True)
        return art is not None and art.get("staging") is not None

    # ------------------------------------------------------------------ permissions
    def _new_config(self) -> dict[str, Any]:
        """The config a new collection/dataset is created with (the server adds its creator)."""
        if not self.settings.opt("public_read"):
            return {}
        return {"permissions": dict(PUBLIC_READ)}

    def _config_to_publish(self, art: dict[str, Any] | None) -> dict[str, Any] | None:
        """``art``'s whole config with public read added (``edit`` replaces the config, so the
        other keys and permissions, the owner's included, are kept), or None when nothing is to
        change (public read off, or ``"*"`` already has a permission of its own)."""
        if art is None or not self.settings.opt("public_read"):
            return None
        config = {
            k: v for k, v in dict(art.get("config") or {}).items() if k not in _DERIVED_CONFIG_KEYS
        }
        permissions = dict(config.get("permissions") or {})
        if "*" in permissions:
            return None
        config["permissions"] = {**permissions, **PUBLIC_READ}
        return config

    async def _publish_existing(self, aid: str, art: dict[str, Any], *, stage: bool) -> Any:
        """Add public read to an artifact created without it (``stage``: into its staged config,
        applied by the commit). A refusal (the token may edit files, not permissions) is logged:
        the upload goes on, only the links need a token."""
        config = self._config_to_publish(art)
        if config is None:
            return None
        kwargs: dict[str, Any] = {"config": config}
        if stage:
            kwargs["stage"] = True
        try:
            out = await self._call("edit", aid, **kwargs)
        except RETRYABLE:
            raise
        except Exception as exc:  # noqa: BLE001 - a remote refusal
            log.warning("cannot make %s readable without a token: %s", aid, exc)
            return None
        log.info("%s is now readable without a token", aid)
        return out

    def ensure_collection(self, alias: str, manifest: dict[str, Any]) -> str:
        """Create the collection if missing (committed, public read); return its id. An existing
        collection without public read gets it."""

        async def go() -> str:
            aid = self.artifact_id(alias)
            art = await self._aread(aid)
            if art is None:
                try:
                    await self._call(
                        "create",
                        alias=aid,
                        type="collection",
                        manifest=manifest,
                        config=self._new_config(),
                    )
                    return aid
                except Exception as exc:
                    if "already exists" not in str(exc).lower():
                        raise
                    art = await self._aread(aid)
            if art is not None:
                await self._publish_existing(aid, art, stage=False)
            return aid

        return self._run(go())

    def ensure_staged_dataset(
        self, alias: str, parent_id: str, manifest: dict[str, Any]
    ) -> dict[str, Any]:
        """Make sure the dataset exists and is in staging mode.

        New: created staged (its first commit makes ``v0``). Existing: ``edit(stage=True)``
        without a new version, so the commit updates the current version in place and a run,
        a rerun or a retry never adds versions. Already staged (a crashed run): left as is, the
        retried uploads overwrite the same paths.
        """

        async def go() -> dict[str, Any]:
            aid = self.artifact_id(alias)
            art = await self._aread(aid, stage=True)
            if art is None:
                try:
                    return await self._call(
                        "create",
                        alias=aid,
                        parent_id=self.artifact_id(parent_id),
                        type="dataset",
                        manifest=manifest,
                        config=self._new_config(),
                        stage=True,
                    )
                except Exception as exc:
                    if "already exists" not in str(exc).lower():
                        raise
                    art = await self._aread(aid, stage=True)
            if art is not None and art.get("staging") is None:
                art = await self._call("edit", aid, stage=True)
            if art is not None:
                art = await self._publish_existing(aid, art, stage=True) or art
            return art or {}

        return self._run(go())

    # ------------------------------------------------------------------ listing
    async def _alist(self, artifact_id: str, stage: bool, prefix: str = "") -> dict[str, int]:
        """Walk the artifact's folders breadth first, listing each level's folders concurrently
        (one RPC per folder: Hypha has no recursive listing)."""
        aid = self.artifact_id(artifact_id)
        out: dict[str, int] = {}
        sem = asyncio.Semaphore(8)

        async def one(d: str) -> list[str]:
            subdirs: list[str] = []
            offset = 0
            async with sem:
                while True:
                    kwargs: dict[str, Any] = {"limit": 1000, "offset": offset}
                    if d:
                        kwargs["dir_path"] = d
                    if stage:
                        kwargs["stage"] = True
                    items = await self._call("list_files", aid, **kwargs)
                    for it in items:
                        path = f"{d}/{it['name']}" if d else it["name"]
                        if it.get("type") == "directory":
                            subdirs.append(path)
                        else:
                            out[path] = int(it.get("size") or 0)
                    if len(items) < 1000:
                        return subdirs
                    offset += len(items)

        level = [prefix.strip("/")]
        while level:
            found = await asyncio.gather(*(one(d) for d in level))
            level = [d for sub in found for d in sub]
        return out

    def list_files(
        self, artifact_id: str, *, stage: bool = False, prefix: str = ""
    ) -> dict[str, int]:
        """Every file of the artifact (recursively; or under ``prefix``) as ``{path: size}``.
        A prefix that does not exist lists as empty."""
        try:
            return self._run(self._alist(artifact_id, stage, prefix))
        except Exception as exc:
            text = str(exc).lower()
            if prefix and ("not found" in text or "does not exist" in text):
                return {}
            raise

    # ------------------------------------------------------------------ upload
    async def _put_one(self, client: Any, aid: str, f: UploadFile, url: str | None) -> None:
        s = self.settings
        timeout = timeout_for(f.size, s.opt("timeout_base_s"), s.opt("timeout_min_rate_bps"))
        try:
            async for attempt in self._policy("put"):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        url = None  # a fresh presigned URL after a failure
                    if f.size >= s.opt("multipart_threshold"):
                        await self._put_multipart(client, aid, f)
                        return
                    if url is None:
                        url = await self._call("put_file", aid, file_path=f.remote)
                    with open(f.local, "rb") as fh:
                        data = fh.read()
                    r = await client.put(url, content=data, timeout=timeout)
                    if r.status_code >= 300:
                        raise PresignedPutError(
                            f"PUT {f.remote}: HTTP {r.status_code} {r.text[:200]}"
                        )
                    return
        except Exception as exc:
            raise HyphaUploadError(f"upload of {f.remote} failed: {exc}") from exc

    async def _put_multipart(self, client: Any, aid: str, f: UploadFile) -> None:
        s = self.settings
        ranges = part_ranges(f.size, int(s.opt("part_size")))
        info = await self._call(
            "put_file_start_multipart", aid, file_path=f.remote, part_count=len(ranges)
        )
        sem = asyncio.Semaphore(max(1, int(s.opt("put_concurrency")) // 5))
        parts: list[dict[str, Any]] = [{} for _ in ranges]

        async def one(i: int, off: int, length: int, url: str) -> None:
            async with sem:
                with open(f.local, "rb") as fh:
                    fh.seek(off)
                    data = fh.read(length)
                timeout = timeout_for(
                    length, s.opt("timeout_base_s"), s.opt("timeout_min_rate_bps")
                )
                r = await client.put(url, content=data, timeout=timeout)
                if r.status_code >= 300:
                    raise PresignedPutError(f"part {i + 1} of {f.remote}: HTTP {r.status_code}")
                parts[i] = {"part_number": i + 1, "etag": r.headers["ETag"].strip('"')}

        urls = {p["part_number"]: p["url"] for p in info["parts"]}
        await asyncio.gather(*(one(i, o, n, urls[i + 1]) for i, (o, n) in enumerate(ranges)))
        await self._call(
            "put_file_complete_multipart", aid, upload_id=info["upload_id"], parts=parts
        )

    def upload_files(self, artifact_id: str, files: Iterable[UploadFile]) -> dict[str, int]:
        """Upload ``files`` into the staged artifact, ``put_concurrency`` at a time.

        Small files get their presigned URLs in batches (one RPC for ``url_batch`` files); large
        ones go multipart. Each file is retried on its own; the first file that fails every try
        raises :class:`HyphaUploadError` after the others finished. Returns ``{path: size}``.
        """
        files = list(files)

        async def go() -> dict[str, int]:
            import httpx

            s = self.settings
            aid = self.artifact_id(artifact_id)
            small = [f for f in files if f.size < s.opt("multipart_threshold")]
            large = [f for f in files if f.size >= s.opt("multipart_threshold")]
            batch = max(1, int(s.opt("url_batch")))
            conc = max(1, int(s.opt("put_concurrency")))
            sem = asyncio.Semaphore(conc)
            url_sem = asyncio.Semaphore(
                4
            )  # URL batches requested in parallel, PUTs start per batch
            limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
            async with httpx.AsyncClient(limits=limits) as client:

                async def guarded(f: UploadFile, url: str | None) -> None:
                    async with sem:
                        await self._put_one(client, aid, f, url)

                async def batch_of(chunk: list[UploadFile]) -> list[BaseException | None]:
                    try:
                        async with url_sem:
                            got = await self._call(
                                "put_file", aid, file_path=[f.remote for f in chunk]
                            )
                        urls = got if isinstance(got, dict) else {chunk[0].remote: got}
                    except Exception:  # noqa: BLE001 - each file then asks for its own URL
                        urls = {}
                    return await asyncio.gather(
                        *(guarded(f, urls.get(f.remote)) for f in chunk), return_exceptions=True
                    )

                jobs = [batch_of(small[i : i + batch]) for i in range(0, len(small), batch)]
                jobs += [asyncio.gather(guarded(f, None), return_exceptions=True) for f in large]
                results = [r for rs in await asyncio.gather(*jobs) for r in rs]
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise HyphaUploadError(
                    f"{len(errors)} of {len(files)} file(s) failed: {errors[0]}"
                ) from errors[0]
            return {f.remote: f.size for f in files}

        return self._run(go())

    # ------------------------------------------------------------------ commit
    def commit(
        self,
        artifact_id: str,
        *,
        expected: dict[str, int] | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Commit the staged artifact under the retry policy (``commit_*`` settings), each retry
        on a fresh connection. A retry (or a refused commit) that finds the artifact no longer
        staged, committed with every ``expected`` file, counts as committed: the earlier commit
        went through but its answer was lost."""

        async def committed(aid: str) -> dict[str, Any] | None:
            art = await self._aread(aid, stage=True)
            if art is None or art.get("staging") is not None or not art.get("versions"):
                return None
            if expected is not None:
                listing = await self._alist(aid, stage=False)
                if any(listing.get(p) != z for p, z in expected.items()):
                    return None
            return art

        async def go() -> dict[str, Any]:
            aid = self.artifact_id(artifact_id)
            kwargs = {"comment": comment} if comment else {}
            try:
                async for attempt in self._policy("commit"):
                    with attempt:
                        if attempt.retry_state.attempt_number > 1:
                            await self._drop()  # commit retries start on a fresh connection
                            art = await committed(aid)
                            if art is not None:
                                return art
                        try:
                            return await self._call("commit", aid, attempts=1, **kwargs)
                        except RETRYABLE:
                            raise
                        except Exception:
                            art = await committed(aid)
                            if art is not None:
                                return art
                            raise
            except Exception as exc:
                raise HyphaConnectionError(f"commit of {aid} failed: {exc}") from exc
            raise AssertionError("unreachable")

        return self._run(go())
