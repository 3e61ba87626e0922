"""NasHook on a mounted folder and on a real SFTP server (asyncssh's SFTP server on loopback, reached
through the SFTP provider's paramiko-based ``SFTPHook``)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.common.files import FileConflictError


class SftpServer:
    """A real SFTP server (asyncssh) chrooted to ``root``, password auth, in a background thread."""

    def __init__(self, root: Path, user: str = "nas", password: str = "nas-pass") -> None:
        self.root, self.user, self.password = root, user, password
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None

    def start(self) -> SftpServer:
        import asyncssh

        self.root.mkdir(parents=True, exist_ok=True)
        user, password, root = self.user, self.password, str(self.root)

        class _Auth(asyncssh.SSHServer):
            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, pw: str) -> bool:
                return username == user and pw == password

        async def _start() -> Any:
            key = asyncssh.generate_private_key("ssh-ed25519")
            return await asyncssh.listen(
                "127.0.0.1",
                0,
                server_host_keys=[key],
                server_factory=_Auth,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
                allow_scp=False,
            )

        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(30)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def _close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def airflow_connection(self, root: str = "/designs") -> dict[str, Any]:
        return {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": self.user,
            "password": self.password,
            "extra": {"no_host_key_check": True, "root": root},
        }


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    srv = SftpServer(tmp_path_factory.mktemp("sftp")).start()
    yield srv
    srv.stop()


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(params=["mounted", "sftp"])
def nas(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Path]]:
    """(hook, the folder where the NAS files really land)."""
    from imaging.hooks.nas import NasHook

    if request.param == "mounted":
        root = tmp_path / "share"
        conn = {"conn_type": "fs", "extra": {"path": str(root)}}
    else:
        srv = request.getfixturevalue("sftp_server")
        sub = f"/designs_{os.urandom(3).hex()}"
        root = srv.root / sub.lstrip("/")
        conn = srv.airflow_connection(sub)
    monkeypatch.setenv("AIRFLOW_CONN_NAS_HOOKTEST", json.dumps(conn))
    hook = NasHook(nas_conn_id="nas_hooktest")
    yield hook, root
    hook.close()


def test_put_is_atomic_idempotent_and_never_clobbers(nas: tuple[Any, Path], tmp_path: Path) -> None:
    hook, root = nas
    a = _file(tmp_path / "a.png", b"\x89PNG first")
    b = _file(tmp_path / "b.png", b"\x89PNG other")
    rel = "demo-shop/poster/a_20260101T000000_abcd1234.png"
    assert hook.put(a, rel) == "stored"
    assert (root / rel).read_bytes() == b"\x89PNG first"
    assert hook.put(a, rel) == "already_present"
    with pytest.raises(FileConflictError):
        hook.put(b, rel)
    assert (root / rel).read_bytes() == b"\x89PNG first"
    assert not [p for p in (root / "demo-shop/poster").iterdir() if p.name.endswith(".partial")]
    assert hook.exists(rel) and not hook.exists("demo-shop/poster/missing.png")


def test_walk_and_fetch(nas: tuple[Any, Path], tmp_path: Path) -> None:
    hook, root = nas
    for rel in ("s1/t/x.png", "s1/t/mockups/x__wall.jpg", "s2/t/y.jpg"):
        hook.put(_file(tmp_path / Path(rel).name, rel.encode()), rel)
    found = {f.path: f.size for f in hook.walk()}
    assert found == {"s1/t/x.png": 10, "s1/t/mockups/x__wall.jpg": 24, "s2/t/y.jpg": 10}
    assert [f.path for f in hook.walk("s2")] == ["s2/t/y.jpg"]
    hook.fetch("s2/t/y.jpg", tmp_path / "back" / "y.jpg")
    assert (tmp_path / "back" / "y.jpg").read_bytes() == b"s2/t/y.jpg"


def test_paths_cannot_escape_the_root(nas: tuple[Any, Path], tmp_path: Path) -> None:
    hook, _root = nas
    with pytest.raises(ValueError, match="escapes"):
        hook.put(_file(tmp_path / "e.png", b"x"), "../outside.png")


def test_no_connection_uses_the_fallback_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from imaging.hooks.nas import NasHook

    hook = NasHook(nas_conn_id="nas_not_configured", fallback_root=str(tmp_path / "fb"))
    with caplog.at_level("WARNING"):
        assert hook.put(_file(tmp_path / "f.png", b"f"), "s/t/f.png") == "stored"
    assert (tmp_path / "fb" / "s/t/f.png").exists()
    assert "No NAS connection" in caplog.text
    with pytest.raises(ValueError, match="no fallback"):
        NasHook(nas_conn_id="nas_not_configured").get_conn()


def test_sftp_wrong_password_fails(
    sftp_server: SftpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imaging.hooks.nas import NasHook

    conn = sftp_server.airflow_connection()
    conn["password"] = "wrong"
    monkeypatch.setenv("AIRFLOW_CONN_NAS_BADPW", json.dumps(conn))
    ok, msg = NasHook(nas_conn_id="nas_badpw").test_connection()
    assert not ok and msg
