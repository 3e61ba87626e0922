"""Roboflow hook on the real ``roboflow`` SDK (1.7.3).

Connection ``roboflow_default`` (type ``roboflow``): ``password`` = API key, ``extra.workspace`` =
workspace URL slug (default: the key's own workspace), ``extra.api_url`` = API base URL (default the
SDK's), ``extra.upload_timeout`` = seconds per upload request (default 60),
``extra.upload_workers`` = concurrent uploads per task (default 8), ``extra.retry_attempts`` /
``retry_base`` / ``retry_cap`` = per-request retries with exponential backoff and full jitter.

The SDK reads the ``API_URL`` environment variable once, when ``roboflow`` is first imported, and
copies it into several modules; the hook sets it before the import and, if the SDK was already
imported with another URL (e.g. two fake servers in one test session), re-points those copies.

Airflow's plugin loader imports every file of the plugins folder as a top-level module named after
the file, i.e. this file as ``roboflow``, shadowing the SDK; :func:`import_roboflow` removes that
entry before importing the SDK.

The SDK's image upload uses a hard-coded 300 s timeout on a per-thread ``requests`` session; the hook
installs, per worker thread, a session of the SDK's own class that caps every request at
``upload_timeout`` so that a hung request becomes a retryable timeout instead of a stuck task.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property, lru_cache
from typing import Any

from airflow.sdk import BaseHook

DEFAULT_UPLOAD_TIMEOUT = 60.0
DEFAULT_UPLOAD_WORKERS = 8
_SDK_LOCK = threading.Lock()


def import_roboflow(api_url: str | None) -> Any:
    """Import the SDK pointed at ``api_url`` (``None``: the SDK's default / environment)."""
    with _SDK_LOCK:
        if api_url:
            os.environ["API_URL"] = api_url
        shadow = sys.modules.get("roboflow")
        if shadow is not None and not hasattr(shadow, "__path__"):
            # Airflow's plugin loader registers every file of the plugins folder under its bare
            # name, so this very module can sit in sys.modules as "roboflow": drop that entry and
            # import the real package again (its already-loaded submodules are reused).
            del sys.modules["roboflow"]
            import roboflow

            _relink_submodules()
        import roboflow
        import roboflow.config

        current = roboflow.config.API_URL
        if api_url and current != api_url:
            for name, mod in list(sys.modules.items()):
                if (name == "roboflow" or name.startswith("roboflow.")) and getattr(
                    mod, "API_URL", None
                ) == current:
                    mod.API_URL = api_url
        return roboflow


def _relink_submodules() -> None:
    """Re-attach loaded ``roboflow.*`` submodules to their (re-created) parent packages."""
    for name in sorted(
        (n for n in sys.modules if n.startswith("roboflow.")), key=lambda n: n.count(".")
    ):
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and sys.modules[name] is not None:
            setattr(sys.modules[parent], child, sys.modules[name])


class RoboflowHook(BaseHook):
    """Talk to a Roboflow workspace: projects, image uploads with annotations, image counts."""

    conn_name_attr = "roboflow_conn_id"
    default_conn_name = "roboflow_default"
    conn_type = "roboflow"
    hook_name = "Roboflow"

    def __init__(self, roboflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.roboflow_conn_id = roboflow_conn_id
        self._client: Any = None
        self._projects: dict[str, Any] = {}
        self._local = threading.local()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port", "login", "host"],
            "relabeling": {"password": "API key"},
            "placeholders": {
                "extra": '{"workspace": "my-workspace", "api_url": "https://api.roboflow.com", '
                '"upload_timeout": 60, "upload_workers": 8}'
            },
        }

    # ------------------------------------------------------------ settings
    @cached_property
    def _conn(self) -> Any:
        return self.get_connection(self.roboflow_conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        return dict(self._conn.extra_dejson or {})

    @property
    def api_key(self) -> str:
        key = self._conn.password or ""
        if not key:
            raise ValueError(f"connection {self.roboflow_conn_id!r} has no API key (password)")
        if not any(c.islower() for c in key):
            # The SDK silently switches to "onboarding" mode for such keys and uploads nothing.
            raise ValueError(
                f"connection {self.roboflow_conn_id!r}: the API key has no lowercase letter; "
                "the Roboflow SDK would treat it as a placeholder and do nothing"
            )
        return key

    @property
    def api_url(self) -> str | None:
        return self.extras.get("api_url") or None

    @property
    def upload_timeout(self) -> float:
        return float(self.extras.get("upload_timeout", DEFAULT_UPLOAD_TIMEOUT))

    @property
    def upload_workers(self) -> int:
        return max(1, int(self.extras.get("upload_workers", DEFAULT_UPLOAD_WORKERS)))

    def retry_policy(self) -> Any:
        """Per-request retries: ``extra.retry_attempts`` (5), ``retry_base`` (0.5 s), ``retry_cap`` (30 s)."""
        from include.roboflow.upload import RetryPolicy

        return RetryPolicy(
            attempts=int(self.extras.get("retry_attempts", 5)),
            base=float(self.extras.get("retry_base", 0.5)),
            cap=float(self.extras.get("retry_cap", 30.0)),
        )

    # ------------------------------------------------------------ SDK objects
    def get_conn(self) -> Any:
        """The authenticated ``roboflow.Roboflow`` client (cached)."""
        if self._client is None:
            key = self.api_key
            roboflow = import_roboflow(self.api_url)
            try:
                self._client = roboflow.Roboflow(api_key=key)
            except RuntimeError as exc:
                if "error validating the api key" in str(exc):
                    raise  # the SDK retried a failing server 5 times: transient, let Airflow retry
                # an immediate RuntimeError is the server's 401 answer: the key is wrong
                raise ValueError(
                    f"Roboflow rejected the API key of connection {self.roboflow_conn_id!r}: {exc}"
                ) from exc
        return self._client

    @property
    def workspace_url(self) -> str:
        return self.extras.get("workspace") or self.get_conn().current_workspace

    def get_project(self, project: str) -> Any:
        """The SDK ``Project`` (cached per hook); raises a clear error when it does not exist."""
        if project not in self._projects:
            import_roboflow(self.api_url)
            from roboflow.adapters.rfapi import RoboflowError

            client = self.get_conn()
            try:
                self._projects[project] = client.workspace(self.workspace_url).project(project)
            except RoboflowError as exc:
                raise ValueError(
                    f"Roboflow project {project!r} not found in workspace {self.workspace_url!r}: {exc}"
                ) from exc
        return self._projects[project]

    def create_project(
        self, name: str, project_type: str = "object-detection", annotation: str = "objects"
    ) -> Any:
        client = self.get_conn()
        ws = client.workspace(self.workspace_url)
        return ws.create_project(name, project_type, "Private", annotation)

    def project_image_count(self, project: str) -> int:
        """The number of images the server reports for ``project`` (fresh request, not cached)."""
        import_roboflow(self.api_url)
        from roboflow.adapters import rfapi

        self.get_conn()
        try:
            info = rfapi.get_project(self.api_key, self.workspace_url, project)
        except rfapi.RoboflowError as exc:
            if exc.status_code == 404:
                raise ValueError(
                    f"Roboflow project {project!r} not found in workspace {self.workspace_url!r}: {exc}"
                ) from exc
            raise
        return int(info["project"]["images"])

    # ------------------------------------------------------------ uploads
    def _bind_timeout_session(self) -> None:
        """Give this thread an SDK upload session whose requests time out after ``upload_timeout``."""
        from roboflow.adapters import rfapi
        from roboflow.util import http

        cap = self.upload_timeout
        state = rfapi._upload_sessions
        session = getattr(state, "session", None)
        if isinstance(session, _TimeoutCapped) and state.pid == os.getpid() and session.cap == cap:
            return
        state.session = _capped_session_class(http.Session)(cap)
        state.pid = os.getpid()

    def upload_image(
        self,
        project: str,
        image_path: str,
        *,
        split: str,
        batch_name: str,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """One upload request (no SDK retries: the caller retries with backoff). Returns the API's
        JSON (``{"success": true, "id"}`` or ``{"duplicate": true, "id"}``); raises the SDK's
        ``ImageUploadError`` (``status_code`` set for HTTP errors, ``None`` for network errors)."""
        proj = self.get_project(project)
        self._bind_timeout_session()
        with self._retry_after_on_error():
            image, _elapsed, _retries = proj.upload_image(
                image_path,
                split=split,
                num_retry_uploads=0,
                batch_name=batch_name,
                tag_names=list(tags or []),
            )
        return image

    def save_annotation(
        self,
        project: str,
        annotation_path: str,
        *,
        image_id: str,
        labelmap: dict[int, str] | None,
        job_name: str,
    ) -> dict[str, Any]:
        """Attach a YOLO label file to an uploaded image (one request, no SDK retries)."""
        proj = self.get_project(project)
        self._bind_timeout_session()
        with self._retry_after_on_error():
            annotation, _elapsed, _retries = proj.save_annotation(
                annotation_path=annotation_path,
                annotation_labelmap=labelmap,
                image_id=image_id,
                job_name=job_name,
                num_retry_uploads=0,
            )
        return annotation

    @contextmanager
    def _retry_after_on_error(self) -> Iterator[None]:
        """Attach the server's ``Retry-After`` (429/503) to the SDK's exception as ``retry_after``
        (seconds) so that the caller's backoff waits at least that long."""
        try:
            yield
        except Exception as exc:
            from roboflow.adapters import rfapi

            session = getattr(rfapi._upload_sessions, "session", None)
            retry_after = getattr(session, "last_retry_after", None)
            if retry_after is not None:
                exc.retry_after = retry_after  # type: ignore[attr-defined]
            raise

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn()
            return True, f"Connected to Roboflow workspace {self.workspace_url!r}"
        except Exception as exc:  # report, do not raise (Airflow UI contract)
            return False, str(exc)


@lru_cache(maxsize=4)
def _capped_session_class(base: type) -> type:
    return type("TimeoutCappedSession", (_TimeoutCapped, base), {})


class _TimeoutCapped:
    """Mixin for ``requests.Session``: every request gets ``timeout=min(given, cap)``."""

    def __init__(self, cap: float) -> None:
        super().__init__()
        self.cap = cap
        self.last_retry_after: float | None = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        given = kwargs.get("timeout")
        if isinstance(given, tuple):
            kwargs["timeout"] = tuple(min(float(t), self.cap) for t in given)
        elif given is None:
            kwargs["timeout"] = self.cap
        else:
            kwargs["timeout"] = min(float(given), self.cap)
        self.last_retry_after = None
        response = super().request(method, url, *args, **kwargs)
        if response.status_code in (429, 503):
            self.last_retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return response


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
