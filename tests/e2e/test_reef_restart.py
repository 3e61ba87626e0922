"""End to end: the Hypha server is stopped in the middle of a ``reef_treatment_upload`` run (after
the first folder is committed, while the next ones are on their way) and started again on the
same port and state: the run still ends with every folder in one committed version, and no Hypha
call waits for the RPC timeout (after hypha-rpc reconnects by itself, the hook fetches the artifact
manager again on the new connection instead of calling the old server's service)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from include.common.db import make_engine, session_scope
from include.common.items import keys_with_status
from include.reef.pipeline import TREATMENT, treatment_dataset_alias
from include.reef.samples import GridSpec, generate_timelapse

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_server_restart_mid_run_ends_in_one_committed_version(
    hypha_server, run_dag, app_db_url, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    conn = hypha_server.airflow_connection()
    conn["extra"].update(
        connect_attempts=15,
        connect_backoff_base=0.5,
        connect_backoff_cap=2,
        commit_backoff_base=0.5,
        commit_backoff_cap=2,
        put_backoff_base=0.2,
        put_backoff_cap=1,
        rpc_timeout_s=20,
    )
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_HYPHA", json.dumps(conn))
    exp = "reef-e2e-restart"
    folders = generate_timelapse(
        tmp_path / "mic", exp, n_folders=5, grid=GridSpec(rows=2, cols=2, tile=64)
    )
    engine = make_engine(app_db_url)
    from imaging.hooks.hypha import HyphaArtifactHook

    stats: list[dict[str, int]] = []  # every hook's counters, when the task closes it
    close = HyphaArtifactHook.close

    def recording_close(self: HyphaArtifactHook) -> None:
        stats.append(dict(self.stats))
        close(self)

    monkeypatch.setattr(HyphaArtifactHook, "close", recording_close)
    events: list[str] = []
    stop_polling = threading.Event()

    def chaos() -> None:
        while not stop_polling.is_set():
            with session_scope(engine) as s:
                done = keys_with_status(s, TREATMENT, "folder")
            if any(k.startswith(f"{exp}/") for k in done):
                hypha_server.stop()
                events.append(f"stopped after {len(done)} done")
                time.sleep(3)
                hypha_server.start()
                events.append("started")
                return
            time.sleep(0.1)

    # the chaos thread's first query configures the SQLAlchemy mappers, which imports every Airflow
    # model; the main thread imports them too (dag.test): done here once, before the thread starts,
    # so the two never wait on each other's import lock (a deadlock seen on a loaded machine)
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()
    with session_scope(engine) as s:
        keys_with_status(s, TREATMENT, "folder")
    t = threading.Thread(target=chaos, daemon=True)
    t.start()
    try:
        res = run_dag(
            "reef_treatment_upload",
            conf={
                "base_dir": str(tmp_path / "mic"),
                "experiment_id": exp,
                "work_dir": str(tmp_path / "w"),
            },
        )
    finally:
        stop_polling.set()
        t.join(timeout=60)
    assert events and events[-1] == "started", events
    assert res.state == "success", res.task_states
    assert stats and sum(st["rpc_timeouts"] for st in stats) == 0, stats

    ds = treatment_dataset_alias(exp)
    with HyphaArtifactHook() as hook:
        art = hook.read(ds, stage=True)
        assert [v["version"] for v in art["versions"]] == ["v0"] and art["staging"] is None
        listing = hook.list_files(ds)
    assert sorted(listing) == sorted(f"{f.name}.zip" for f in folders)
    with session_scope(engine) as s:
        done = {k for k in keys_with_status(s, TREATMENT, "folder") if k.startswith(f"{exp}/")}
    assert done == {f"{exp}/{f.name}" for f in folders}
