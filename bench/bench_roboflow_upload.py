"""Benchmark: uploading 500 annotated images to the fake Roboflow API with 50 ms added latency per
request (its own process, ``python -m tests.fakes.roboflow_server``).

* baseline: the SDK's documented sequential loop, ``project.upload(image, annotation)`` per image;
* ours: ``include.roboflow.upload.upload_many`` through ``RoboflowHook`` (same SDK calls, with
  retries/backoff) with ``upload_workers`` concurrent uploads.

Both sides upload the same images to two empty projects of the same server in the same run; the
server's image counts are checked afterwards (500 each, nothing stored twice).
Target (issue 3): ratio >= 5.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

API_KEY = "bench-api-key"
WORKSPACE = "bench-ws"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _report(url: str, project: str) -> dict:
    import requests

    return requests.get(f"{url}/_fake/{WORKSPACE}/{project}", timeout=10).json()


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print its one JSON line (the SDK's progress messages go to stderr)."""
    with contextlib.redirect_stdout(sys.stderr):
        result = _measure(argv)
    print(json.dumps(result))
    return result


def _measure(argv: list[str] | None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args(argv)

    from include.roboflow.batching import image_key, plan_batches
    from include.roboflow.dataset import scan_dataset
    from include.roboflow.samples import generate_dataset
    from include.roboflow.upload import ImageJob, RetryPolicy, upload_many

    tmp = Path(tempfile.mkdtemp(prefix="rf-bench-"))
    info = generate_dataset(
        tmp / "ds", n_train=args.images, n_valid=0, n_test=0, n_neither=0, bad=False, size=64
    )
    scan = scan_dataset(info["dataset_dir"])
    assert len(scan.items) == args.images

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.roboflow_server",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
            "--workspace",
            WORKSPACE,
            "--project",
            "baseline",
            "--project",
            "ours",
            "--latency",
            str(args.latency),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # ready
        os.environ["AIRFLOW_CONN_ROBOFLOW_DEFAULT"] = json.dumps(
            {
                "conn_type": "roboflow",
                "password": API_KEY,
                "extra": {
                    "workspace": WORKSPACE,
                    "api_url": url,
                    "upload_workers": args.workers,
                    "upload_timeout": 30,
                },
            }
        )
        from imaging.hooks.roboflow import RoboflowHook, import_roboflow

        roboflow = import_roboflow(url)

        # baseline: the SDK's sequential loop
        rf = roboflow.Roboflow(api_key=API_KEY)
        project = rf.workspace(WORKSPACE).project("baseline")
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # one progress line per image
            for it in scan.items:
                project.upload(
                    image_path=it.path,
                    annotation_path=it.label_path,
                    annotation_labelmap=scan.labelmap,
                    split=it.split,
                    batch_name="bench",
                    num_retry_uploads=3,
                )
        baseline_s = time.perf_counter() - t0

        # ours
        hook = RoboflowHook()
        hook.get_project("ours")  # connect before timing, like the baseline
        plans = plan_batches(
            scan.items, batch_size=args.images, dataset_name=scan.name, project="ours"
        )
        jobs = [
            ImageJob(
                image_key(scan.name, it),
                "ours",
                it.path,
                it.label_path,
                p.upload_split,
                p.batch_key,
            )
            for p in plans
            for it in p.items
        ]
        t0 = time.perf_counter()
        outcomes = upload_many(
            hook, jobs, workers=hook.upload_workers, labelmap=scan.labelmap, policy=RetryPolicy()
        )
        ours_s = time.perf_counter() - t0

        base_rep, ours_rep = _report(url, "baseline"), _report(url, "ours")
        failed = sum(o.status != "completed" for o in outcomes)
        result = {
            "name": "roboflow_upload",
            "baseline_s": round(baseline_s, 3),
            "ours_s": round(ours_s, 3),
            "ratio": round(baseline_s / ours_s, 2),
            "images": args.images,
            "latency_s": args.latency,
            "workers": hook.upload_workers,
            "baseline_images_on_server": base_rep["images"],
            "ours_images_on_server": ours_rep["images"],
            "ours_annotated": ours_rep["annotated"],
            "ours_failed": failed,
            "target_ratio": 5,
        }
        result["ok"] = bool(
            result["ratio"] >= 5
            and ours_rep["images"] == args.images == base_rep["images"]
            and not failed
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
