"""NasHook: the shop NAS, either a mounted share (a local path) or an SFTP server (through the SFTP
provider's ``SFTPHook``).

Connection ``nas_default``:

* mounted share: ``conn_type`` ``fs`` (or any type but ``sftp``/``ssh``), path in
  ``extra.path`` (or ``host``);
* SFTP: ``conn_type`` ``sftp``, ``host``/``port``/``login``/``password`` (or key in extras, as the
  SFTP provider documents), NAS root folder in ``extra.root`` (default ``/``).

Without a ``nas_default`` connection the hook uses ``fallback_root`` (a local folder) and says so
in the log. Uploads go to a temp name in the target folder and are renamed into place; an existing
identical file counts as done, a different one is an error (never overwritten).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import stat
import uuid
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from include.common.files import FileConflictError, sha256_file
from include.design.nas import MountedNas, NasBackend, RemoteFile

log = logging.getLogger(__name__)


class SftpNas:
    """NAS backend over SFTP (paramiko client from ``SFTPHook``)."""

    def __init__(self, sftp_hook: Any, root: str) -> None:
        self.hook = sftp_hook
        self.root = root.rstrip("/") or "/"

    @cached_property
    def client(self) -> Any:
        return self.hook.get_conn()

    def _remote(self, rel: str) -> str:
        norm = posixpath.normpath(posixpath.join(self.root, rel))
        if not (norm == self.root or norm.startswith(self.root.rstrip("/") + "/")):
            raise ValueError(f"path escapes the NAS root: {rel!r}")
        return norm

    def location(self, rel: str) -> str:
        return f"sftp:{self._remote(rel)}"

    def _makedirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        cur = "/" if path.startswith("/") else ""
        for part in parts:
            cur = posixpath.join(cur, part) if cur else part
            try:
                self.client.stat(cur)
            except FileNotFoundError:
                try:
                    self.client.mkdir(cur)
                except OSError:
                    self.client.stat(cur)  # created concurrently: fine

    def _stat(self, remote: str) -> Any | None:
        try:
            return self.client.stat(remote)
        except FileNotFoundError:
            return None

    def _remote_sha256(self, remote: str) -> str:
        h = hashlib.sha256()
        with self.client.open(remote, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        return h.hexdigest()

    def _same(self, local: str | os.PathLike[str], remote: str, st: Any) -> bool:
        return st.st_size == os.path.getsize(local) and self._remote_sha256(remote) == sha256_file(
            local
        )

    def put(self, local: str | os.PathLike[str], rel: str) -> str:
        remote = self._remote(rel)
        st = self._stat(remote)
        if st is not None:
            if self._same(local, remote, st):
                return "already_present"
            raise FileConflictError(f"a different file is on the NAS at {remote}")
        folder = posixpath.dirname(remote)
        self._makedirs(folder)
        tmp = posixpath.join(
            folder, f".{posixpath.basename(remote)}.{uuid.uuid4().hex[:8]}.partial"
        )
        try:
            self.client.put(os.fspath(local), tmp, confirm=True)
            try:
                self.client.rename(tmp, remote)  # SFTP v3 rename never replaces an existing file
            except OSError:
                st = self._stat(remote)
                if st is not None and self._same(local, remote, st):
                    return "already_present"
                raise
        finally:
            if self._stat(tmp) is not None:
                self.client.remove(tmp)
        return "stored"

    def exists(self, rel: str) -> bool:
        return self._stat(self._remote(rel)) is not None

    def delete(self, rel: str) -> bool:
        """Remove a file this pipeline stored (a run that lost the race); False if absent."""
        remote = self._remote(rel)
        if self._stat(remote) is None:
            return False
        self.client.remove(remote)
        return True

    def fetch(self, rel: str, local: str | os.PathLike[str]) -> None:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            self.client.get(self._remote(rel), str(tmp))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)

    def walk(self, prefix: str = "") -> Iterator[RemoteFile]:
        start = self._remote(prefix) if prefix else self.root
        if self._stat(start) is None:
            return
        stack = [start]
        while stack:
            folder = stack.pop()
            entries = sorted(self.client.listdir_attr(folder), key=lambda e: e.filename)
            subdirs = []
            for e in entries:
                if e.filename.startswith("."):
                    continue
                full = posixpath.join(folder, e.filename)
                if stat.S_ISDIR(e.st_mode or 0):
                    subdirs.append(full)
                else:
                    rel = posixpath.relpath(full, self.root)
                    yield RemoteFile(rel, int(e.st_size or 0), int(e.st_mtime or 0) * 1_000_000_000)
            stack.extend(reversed(subdirs))

    def close(self) -> None:
        if "client" in self.__dict__:
            self.hook.close_conn()
            del self.__dict__["client"]


class NasHook(BaseHook):
    """The shop NAS (mounted path or SFTP)."""

    conn_name_attr = "nas_conn_id"
    default_conn_name = "nas_default"
    conn_type = "nas"
    hook_name = "Shop NAS (mounted path or SFTP)"

    def __init__(
        self, nas_conn_id: str = default_conn_name, fallback_root: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.nas_conn_id = nas_conn_id
        self.fallback_root = fallback_root
        self._backend: NasBackend | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema"],
            "relabeling": {"host": "Mounted path (or use extra.path)"},
            "placeholders": {"extra": '{"path": "/mnt/nas"}'},
        }

    def _connection(self) -> Any | None:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.nas_conn_id)
        except AirflowNotFoundException:
            return None

    def get_conn(self) -> NasBackend:
        if self._backend is not None:
            return self._backend
        conn = self._connection()
        if conn is None:
            if not self.fallback_root:
                raise ValueError(
                    f"no Airflow connection {self.nas_conn_id!r} and no fallback NAS folder"
                )
            log.warning(
                "No NAS connection %r configured: storing designs in the local folder %s",
                self.nas_conn_id,
                self.fallback_root,
            )
            self._backend = MountedNas(self.fallback_root)
        elif conn.conn_type in ("sftp", "ssh"):
            from airflow.providers.sftp.hooks.sftp import SFTPHook

            root = conn.extra_dejson.get("root") or "/"
            self._backend = SftpNas(SFTPHook(ssh_conn_id=self.nas_conn_id), root)
            log.info("NAS over SFTP: %s:%s root %s", conn.host, conn.port or 22, root)
        else:
            root = conn.extra_dejson.get("path") or conn.host
            if not root:
                raise ValueError(f"connection {self.nas_conn_id!r} has no extra.path or host")
            self._backend = MountedNas(root)
            log.info("NAS mounted at %s", root)
        return self._backend

    # convenience pass-throughs
    def put(self, local: str | os.PathLike[str], rel: str) -> str:
        return self.get_conn().put(local, rel)

    def walk(self, prefix: str = "") -> Iterator[RemoteFile]:
        return self.get_conn().walk(prefix)

    def fetch(self, rel: str, local: str | os.PathLike[str]) -> None:
        self.get_conn().fetch(rel, local)

    def exists(self, rel: str) -> bool:
        return self.get_conn().exists(rel)

    def location(self, rel: str) -> str:
        return self.get_conn().location(rel)

    def delete(self, rel: str) -> bool:
        return self.get_conn().delete(rel)

    @property
    def is_fallback(self) -> bool:
        """True when no NAS connection exists and the local fallback folder is used."""
        return self._connection() is None

    def close(self) -> None:
        backend = self._backend
        if isinstance(backend, SftpNas):
            backend.close()
        self._backend = None

    def test_connection(self) -> tuple[bool, str]:
        try:
            next(iter(self.get_conn().walk()), None)
        except Exception as exc:  # report, do not raise (Airflow UI "Test")
            return False, str(exc)
        return True, "NAS reachable"
