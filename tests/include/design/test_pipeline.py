"""The pipeline steps end to end against the real PostgreSQL app database, a NAS folder and the fake
Etsy server (without Airflow; the DAG run is in tests/e2e/test_design_upload.py)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from sqlalchemy import func, select

from include.common.db import make_engine, session_scope
from include.design import batching, pipeline, samples
from include.design.models import (
    DesignDuplicate,
    DesignImage,
    DesignListing,
    DesignMockup,
    DesignNasFile,
)
from include.design.nas import MountedNas

WHEN = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return samples.build_demo(tmp_path_factory.mktemp("demo"), n_designs=4)


def _run(
    engine: Any, demo: dict[str, Any], work: Path, *, shop: str, run_id: str, client: Any = None
) -> list[dict[str, Any]]:
    files = batching.list_local(demo["source_dir"])
    batches = batching.plan_batches(files, target_bytes=150_000)
    assert len(batches) > 1
    processed: list[dict[str, Any]] = []
    for n, batch in enumerate(batches):
        processed += pipeline.process_batch(
            [{"key": f.key, "path": f.location, "skip": f.skip} for f in batch],
            work / "prepared",
            workers=2 if n == 0 else 1,
        )
    backend = MountedNas(demo["nas_root"])
    pipeline.backfill_nas(engine, backend, shop)
    items = pipeline.check_duplicates(engine, processed, shop=shop, run_id=run_id)
    items = pipeline.upload_to_nas(backend, items, shop=shop, template=demo["template"], when=WHEN)
    items = pipeline.record_designs(
        engine, items, shop=shop, template=demo["template"], user_id="u1", run_id=run_id
    )
    kw = {"templates_dir": demo["templates_dir"], "template": demo["template"], "shop": shop}
    items = pipeline.make_mockups(engine, backend, items, work_dir=work, **kw)
    return pipeline.publish_listings(engine, client, items, outbox_root=work / "outbox", **kw)


def test_pipeline_steps_on_postgres(app_db_url: str, demo: dict[str, Any], tmp_path: Path) -> None:
    engine = make_engine(app_db_url)
    shop = "demo-shop"
    exp = demo["expected"]
    items = _run(engine, demo, tmp_path, shop=shop, run_id="run-1")
    summary = pipeline.summarise(items)

    assert {k: v["code"] for k, v in summary["errors"].items()} == exp["errors"]
    assert sorted(summary["new"]) == sorted(exp["new"])
    got_dups = {}
    for key, ref in summary["duplicates"].items():
        kind, _, target = ref.partition(":")
        got_dups[key] = (
            f"nas:{PurePosixPath(target).stem}" if kind == "nas" else PurePosixPath(target).stem
        )
    assert got_dups == exp["duplicates"]

    nas_root = Path(demo["nas_root"])
    with session_scope(engine) as s:
        rows = s.scalars(select(DesignImage).where(DesignImage.shop == shop)).all()
        assert sorted(r.source_name for r in rows) == sorted(exp["new"])
        for r in rows:
            assert (nas_root / r.nas_path).is_file()
            name = PurePosixPath(r.nas_path).name
            assert r.nas_path.startswith(f"{shop}/poster/") and "_20260301T120000_" in name
        dups = s.scalars(select(DesignDuplicate).where(DesignDuplicate.run_id == "run-1")).all()
        assert {d.source_name for d in dups} == set(exp["duplicates"])
        in_run = [d for d in dups if d.matched_kind == "run"]
        assert in_run and all(d.design_image_id for d in in_run)  # points at the stored design
        assert (
            s.scalar(
                select(func.count()).select_from(DesignNasFile).where(DesignNasFile.shop == shop)
            )
            == 1
        )
        # this test's designs only: the session's app DB is shared with other tests
        ids = [r.id for r in rows]
        mock_count = (
            select(func.count())
            .select_from(DesignMockup)
            .where(DesignMockup.design_image_id.in_(ids))
        )
        n_mock = s.scalar(mock_count)
        assert n_mock == 3 * len(rows)  # three scenes
        listings = s.scalars(select(DesignListing).where(DesignListing.shop == shop)).all()
        assert len(listings) == len(rows) and {x.state for x in listings} == {"outbox"}
    outbox = json.loads((Path(listings[0].outbox_path) / "listing.json").read_text())
    title = outbox["form"]["title"]
    assert "Art print" in title and len(outbox["images"]) == 3
    assert "design" not in title.lower() and len(title) <= 140  # never the file name

    # a rerun of the same run (task retries) changes nothing
    nas_files = sorted(p for p in nas_root.rglob("*") if p.is_file())
    again = pipeline.summarise(_run(engine, demo, tmp_path, shop=shop, run_id="run-1"))
    assert again["new"] == summary["new"] and again["duplicates"] == summary["duplicates"]
    assert sorted(p for p in nas_root.rglob("*") if p.is_file()) == nas_files
    with session_scope(engine) as s:
        assert s.scalar(
            select(func.count()).select_from(DesignImage).where(DesignImage.shop == shop)
        ) == len(rows)
        assert s.scalar(mock_count) == n_mock

    # a new upload of the same files: all are duplicates of the database / NAS now
    third = pipeline.summarise(_run(engine, demo, tmp_path / "w3", shop=shop, run_id="run-2"))
    assert third["new"] == []
    assert {k for k, v in third["duplicates"].items() if v.startswith("database:")} >= set(
        exp["new"]
    )


def test_two_runs_racing_store_one_row(app_db_url: str, tmp_path: Path) -> None:
    """Both runs decided "new" before either inserted: the unique constraint keeps one row and the
    loser records a duplicate."""
    engine = make_engine(app_db_url)
    src = tmp_path / "src"
    src.mkdir()
    samples.make_design(7, (200, 200)).save(src / "a.png")
    processed = pipeline.process_batch(
        [{"key": "a.png", "path": str(src / "a.png")}], tmp_path / "p"
    )
    backend = MountedNas(tmp_path / "nas")
    shop = "race-shop"
    decided = {
        r: pipeline.check_duplicates(engine, processed, shop=shop, run_id=r) for r in ("r-a", "r-b")
    }
    assert all(d[0]["decision"] == "new" for d in decided.values())
    out = {}
    for r, d in decided.items():
        up = pipeline.upload_to_nas(backend, d, shop=shop, template="t", when=WHEN)
        out[r] = pipeline.record_designs(
            engine, up, shop=shop, template="t", user_id=None, run_id=r
        )
    assert out["r-a"][0]["decision"] == "new"
    assert out["r-b"][0]["decision"] == "duplicate" and out["r-b"][0]["matched_kind"] == "database"
    with session_scope(engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(DesignImage).where(DesignImage.shop == shop))
            == 1
        )
        d = s.scalars(select(DesignDuplicate).where(DesignDuplicate.run_id == "r-b")).one()
        assert d.design_image_id == out["r-a"][0]["design_image_id"]


def test_etsy_listings_through_the_fake_server(
    app_db_url: str, demo: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imaging.hooks.etsy import EtsyHook
    from tests.fakes.etsy_server import FakeEtsyServer

    srv = FakeEtsyServer().start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ETSY_PIPE", json.dumps(srv.airflow_connection()))
        hook = EtsyHook(etsy_conn_id="etsy_pipe", backoff_base=0.05)
        engine = make_engine(app_db_url)
        srv.fail(r"^POST .*/listings$", 500, times=1, after_effect=True)  # one lost response
        items = _run(engine, demo, tmp_path, shop="etsy-shop", run_id="e-1", client=hook)
        summary = pipeline.summarise(items)
        assert len(summary["listings"]) == len(summary["new"]) > 0
        assert {v["state"] for v in summary["listings"].values()} == {"complete"}
        assert len(srv.listings) == len(summary["new"])  # never two listings for one design
        for lid in srv.listings:
            assert [i["rank"] for i in srv.images(lid)] == [1, 2, 3]
        before = len(srv.state.requests)
        _run(engine, demo, tmp_path, shop="etsy-shop", run_id="e-1", client=hook)  # retry: no calls
        assert not [r for r in srv.state.requests[before:] if r[0] == "POST"]
    finally:
        srv.stop()


def test_process_batch_pool_equals_inline_and_isolates_bad_files(
    bad_files: dict[str, str], tmp_path: Path
) -> None:
    good = []
    for i in range(3):
        p = tmp_path / f"g{i}.png"
        samples.make_design(20 + i, (120, 120)).save(p)
        good.append({"key": p.name, "path": str(p)})
    bad = [{"key": Path(p).name, "path": p} for p in bad_files.values()]
    files = good + bad
    pooled = pipeline.process_batch(files, tmp_path / "p1", workers=2)
    inline = pipeline.process_batch(files, tmp_path / "p2", workers=1)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "prepared"} for r in rows]  # noqa: E731
    assert strip(pooled) == strip(inline)
    assert [r["status"] for r in pooled[:3]] == ["ok"] * 3
    assert {r["key"]: r["code"] for r in pooled[3:]} == {
        Path(p).name: c for c, p in bad_files.items()
    }
    # a retry reuses the prepared outputs (same names, same sizes)
    again = pipeline.process_batch(files, tmp_path / "p1", workers=1)
    assert [r.get("prepared") for r in again] == [r.get("prepared") for r in pooled]


def test_a_nas_failure_fails_only_that_file(app_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(app_db_url)
    shop = "nasfail-shop"
    files = []
    for i in range(3):
        p = tmp_path / f"d{i}.png"
        samples.make_design(30 + i, (160, 160)).save(p)
        files.append({"key": p.name, "path": str(p)})
    items = pipeline.check_duplicates(
        engine, pipeline.process_batch(files, tmp_path / "p"), shop=shop, run_id="nf"
    )
    backend = MountedNas(tmp_path / "nas")
    # a different file already sits where d1 must go: never overwritten, d1 fails, the rest go on
    target = next(i for i in items if i["key"] == "d1.png")
    from include.design import nas as nas_logic

    rel = nas_logic.design_relpath(
        shop, "t", nas_logic.nas_filename("d1", "png", WHEN, target["sha256"], shop)
    )
    (tmp_path / "nas" / rel).parent.mkdir(parents=True)
    (tmp_path / "nas" / rel).write_bytes(b"someone else's file")
    up = pipeline.upload_to_nas(backend, items, shop=shop, template="t", when=WHEN)
    stored = pipeline.record_designs(engine, up, shop=shop, template="t", user_id=None, run_id="nf")
    summary = pipeline.summarise(stored)
    assert summary["new"] == ["d0.png", "d2.png"]
    assert (
        summary["errors"]["d1.png"]["code"] == "nas"
        and "different file" in summary["errors"]["d1.png"]["error"]
    )
    assert (tmp_path / "nas" / rel).read_bytes() == b"someone else's file"


def test_missing_template_reports_per_design(app_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(app_db_url)
    p = tmp_path / "x.png"
    samples.make_design(40, (100, 100)).save(p)
    items = pipeline.check_duplicates(
        engine,
        pipeline.process_batch([{"key": "x.png", "path": str(p)}], tmp_path / "p"),
        shop="tpl-shop",
        run_id="t",
    )
    backend = MountedNas(tmp_path / "nas")
    items = pipeline.record_designs(
        engine,
        pipeline.upload_to_nas(backend, items, shop="tpl-shop", template="nope", when=WHEN),
        shop="tpl-shop",
        template="nope",
        user_id=None,
        run_id="t",
    )
    out = pipeline.make_mockups(
        engine,
        backend,
        items,
        templates_dir=tmp_path,
        template="nope",
        shop="tpl-shop",
        work_dir=tmp_path,
    )
    assert "not found" in out[0]["mockup_error"]
    listed = pipeline.publish_listings(
        engine,
        None,
        out,
        templates_dir=tmp_path,
        template="nope",
        shop="tpl-shop",
        outbox_root=tmp_path / "ob",
    )
    assert "listing" not in listed[0]  # no mockups, no listing


def test_nas_backfill_hashes_once_and_records_bad_files(app_db_url: str, tmp_path: Path) -> None:
    import os

    engine = make_engine(app_db_url)
    shop = "backfill-shop"
    root = tmp_path / "nas"
    folder = root / shop / "poster"
    (folder / "mockups").mkdir(parents=True)
    for i in range(4):
        samples.make_design(60 + i, (150, 150)).save(folder / f"old_{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (folder / "readme.txt").write_text("ignored")
    samples.make_design(70, (150, 150)).save(folder / "mockups" / "old_0__wall.png")
    backend = MountedNas(root)
    first = pipeline.backfill_nas(engine, backend, shop, workers=2, chunk=3)
    none = {"aliases_added": 0, "alias_errors": []}  # no stored design lacks its crop alias
    assert first == {"seen": 5, "hashed": 4, "errors": 1, "skipped": 0, **none}
    assert pipeline.backfill_nas(engine, backend, shop) == {
        "seen": 5,
        "hashed": 0,
        "errors": 0,
        "skipped": 5,
        **none,
    }
    samples.make_design(80, (150, 150)).save(folder / "old_1.png")  # replaced by another design
    os.utime(folder / "old_1.png", ns=(1, 1))
    assert pipeline.backfill_nas(engine, backend, shop)["hashed"] == 1
    with session_scope(engine) as s:
        rows = {
            r.path: r for r in s.scalars(select(DesignNasFile).where(DesignNasFile.shop == shop))
        }
    assert (
        rows[f"{shop}/poster/broken.jpg"].phash is None
        and "corrupt" in rows[f"{shop}/poster/broken.jpg"].error
    )
    assert all(r.phash and r.alias_phash for p, r in rows.items() if p.endswith(".png"))
    # a new upload of old_2 is found as a NAS duplicate
    items = pipeline.check_duplicates(
        engine,
        pipeline.process_batch(
            [{"key": "again.png", "path": str(folder / "old_2.png")}], tmp_path / "p"
        ),
        shop=shop,
        run_id="b1",
    )
    assert (
        items[0]["decision"] == "duplicate"
        and items[0]["matched_ref"] == f"{shop}/poster/old_2.png"
    )


def test_worker_pool_restores_main_module(tmp_path: Path) -> None:
    import sys

    from include.design import workers

    main = sys.modules["__main__"]
    before = (getattr(main, "__file__", None), getattr(main, "__spec__", None))
    p = tmp_path / "a.png"
    samples.make_design(1, (64, 64)).save(p)
    q = tmp_path / "b.png"
    samples.make_design(2, (64, 64)).save(q)
    hashes = workers.hash_files([str(p), str(q)], workers=2, min_pool=1)
    assert hashes == workers.hash_files([str(p), str(q)], workers=1)
    assert (getattr(main, "__file__", None), getattr(main, "__spec__", None)) == before
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    safe = workers.hash_files_safe([str(p), str(bad), str(q)], workers=2, min_pool=1)
    assert [r.get("hashes") for r in safe] == [hashes[0].to_dict(), None, hashes[1].to_dict()]
    assert safe[1]["error"].startswith("not an image")


def test_duplicates_within_a_batch_and_across_batches(app_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(app_db_url)
    src = tmp_path / "src"
    src.mkdir()
    a, b = samples.make_design(90, (200, 200)), samples.make_design(91, (200, 200))
    a.save(src / "a.png")
    samples.v_watermark(a)[0].save(src / "a_copy.png")  # same batch as a.png
    b.save(src / "b.png")
    samples.flatten_white(b).save(src / "z_b_copy.jpg", quality=90)  # the other batch
    batch1 = [{"key": k, "path": str(src / k)} for k in ("a.png", "a_copy.png", "b.png")]
    batch2 = [{"key": "z_b_copy.jpg", "path": str(src / "z_b_copy.jpg")}]
    processed = pipeline.process_batch(batch1, tmp_path / "p") + pipeline.process_batch(
        batch2, tmp_path / "p"
    )
    items = {
        i["key"]: i
        for i in pipeline.check_duplicates(engine, processed, shop="xb-shop", run_id="xb")
    }
    assert items["a.png"]["decision"] == items["b.png"]["decision"] == "new"
    assert (items["a_copy.png"]["matched_kind"], items["a_copy.png"]["matched_ref"]) == (
        "run",
        "a.png",
    )
    assert (items["z_b_copy.jpg"]["matched_kind"], items["z_b_copy.jpg"]["matched_ref"]) == (
        "run",
        "b.png",
    )


def test_one_rejected_listing_does_not_stop_the_others(
    app_db_url: str, demo: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imaging.hooks.etsy import EtsyHook
    from tests.fakes.etsy_server import FakeEtsyServer

    srv = FakeEtsyServer().start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ETSY_ONE", json.dumps(srv.airflow_connection()))
        hook = EtsyHook(etsy_conn_id="etsy_one", backoff_base=0.05)
        engine = make_engine(app_db_url)
        srv.fail(r"^POST .*/listings$", 400, times=1)  # Etsy refuses the first listing
        items = _run(engine, demo, tmp_path, shop="one-shop", run_id="o-1", client=hook)
        states = [i["listing"]["state"] for i in items if i.get("listing")]
        assert states.count("failed") == 1 and states.count("complete") == len(states) - 1
        kw = {
            "templates_dir": demo["templates_dir"],
            "template": demo["template"],
            "shop": "one-shop",
        }
        again = pipeline.publish_listings(
            engine, hook, items, outbox_root=tmp_path / "ob", **kw
        )  # the retry
        assert {i["listing"]["state"] for i in again if i.get("listing")} == {"complete"}
        assert len(srv.listings) == len(states)
    finally:
        srv.stop()
