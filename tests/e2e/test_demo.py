"""The demo command brings Airflow up with the sample data and no DAG import errors, and the stop
command leaves no process behind; the README's ``make run-dag DAG=roboflow_upload`` works as written
against it. Runs scripts/demo.sh exactly as a user does, in temp folders and on free ports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from include.common.local_services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def test_demo_starts_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "IMAGING", "PYTHONPATH"))
    }
    port = free_port()
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        IMAGING_DATA_DIR=str(tmp_path / "data"),
        IMAGING_RUN_DIR=str(tmp_path / "run"),
        AIRFLOW_PORT=str(port),
        IMAGING_S3_PORT=str(free_port()),
        IMAGING_HYPHA_PORT=str(free_port()),
        IMAGING_ROBOFLOW_PORT=str(free_port()),
    )
    run_dir = tmp_path / "run"
    try:
        out = subprocess.run(
            ["bash", "scripts/demo.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
        assert f"http://127.0.0.1:{port}" in out.stdout and "Login:       admin /" in out.stdout
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=10
        ) as r:
            health = json.load(r)
        assert health["metadatabase"]["status"] == "healthy"
        confs = json.loads((tmp_path / "data" / "samples" / "demo_confs.json").read_text())
        assert {"astro", "reef", "photos", "design", "roboflow"} <= set(confs), confs.keys()
        # the README's first shell example, as written, against the running demo
        ran = subprocess.run(
            ["make", "run-dag", "DAG=roboflow_upload"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
        assert f"running roboflow_upload on http://127.0.0.1:{port}" in ran.stdout, ran.stdout
        assert re.search(r"^roboflow_upload \S+: success$", ran.stdout, re.M), ran.stdout
        outcome = re.search(r"^outcome: (.*)$", ran.stdout, re.M)
        # "✔ <headline> · summary: <url>" or, the samples holding bad files on purpose,
        # "⚠ N item errors of M · <headline> · summary: <url>"
        assert outcome and re.match(r"[✔⚠] .+ · summary: http\S+/summary\.html$", outcome[1]), (
            ran.stdout
        )
        pids = {p.stem: int(p.read_text()) for p in run_dir.glob("*.pid")}
        assert {
            "s3",
            "hypha",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        } <= set(pids)
    finally:
        pids = (
            {p.stem: int(p.read_text()) for p in run_dir.glob("*.pid")} if run_dir.exists() else {}
        )
        stop = subprocess.run(
            ["bash", "scripts/stop.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert stop.returncode == 0, stop.stderr
    left = {name: pid for name, pid in pids.items() if _alive(pid)}
    assert not left, f"processes left behind: {left}"
    # nothing of the demo still listens
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True
    ).stdout.split()
    assert not leftovers, f"processes still using the demo folders: {leftovers}"
