"""Start/stop the demo's local servers and write the demo's Airflow connections.

    python scripts/services.py start   # S3 (rclone), Hypha, fake Roboflow; writes .run/connections.json
    python scripts/services.py stop    # stops every process recorded in .run/*.pid

Ports (loopback only): S3 9100, Hypha 9527, fake Roboflow 9200 (override with IMAGING_*_PORT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from include.common.local_services import HyphaServer, S3Server, stop_pid  # noqa: E402

RUN = Path(os.environ.get("IMAGING_RUN_DIR", ROOT / ".run"))
DATA = Path(os.environ.get("IMAGING_DATA_DIR", ROOT / ".data"))


def _write_pid(name: str, pid: int) -> None:
    (RUN / f"{name}.pid").write_text(str(pid))


def _secret(name: str) -> str:
    """A per-installation secret kept under .run (stable across restarts of the demo)."""
    import secrets

    path = RUN / f"{name}.secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def start() -> dict[str, object]:
    RUN.mkdir(parents=True, exist_ok=True)
    (RUN / "logs").mkdir(exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    s3 = S3Server(
        root=DATA / "s3",
        port=int(os.environ.get("IMAGING_S3_PORT", "9100")),
        access_key="imaging",
        secret_key=_secret("s3"),
    ).start(log=RUN / "logs" / "s3.log", buckets=("imaging",))
    _write_pid("s3", s3.pid or 0)
    hypha = HyphaServer(
        state_dir=DATA / "hypha",
        s3=s3,
        port=int(os.environ.get("IMAGING_HYPHA_PORT", "9527")),
        root_token=_secret("hypha-root-token"),
        jwt_secret=_secret("hypha-jwt"),
    ).start(log=RUN / "logs" / "hypha.log")
    _write_pid("hypha", hypha.pid or 0)
    conns: dict[str, object] = {
        "imaging_db": {"conn_type": "sqlite", "host": str(DATA / "app.db")},
        "imaging_s3": s3.airflow_connection(),
        "imaging_hypha": hypha.airflow_connection(),
        # the design pipeline's demo NAS already holds a few designs, to show NAS duplicates
        "nas_default": {
            "conn_type": "fs",
            "extra": {"path": str(DATA / "samples" / "design" / "nas")},
        },
    }
    fake_rf = ROOT / "tests" / "fakes" / "roboflow_server.py"
    if fake_rf.exists():
        port = int(os.environ.get("IMAGING_ROBOFLOW_PORT", "9200"))
        with open(RUN / "logs" / "roboflow-fake.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.roboflow_server", "--port", str(port)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _write_pid("roboflow-fake", proc.pid)
        conns["roboflow_default"] = {
            "conn_type": "generic",
            "password": "demo-api-key",
            "extra": {"workspace": "demo-workspace", "api_url": f"http://127.0.0.1:{port}"},
        }
    (RUN / "connections.json").write_text(json.dumps(conns, indent=2))
    return conns


def stop(quiet: bool = False) -> None:
    if not RUN.exists():
        return
    for pidfile in sorted(RUN.glob("*.pid")):
        try:
            pid = int(pidfile.read_text().strip() or 0)
        except ValueError:
            pid = 0
        if pid > 0:
            stop_pid(pid)
            if not quiet:
                print(f"stopped {pidfile.stem} (pid {pid})")
        pidfile.unlink(missing_ok=True)
    time.sleep(0.2)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "start"
    if cmd == "start":
        start()
    elif cmd == "stop":
        stop(quiet="--quiet" in sys.argv)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop")
