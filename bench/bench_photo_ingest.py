"""200 photos end to end through ``photo_ingest`` with the LocalExecutor: Airflow's own overhead.

Set-up (all real, all local, all removed afterwards): a private ``AIRFLOW_HOME`` (SQLite metadata
DB), a fresh PostgreSQL app database migrated with Alembic, the rclone S3 server, 200 generated
tray photos (2000x1500, ten base trays whose EXIF GPS/time differ, so every photo is a distinct
image). The DAG runs once with ``dag.test(use_executor=True)`` and ``AIRFLOW__CORE__EXECUTOR=
LocalExecutor`` (tasks run in executor worker processes like in production).

Numbers:
* ``wall_s`` (= ``ours_s``): the DAG run from start to end.
* ``work_s`` (= ``baseline_s``): summed task work — the time spent inside the pipeline functions,
  as every stage/ML task measures and returns it (``work_s`` in its XCom), plus the whole
  duration of the small bookkeeping tasks (register, lifecycle, aggregate, check).
* ``overhead_s = wall_s - work_s`` and ``overhead_fraction = overhead_s / wall_s`` (target <= 0.20).
  With ``parallelism`` > 1 tasks overlap, so ``work_s`` can exceed ``wall_s``; we also report
  ``ti_overhead_s`` = sum over task instances of (duration - work), i.e. the per-task cost of
  Airflow (process start, imports, state updates) that the parallel run hides, and the stricter
  ``slot_overhead_fraction`` = (wall - work / parallelism) / wall.

``python bench/bench_photo_ingest.py [--photos 200] [--parallelism 2]`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

PG_ADMIN_URL = os.environ.get(
    "IMAGING_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
TARGET_OVERHEAD = 0.20


def _airflow_env(home: Path, parallelism: int, meta_url: str, api_port: int) -> None:
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
            ),
        }
    )
    for k in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        del os.environ[k]


def _photos(folder: Path, n: int) -> None:
    """``n`` distinct JPEGs from ten base trays: only the EXIF block differs (spliced, no
    re-encoding), so generating 200 photos takes seconds."""
    import io

    from PIL import Image

    from include.photos.samples import SITE_LAT, SITE_LON, make_exif, tray_image

    folder.mkdir(parents=True, exist_ok=True)
    bases = []
    for i in range(min(10, n)):
        img, _ = tray_image(7000 + i, 2000, 1500, (6, 8), pots=2)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=88)  # no EXIF: APP0 only
        bases.append(buf.getvalue())
    for k in range(n):
        base = bases[k % len(bases)]
        gps = (SITE_LAT + 0.000001 * (k % 97), SITE_LON + 0.000001 * (k // 97))
        exif = make_exif(gps, when=f"2026:11:20 10:{k // 60:02d}:{k % 60:02d}").tobytes()
        app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
        data = base[:2] + app1 + base[2:]  # SOI, APP1 (EXIF), rest of the file
        (folder / f"photo_{k:04d}.jpg").write_bytes(data)
    Image.open(folder / "photo_0000.jpg").verify()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--parallelism", type=int, default=2)
    args = ap.parse_args(argv)

    from sqlalchemy import create_engine, text

    from include.common.local_services import S3Server, free_port, stop_pid

    tmp = Path(tempfile.mkdtemp(prefix="bench-photo-ingest-"))
    home = tmp / "airflow"
    home.mkdir()
    token = secrets.token_hex(3)
    name, meta_name = f"bench_photos_{token}", f"bench_photos_meta_{token}"
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    api_port = free_port()
    _airflow_env(home, args.parallelism, f"{base}/{meta_name}", api_port)

    from include.common.db import make_engine, session_scope
    from include.common.migrate import upgrade
    from include.photos.catalog import upsert_site
    from include.photos.samples import demo_locations

    s3 = S3Server(root=tmp / "s3").start(buckets=("imaging",))
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
        c.execute(text(f'CREATE DATABASE "{meta_name}"'))
    app_url = f"{base}/{name}"
    api_pid = None
    try:
        upgrade(app_url)
        from sqlalchemy.engine import make_url

        u = make_url(app_url)
        os.environ["AIRFLOW_CONN_IMAGING_DB"] = json.dumps(
            {
                "conn_type": "postgres",
                "host": u.host,
                "port": u.port or 5432,
                "login": u.username,
                "password": u.password or "",
                "schema": u.database,
            }
        )
        os.environ["AIRFLOW_CONN_IMAGING_S3"] = json.dumps(s3.airflow_connection())
        site = demo_locations()
        site["locations"][0]["calibration"] = {"avg_plant_area_px": 9000.0}
        with session_scope(make_engine(app_url)) as s:
            upsert_site(s, site["warehouses"], site["locations"])
        folder = tmp / "photos"
        _photos(folder, args.photos)
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run(
            [airflow, "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
        )
        # the LocalExecutor's task processes talk to the execution API of an api-server
        with open(home / "api-server.log", "ab") as log:
            api = subprocess.Popen(
                [airflow, "api-server", "--port", str(api_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
                start_new_session=True,
            )
        api_pid = api.pid
        _wait_http(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", 120, api)
        # Airflow logs to stdout: keep stdout for the one JSON line
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            result = _run(folder, args)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
    finally:
        if api_pid:
            stop_pid(api_pid)
        s3.stop()
        from include.common.db import _ENGINES

        for url in [u for u in _ENGINES if u.endswith(f"/{name}")]:
            _ENGINES.pop(url).dispose()
        with contextlib.suppress(Exception):
            from airflow import settings

            if settings.engine is not None:
                settings.engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'DROP DATABASE IF EXISTS "{meta_name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"api-server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def _run(folder: Path, args: argparse.Namespace) -> dict[str, object]:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from imaging.runner import load_dag

    dag = load_dag("photo_ingest", ROOT / "dags")
    t0 = time.perf_counter()
    dr = dag.test(run_conf={"source_dir": str(folder)}, use_executor=True)
    wall = time.perf_counter() - t0
    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id="photo_ingest", run_id=dr.run_id).one()
        tis = session.query(TaskInstance).filter_by(dag_id="photo_ingest", run_id=dr.run_id).all()
        xcoms: dict[tuple[str, int], object] = {}
        pushed: dict[tuple[str, int], object] = {}
        for x in session.query(XComModel).filter_by(dag_id="photo_ingest", run_id=dr.run_id):
            if x.key == "return_value":
                xcoms[(x.task_id, x.map_index)] = x.value
            elif x.key == "work_s":
                pushed[(x.task_id, x.map_index)] = x.value
        state = str(run.state)
        run_wall = (
            (run.end_date - run.start_date).total_seconds()
            if run.end_date and run.start_date
            else 0
        )
        work = 0.0
        ti_overhead = 0.0
        per_task: dict[str, float] = {}
        for ti in tis:
            done = ti.end_date is not None and ti.start_date is not None
            dur = (ti.end_date - ti.start_date).total_seconds() if done else 0.0
            val = xcoms.get((ti.task_id, ti.map_index))
            if isinstance(val, str):
                try:
                    val = json.loads(val)
                except ValueError:
                    val = None
            if isinstance(val, dict) and "work_s" in val:
                w = float(val["work_s"])
            elif (ti.task_id, ti.map_index) in pushed:
                w = float(json.loads(str(pushed[(ti.task_id, ti.map_index)])))
            else:
                w = 0.0  # unmeasured: counted as overhead
            work += w
            ti_overhead += max(0.0, dur - w)
            per_task[ti.task_id] = per_task.get(ti.task_id, 0.0) + w
        t_run = run.start_date
        for ti in sorted(tis, key=lambda t: t.start_date or t_run):
            if ti.start_date and ti.end_date:
                q = (ti.queued_dttm - t_run).total_seconds() if ti.queued_dttm else -1
                print(
                    f"timeline {ti.task_id}[{ti.map_index}] queued {q:.1f} "
                    f"start {(ti.start_date - t_run).total_seconds():.1f} "
                    f"end {(ti.end_date - t_run).total_seconds():.1f}",
                    file=sys.stderr,
                )
        statuses: dict[str, int] = {}
        for (task_id, _), val in xcoms.items():
            if task_id.endswith("run_ml") and isinstance(val, dict):
                for k, v in val.get("statuses", {}).items():
                    statuses[k] = statuses.get(k, 0) + v
    wall_used = run_wall or wall
    overhead = wall_used - work
    return {
        "name": "photo_ingest",
        "baseline_s": round(work, 3),
        "ours_s": round(wall_used, 3),
        "ratio": round(work / wall_used, 3),
        "wall_s": round(wall_used, 3),
        "work_s": round(work, 3),
        "overhead_s": round(overhead, 3),
        "overhead_fraction": round(overhead / wall_used, 4),
        "target_overhead_fraction": TARGET_OVERHEAD,
        "ti_overhead_s": round(ti_overhead, 3),
        # stricter view: as if the work were perfectly spread over the executor slots, every
        # other second of the wall time (idle slots, scheduling, start-up) is overhead
        "slot_overhead_fraction": round((wall_used - work / args.parallelism) / wall_used, 4),
        "ti_overhead_fraction_of_ti_time": round(ti_overhead / (work + ti_overhead), 4),
        "work_by_task_s": {k: round(v, 3) for k, v in sorted(per_task.items())},
        "task_instances": len(tis),
        "photos": args.photos,
        "statuses": statuses,
        "executor": "LocalExecutor",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "parallelism": args.parallelism,
        "state": state,
        "meets_target": state == "success" and overhead / wall_used <= TARGET_OVERHEAD,
    }


if __name__ == "__main__":
    main()
