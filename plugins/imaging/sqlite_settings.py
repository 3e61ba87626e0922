"""The demo's SQLite metadata DB: connection arguments and an event loop that never waits on it.

``CONNECT_ARGS`` (``[database] sql_alchemy_connect_args``, set by scripts/env.sh when the metadata
DB is SQLite). Airflow already puts SQLite in WAL mode (readers never wait for the writer); writers
wait up to 60 s for the lock instead of pysqlite's 5 s.

:func:`keep_audit_log_off_the_event_loop` (installed by ``config/demo/airflow_local_settings.py`` when
the metadata DB is SQLite). Airflow's API server writes its audit log (``log`` table) in an ``async``
dependency, ``action_logging``, with a *synchronous* session: the INSERT runs on the event loop. On
SQLite that is a deadlock whenever another request of the same server holds the write lock: sync
endpoints (trigger a run, a task's state from the execution API) run in a thread, flush, and commit
only when FastAPI closes their session -- a step the event loop has to schedule. The loop is blocked
in the audit INSERT waiting for that very lock, so both wait until the busy timeout ends, and the
user's click (Trigger, unpause, an approval) answers HTTP 500 "Database error" after a minute
(seen in the newcomer test: a POST dagRuns held the lock, the UI's PATCH unpause blocked the loop,
60.1 s each). Wrapped here, the audit entry is written in a worker thread and the loop keeps
serving; the entry, its fields and its commit are Airflow's own (the original coroutine runs there
on the request whose body has been read). PostgreSQL locks rows, not the database: not installed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

BUSY_TIMEOUT_S = 60

#: ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=imaging.sqlite_settings.CONNECT_ARGS``
CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_S}

AUDIT_MODULE = "airflow.api_fastapi.logging.decorators"
_MARK = "_imaging_off_loop"


def off_loop(action_logging: Callable[..., Any]) -> Callable[..., Any]:
    """``action_logging`` whose dependencies write the audit entry in a worker thread."""
    if getattr(action_logging, _MARK, False):
        return action_logging

    @functools.wraps(action_logging)
    def patched(*args: Any, **kwargs: Any) -> Any:
        log_action = action_logging(*args, **kwargs)

        @functools.wraps(
            log_action
        )  # FastAPI reads the original's parameters (request, session, user)
        async def log_action_off_loop(**deps: Any) -> None:
            import anyio.to_thread

            request = deps.get("request")
            if request is not None:
                await (
                    request.body()
                )  # read here; the copy in the thread gets Starlette's cached body
            await anyio.to_thread.run_sync(lambda: asyncio.run(log_action(**deps)))

        return log_action_off_loop

    setattr(patched, _MARK, True)
    return patched


def _patch(module: ModuleType) -> None:
    module.action_logging = off_loop(module.action_logging)  # type: ignore[attr-defined]


class _PatchOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Patches the audit-log module right after Python executes it, before any route imports it."""

    def __init__(self) -> None:
        self._spec: importlib.machinery.ModuleSpec | None = None

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != AUDIT_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        self._spec = spec
        return importlib.machinery.ModuleSpec(
            fullname,
            self,
            origin=spec.origin,
            is_package=spec.submodule_search_locations is not None,
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        assert self._spec is not None and self._spec.loader is not None
        return self._spec.loader.create_module(self._spec)

    def exec_module(self, module: ModuleType) -> None:
        assert self._spec is not None and self._spec.loader is not None
        module.__spec__ = self._spec
        module.__file__ = self._spec.origin
        module.__loader__ = self._spec.loader
        self._spec.loader.exec_module(module)
        _patch(module)


def keep_audit_log_off_the_event_loop() -> None:
    """Install the wrapper (idempotent): now if Airflow's module is loaded, else when it is."""
    loaded = sys.modules.get(AUDIT_MODULE)
    if loaded is not None:
        _patch(loaded)  # routes imported earlier keep the original: install from local settings
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
