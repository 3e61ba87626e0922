"""End to end: ``reef_stitch_upload`` with dag.test() against the real Hypha server (artifact
manager on the real rclone S3 server) and the real PostgreSQL app database: the stitched level 0
downloaded from the artifact equals the known source mosaic, reruns add nothing, bad folders are
failed with their reason while the others go on."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import zarr
from zarr.storage import MemoryStore

from include.common.db import make_engine, session_scope
from include.common.items import get_item
from include.reef.pipeline import STITCH, folder_key, stitch_dataset_alias
from include.reef.samples import DEFAULT_CHANNELS, GridSpec, generate_timelapse, mosaic_region
from include.reef.stitch import StitchOptions, level_shapes
from tests.e2e import artefact_links

pytestmark = pytest.mark.e2e

GRID = GridSpec(rows=3, cols=3, tile=96, overlap=0.1)
OPTIONS = {"chunk": 64, "shard": 128, "min_level_size": 64}


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


def download_dataset(hook, ds: str) -> MemoryStore:
    """Every file of the committed dataset, through presigned GETs, into an in-memory zarr store."""
    files = hook.list_files(ds)
    store: dict[str, bytes] = {}
    with httpx.Client(timeout=60, follow_redirects=True) as client:
        for path in files:
            url = hook.call("get_file", hook.artifact_id(ds), file_path=path)
            r = client.get(url)
            r.raise_for_status()
            assert len(r.content) == files[path]
            name = path.rpartition("/")[2]
            if name.startswith("c.") and name.endswith(".zip"):  # a chunk row zip: its shards
                parent = path.rpartition("/")[0]
                with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
                    for entry in zf.namelist():
                        store[f"{parent}/{entry}"] = zf.read(entry)
            else:
                store[path] = r.content
    from zarr.core.buffer import default_buffer_prototype

    proto = default_buffer_prototype()
    return MemoryStore({k: proto.buffer.from_bytes(v) for k, v in store.items()})


def test_stitch_upload_equals_mosaic_rerun_adds_nothing_bad_folders_fail(
    hypha, run_dag, app_db_url, tmp_path: Path
):
    exp = "reef-e2e-stitch"
    folders = generate_timelapse(tmp_path / "mic", exp, n_folders=4, grid=GRID)
    # folders[1]: coordinates missing; folders[2]: a corrupt tile. folders[0] is fine.
    (folders[1] / "0" / "coordinates.csv").unlink()
    (folders[2] / "0" / "A1_4_0_Fluorescence_488_nm_Ex.bmp").write_bytes(b"BM broken")
    stitched_dir = tmp_path / "stitched"
    conf = {
        "base_dir": str(tmp_path / "mic"),
        "experiment_id": exp,
        "stitched_dir": str(stitched_dir),
        "stitch_options": OPTIONS,
        "channels": [],
        "settle_seconds": 0,  # the bad folders were just modified
    }
    res = run_dag("reef_stitch_upload", conf=conf)
    # the pipeline worked: green, with the two bad folders as item errors on the summary page
    assert res.state == "success", res.task_states
    assert res.outcome["line"].startswith("⚠ 2 item errors"), res.outcome
    assert res.note and "· ⚠ 2 item errors" in res.note and "[Summary](" in res.note
    from include.common.publish import artefact_path

    html = artefact_path(res.dag_id, res.run_id, "summary.html").read_text()
    assert "coordinates.csv" in html and "artifacts/" in html and "composite.png" in html
    assert "timelapse" in html
    # every Hypha link on the page opens without a token (a user clicking it has none)
    hypha_links = artefact_links.external_links(html, hypha.url)
    ws = hypha.airflow_connection()["extra"]["workspace"]
    assert {
        f"{hypha.url}/{ws}/artifacts/{stitch_dataset_alias(exp, t)}"
        for t in ("2025-04-29T15:38:36.107800", "2025-04-29T18:38:36.107800")
    } | {f"{hypha.url}/{ws}/artifacts/{exp}-timelapse"} <= set(hypha_links), hypha_links
    for url in hypha_links:
        status, body = artefact_links.fetch_anonymous(url)
        assert status == 200, (url, status, body[:300])
        assert json.loads(body)["id"].endswith(url.rpartition("/")[2])
    # ... and so do the files behind them (the composite preview of a timepoint)
    first = f"{hypha.url}/{ws}/artifacts/{stitch_dataset_alias(exp, '2025-04-29T15:38:36.107800')}"
    status, png = artefact_links.fetch_anonymous(first + "/files/previews/composite.png")
    assert status == 200 and png.startswith(b"\x89PNG"), (status, png[:200])
    engine = make_engine(app_db_url)
    with session_scope(engine) as s:
        ok = get_item(s, STITCH, "folder", folder_key(exp, folders[0].name))
        miss = get_item(s, STITCH, "folder", folder_key(exp, folders[1].name))
        corrupt = get_item(s, STITCH, "folder", folder_key(exp, folders[2].name))
        assert ok.status == "done"
        assert miss.status == "failed" and "coordinates.csv" in miss.error
        assert corrupt.status == "failed" and "A1_4_0_Fluorescence_488_nm_Ex.bmp" in corrupt.error
        # the newest folder (settled) is processed too
        assert get_item(s, STITCH, "folder", folder_key(exp, folders[3].name)).status == "done"
    # nothing deleted from the sources; the local zarr removed only for the committed folder
    assert (folders[2] / "0" / "A1_4_0_Fluorescence_488_nm_Ex.bmp").exists()
    assert not (stitched_dir / exp / f"{folders[0].name}.zarr").exists()
    assert (stitched_dir / exp / "previews" / folders[0].name / "composite.png").is_file()

    ds = stitch_dataset_alias(exp, "2025-04-29T15:38:36.107800")
    with _hook() as hook:
        art = hook.read(ds)
        assert len(art["versions"]) == 1 and not hook.is_staged(ds)
        listing = hook.list_files(ds)
        levels = len(level_shapes(GRID.shape, StitchOptions(**OPTIONS)))
        assert {p.split("/")[0] for p in listing} == {
            *(str(i) for i in range(levels)),
            "previews",
            "zarr.json",
            "stitch_result.json",
        }
        assert {"previews/composite.png", "previews/Fluorescence_488_nm_Ex.png"} <= set(listing)
        store = download_dataset(hook, ds)
        movie = hook.list_files(f"{exp}-timelapse")
        assert list(movie) == ["timelapse.webp"]
    root = zarr.open_group(store, mode="r")
    assert root.attrs["reef"]["channels"] == list(DEFAULT_CHANNELS)
    ome = root.attrs["ome"]
    assert [c["label"] for c in ome["omero"]["channels"]] == list(DEFAULT_CHANNELS)
    assert [a["name"] for a in ome["multiscales"][0]["axes"]] == ["c", "y", "x"]
    for ci in range(len(DEFAULT_CHANNELS)):
        level0 = root["0"][ci]
        truth = mosaic_region(ci, 0, 0, GRID.shape[0], 0, GRID.shape[1])
        assert np.array_equal(level0, truth)

    # rerun: the good folder is not touched again, the failed ones fail again with their reason
    res2 = run_dag("reef_stitch_upload", conf=conf)
    assert res2.state == "success" and res2.outcome["errors"] == 2
    with _hook() as hook:
        art2 = hook.read(ds)
        assert len(art2["versions"]) == 1
        assert hook.list_files(ds) == listing

    # fix the bad folders: the next run stitches and uploads exactly those two
    # (this time with each chunk row of a level uploaded as one zip, as the original did)
    generate_timelapse(tmp_path / "mic", exp, n_folders=4, grid=GRID)
    res3 = run_dag("reef_stitch_upload", conf={**conf, "zip_chunk_rows": True})
    assert res3.state == "success", res3.task_states
    with session_scope(engine) as s:
        for f in folders[:3]:
            assert get_item(s, STITCH, "folder", folder_key(exp, f.name)).status == "done"
    with _hook() as hook:
        assert len(hook.read(ds)["versions"]) == 1 and hook.list_files(ds) == listing
        ds1 = stitch_dataset_alias(exp, "2025-04-29T16:38:36.107800")
        zipped = hook.list_files(ds1)
        assert "0/c.0.0.zip" in zipped
        assert not [
            p for p in zipped if p.rpartition("/")[2].startswith("c.") and not p.endswith(".zip")
        ]
        store1 = download_dataset(hook, ds1)
    level0 = zarr.open_group(store1, mode="r")["0"][1]
    assert np.array_equal(level0, mosaic_region(1, 1, 0, GRID.shape[0], 0, GRID.shape[1]))
    # zarrs and row zips removed after commit; previews and the timelapse stay
    assert sorted(p.name for p in (stitched_dir / exp).iterdir()) == ["previews", "timelapse.webp"]


def test_rerun_after_a_crash_between_upload_and_commit(hypha, run_dag, app_db_url, tmp_path: Path):
    """A previous run died after stitching A and uploading one of its channels (staged, not
    committed) and while writing B's zarr. The next run finishes both: one version each, the
    listing is exactly the local files, nothing was recorded before its commit."""
    from imaging.hooks.hypha import HyphaArtifactHook
    from include.reef.pipeline import prepare_stitch_datasets, stitch_one, upload_channel

    exp = "reef-e2e-crash"
    folders = generate_timelapse(tmp_path / "mic", exp, n_folders=3, grid=GRID)
    stitched_dir = tmp_path / "stitched"
    engine = make_engine(app_db_url)
    a = {"name": folders[0].name, "path": str(folders[0]), "taken_at": "2025-04-29T15:38:36.107800"}
    st = stitch_one(engine, a, experiment_id=exp, stitched_dir=stitched_dir, options=OPTIONS)
    with HyphaArtifactHook() as hook:
        plan = prepare_stitch_datasets(hook, [st], experiment_id=exp)
        upload_channel(hook, plan["channels"][0])
        assert hook.is_staged(st["dataset"])
    partial_b = stitched_dir / exp / f".{folders[1].name}.zarr.partial"
    (partial_b / "junk").mkdir(parents=True)
    with session_scope(engine) as s:
        assert get_item(s, STITCH, "folder", folder_key(exp, folders[0].name)) is None

    conf = {
        "base_dir": str(tmp_path / "mic"),
        "experiment_id": exp,
        "stitched_dir": str(stitched_dir),
        "stitch_options": OPTIONS,
    }
    res = run_dag("reef_stitch_upload", conf=conf)
    assert res.state == "success", res.task_states
    with session_scope(engine) as s:
        for f in folders[:2]:
            assert get_item(s, STITCH, "folder", folder_key(exp, f.name)).status == "done"
    with _hook() as hook:
        for taken in ("2025-04-29T15:38:36.107800", "2025-04-29T16:38:36.107800"):
            ds = stitch_dataset_alias(exp, taken)
            art = hook.read(ds, stage=True)
            assert [v["version"] for v in art["versions"]] == ["v0"] and art["staging"] is None
            listing = hook.list_files(ds)
            levels = len(level_shapes(GRID.shape, StitchOptions(**OPTIONS)))
            # one image: the root group + one array per level, each exactly once
            n_meta = len([p for p in listing if p.endswith("zarr.json")])
            assert n_meta == 1 + levels
            store = download_dataset(hook, ds)
            t = 0 if taken.startswith("2025-04-29T15") else 1
            level0 = zarr.open_group(store, mode="r")["0"][2]
            assert np.array_equal(level0, mosaic_region(2, t, 0, GRID.shape[0], 0, GRID.shape[1]))
    assert not partial_b.exists()
    assert not list((stitched_dir / exp).glob("*.zarr"))  # removed after verified commits
