"""End to end: ``reef_treatment_upload`` with dag.test() against the real Hypha server (artifact
manager on the real rclone S3 server) and the real PostgreSQL app database."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest

from include.common.db import make_engine, session_scope
from include.common.items import get_item
from include.reef.pipeline import TREATMENT, folder_key, treatment_dataset_alias
from include.reef.samples import GridSpec, generate_timelapse
from tests.e2e import artefact_links

pytestmark = pytest.mark.e2e

GRID = GridSpec(rows=2, cols=2, tile=64)


@pytest.fixture
def hypha(hypha_server, monkeypatch: pytest.MonkeyPatch, app_db_url: str):
    conn = hypha_server.airflow_connection()
    conn["extra"].update(
        connect_backoff_base=0.5,
        connect_backoff_cap=2,
        commit_backoff_base=0.5,
        commit_backoff_cap=2,
        put_backoff_base=0.2,
        put_backoff_cap=1,
        rpc_timeout_s=30,
    )
    monkeypatch.setenv("AIRFLOW_CONN_IMAGING_HYPHA", json.dumps(conn))
    return hypha_server


def _hook():
    from imaging.hooks.hypha import HyphaArtifactHook

    return HyphaArtifactHook()


def download(hook, artifact: str, path: str) -> bytes:
    url = hook.call("get_file", hook.artifact_id(artifact), file_path=path)
    r = httpx.get(url, timeout=60, follow_redirects=True)
    r.raise_for_status()
    return r.content


def assert_zip_equals_folder(data: bytes, folder: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        expected = sorted(
            f"{folder.name}/{p.relative_to(folder).as_posix()}"
            for p in folder.rglob("*")
            if p.is_file()
        )
        assert names == expected
        for n in names:
            assert not n.startswith("/") and ".." not in n.split("/")
            assert zf.read(n) == (folder.parent / n).read_bytes()


def test_treatment_upload_rerun_and_bad_folder(
    hypha, run_dag, app_db_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    exp = "reef-e2e-treat"
    folders = generate_timelapse(tmp_path / "mic", exp, n_folders=4, grid=GRID)
    conf = {
        "base_dir": str(tmp_path / "mic"),
        "experiment_id": exp,
        "work_dir": str(tmp_path / "work"),
    }

    res = run_dag("reef_treatment_upload", conf=conf)
    assert res.state == "success", res.task_states
    ds = treatment_dataset_alias(exp)
    with _hook() as hook:
        art = hook.read(ds)
        assert len(art["versions"]) == 1 and not hook.is_staged(ds)
        listing = hook.list_files(ds)
        # the newest folder too, once settled (issue 16.1)
        assert sorted(listing) == sorted(f"{f.name}.zip" for f in folders)
        for f in folders:
            assert_zip_equals_folder(download(hook, ds, f"{f.name}.zip"), f)
    engine = make_engine(app_db_url)
    with session_scope(engine) as s:
        rec = get_item(s, TREATMENT, "folder", folder_key(exp, folders[0].name))
        assert rec.status == "done" and rec.detail["size"] == listing[f"{folders[0].name}.zip"]
        assert get_item(s, TREATMENT, "folder", folder_key(exp, folders[3].name)).status == "done"
    assert res.outcome["line"].startswith("✔ 4 folder(s) uploaded"), res.outcome
    from include.common.publish import artefact_path

    html = artefact_path(res.dag_id, res.run_id, "summary.html").read_text()
    assert f"/artifacts/{ds}" in html and folders[0].name in html
    hypha_links = artefact_links.external_links(html, hypha.url)
    assert any(u.endswith(f"/artifacts/{ds}") for u in hypha_links), hypha_links
    for url in hypha_links:  # a user clicking the link has no Hypha token
        status, body = artefact_links.fetch_anonymous(url)
        assert status == 200, (url, status, body[:300])
    assert not list((tmp_path / "work").rglob("*.zip"))  # temp archives removed
    assert all(f.is_dir() for f in folders)  # sources untouched

    # rerun: nothing new selected, nothing uploaded, still one version
    res2 = run_dag("reef_treatment_upload", conf=conf)
    assert res2.state == "success", res2.task_states
    with _hook() as hook:
        art2 = hook.read(ds)
        assert len(art2["versions"]) == 1
        assert hook.list_files(ds) == listing
    assert "nothing new" in res2.outcome["line"]

    # a scheduled run (no conf) before the microscope wrote anything: green and quiet
    monkeypatch.setenv("AIRFLOW_VAR_IMAGING_REEF_BASE_DIR", str(tmp_path / "not-yet"))
    monkeypatch.setenv("AIRFLOW_VAR_IMAGING_REEF_EXPERIMENT_ID", exp)
    quiet = run_dag("reef_treatment_upload", conf={"work_dir": str(tmp_path / "work")})
    assert quiet.state == "success", quiet.task_states
    assert "does not exist yet" in quiet.outcome["line"]
    # ... but a base dir the user named and that does not exist is a clear failure
    named = run_dag("reef_treatment_upload", conf={**conf, "base_dir": str(tmp_path / "typo")})
    assert named.state == "failed" and named.task_states["select_folders"] == "failed"

    # a folder that vanishes between selection and upload: failed with the reason, others go on
    from include.reef.pipeline import treatment_upload_folder

    gone = {"name": f"{exp}_2025-04-29_20-00-00.000000", "path": str(tmp_path / "mic" / "gone")}
    with _hook() as hook:
        out = treatment_upload_folder(
            engine, hook, gone, experiment_id=exp, work_dir=tmp_path / "work"
        )
    assert out["status"] == "failed" and "cannot archive folder" in out["reason"]
    with session_scope(engine) as s:
        rec = get_item(s, TREATMENT, "folder", folder_key(exp, gone["name"]))
        assert rec.status == "failed" and "is not a directory" in rec.error


def test_treatment_same_folder_zip_is_deterministic(tmp_path: Path):
    from include.reef.zipstream import zip_folder

    f = generate_timelapse(tmp_path / "mic", "det", n_folders=1, grid=GRID)[0]
    a = zip_folder(f, tmp_path / "a.zip")
    b = zip_folder(f, tmp_path / "b.zip")
    assert a.sha256 == b.sha256 and a.size == b.size and a.entries == 4 * 3 + 2


def test_rerun_after_crash_before_commit_leaves_one_file(
    hypha, run_dag, app_db_url, tmp_path: Path
):
    """A run died after uploading folder A's zip into the staged dataset, before the commit and
    the record: the next run commits it once (same path overwritten, no duplicate), then records."""
    from include.reef.pipeline import collection_alias
    from include.reef.upload import UploadFile
    from include.reef.zipstream import zip_folder

    exp = "reef-e2e-treat-crash"
    folders = generate_timelapse(tmp_path / "mic", exp, n_folders=3, grid=GRID)
    ds = treatment_dataset_alias(exp)
    z = zip_folder(folders[0], tmp_path / "pre" / f"{folders[0].name}.zip")
    with _hook() as hook:
        coll = hook.ensure_collection(collection_alias(exp), {"name": exp})
        hook.ensure_staged_dataset(ds, coll, {"name": f"{exp} treatment"})
        hook.upload_files(ds, [UploadFile(z.path, f"{folders[0].name}.zip", z.size)])
    engine = make_engine(app_db_url)
    with session_scope(engine) as s:
        assert get_item(s, TREATMENT, "folder", folder_key(exp, folders[0].name)) is None

    conf = {
        "base_dir": str(tmp_path / "mic"),
        "experiment_id": exp,
        "work_dir": str(tmp_path / "w"),
    }
    res = run_dag("reef_treatment_upload", conf=conf)
    assert res.state == "success", res.task_states
    with _hook() as hook:
        art = hook.read(ds, stage=True)
        assert [v["version"] for v in art["versions"]] == ["v0"] and art["staging"] is None
        listing = hook.list_files(ds)
        assert listing == {f"{f.name}.zip": listing[f"{f.name}.zip"] for f in folders}
        assert listing[f"{folders[0].name}.zip"] == z.size
        assert_zip_equals_folder(download(hook, ds, f"{folders[0].name}.zip"), folders[0])


def test_start_end_range_is_swapped_and_unknown_folder_fails_fast(
    hypha, run_dag, app_db_url, tmp_path: Path
):
    exp = "reef-e2e-range"
    folders = generate_timelapse(tmp_path / "mic", exp, n_folders=5, grid=GRID)
    base = {
        "base_dir": str(tmp_path / "mic"),
        "experiment_id": exp,
        "work_dir": str(tmp_path / "w"),
    }
    res = run_dag("reef_treatment_upload", conf={**base, "start_folder": f"{exp}_nope"})
    assert res.state == "failed" and res.task_states["select_folders"] == "failed"
    res = run_dag(
        "reef_treatment_upload",
        conf={**base, "start_folder": folders[2].name, "end_folder": folders[1].name},
    )
    assert res.state == "success", res.task_states
    with _hook() as hook:
        assert sorted(hook.list_files(treatment_dataset_alias(exp))) == [
            f"{folders[1].name}.zip",
            f"{folders[2].name}.zip",
        ]
