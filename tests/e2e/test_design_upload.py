"""End to end: ``design_upload`` runs with dag.test() on generated designs with near-duplicates and
bad files, against the real PostgreSQL app database, a real SFTP server (or a mounted NAS folder),
the real local S3 server and the fake Etsy Open API v3 server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from sqlalchemy import func, select

from include.common.db import make_engine, session_scope
from include.common.models import ItemRecord
from include.design import samples
from include.design.models import DesignDuplicate, DesignImage, DesignListing, DesignMockup
from tests.fakes.etsy_server import FakeEtsyServer
from tests.plugins.test_nas_hook import SftpServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def etsy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEtsyServer]:
    srv = FakeEtsyServer().start()
    monkeypatch.setenv("AIRFLOW_CONN_ETSY_DEFAULT", json.dumps(srv.airflow_connection()))
    yield srv
    srv.stop()


def _report(run_id: str) -> dict[str, Any]:
    from include.common.files import safe_name
    from include.common.settings import get_settings

    return json.loads(
        (
            get_settings().data_dir / "design" / "runs" / safe_name(run_id) / "report.json"
        ).read_text()
    )


def _dup_targets(report: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, ref in report["duplicates"].items():
        kind, _, target = ref.partition(":")
        out[key] = (
            f"nas:{PurePosixPath(target).stem}" if kind == "nas" else PurePosixPath(target).stem
        )
    return out


@pytest.mark.slow
def test_design_upload_sftp_nas_and_etsy(
    run_dag, app_db_url, etsy, tmp_path: Path, monkeypatch
) -> None:
    demo = samples.build_demo(tmp_path / "demo", n_designs=4, shop="e2e-shop")
    sftp = SftpServer(tmp_path / "demo").start()  # the demo's nas/ folder is the SFTP NAS root
    try:
        monkeypatch.setenv("AIRFLOW_CONN_NAS_DEFAULT", json.dumps(sftp.airflow_connection("/nas")))
        conf = {
            "source_dir": demo["source_dir"],
            "shop": "e2e-shop",
            "template": "poster",
            "user_id": "u-42",
            "batch_mb": 0.15,
        }
        result = run_dag("design_upload", conf=conf)
        assert result.state == "success", result.task_states
        assert (
            sum(1 for t in result.task_states if t.startswith("processing_and_formatting_images"))
            >= 1
        )

        exp = demo["expected"]
        rep = _report(result.run_id)
        assert {k: v["code"] for k, v in rep["errors"].items()} == exp["errors"]
        assert sorted(rep["new"]) == sorted(exp["new"])
        assert _dup_targets(rep) == exp["duplicates"]

        engine = make_engine(app_db_url)
        nas_root = Path(demo["nas_root"])
        with session_scope(engine) as s:
            rows = s.scalars(select(DesignImage).where(DesignImage.shop == "e2e-shop")).all()
            assert sorted(r.source_name for r in rows) == sorted(exp["new"])
            assert all(r.user_id == "u-42" and (nas_root / r.nas_path).is_file() for r in rows)
            ids = [r.id for r in rows]
            assert s.scalar(
                select(func.count())
                .select_from(DesignMockup)
                .where(DesignMockup.design_image_id.in_(ids))
            ) == 3 * len(rows)
            listings = s.scalars(
                select(DesignListing).where(DesignListing.design_image_id.in_(ids))
            ).all()
            assert {x.state for x in listings} == {"complete"} and len(listings) == len(rows)
            dups = s.scalars(
                select(DesignDuplicate).where(DesignDuplicate.run_id == result.run_id)
            ).all()
            assert {d.source_name for d in dups} == set(exp["duplicates"])
            ledger = {
                r.item_key: r.status
                for r in s.scalars(
                    select(ItemRecord).where(
                        ItemRecord.pipeline == "design_upload", ItemRecord.run_id == result.run_id
                    )
                )
            }
            pre = f"{result.run_id}/e2e-shop/"
            assert ledger[f"{pre}{exp['new'][0]}"] == "done"
            assert {ledger[f"{pre}{k}"] for k in exp["errors"]} == {"failed"}
            assert {ledger[f"{pre}{k}"] for k in exp["duplicates"]} == {"skipped"}
        # the summary page: listings previewed with a published mockup thumbnail, duplicates with
        # the copy kept
        from include.common.publish import artefact_path

        page = artefact_path("design_upload", result.run_id, "summary.html").read_text()
        assert "Art print" in page and "Wall Art" in page and "Etsy listing 1" in page
        assert "/artefacts/design_upload/" in page and "mockups/" in page
        assert "design_00.png" in page and "design_00_copy_swapformat.jpg" in page
        assert len(etsy.listings) == len(rows)
        assert all(len(etsy.images(lid)) == 3 for lid in etsy.listings)
        mockups = list((nas_root / "e2e-shop" / "poster" / "mockups").glob("*.jpg"))
        assert len(mockups) == 3 * len(rows)

        # the same upload again: everything is a duplicate of the database, nothing new on Etsy
        again = run_dag("design_upload", conf=conf)
        assert again.state == "success", again.task_states
        rep2 = _report(again.run_id)
        assert rep2["new"] == [] and set(exp["new"]) <= set(rep2["duplicates"])
        assert len(etsy.listings) == len(rows)
        with session_scope(engine) as s:  # run 1's history is kept: its rows still read "done"
            first = s.scalar(
                select(ItemRecord.status).where(ItemRecord.item_key == f"{pre}{exp['new'][0]}")
            )
            assert first == "done"
    finally:
        sftp.stop()


@pytest.mark.slow
def test_design_upload_from_s3_to_mounted_nas_and_outbox(
    run_dag, app_db_url, s3_server, tmp_path: Path, monkeypatch
) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    monkeypatch.delenv("AIRFLOW_CONN_ETSY_DEFAULT", raising=False)
    demo = samples.build_demo(tmp_path / "demo", n_designs=3)
    nas_root = tmp_path / "share"
    monkeypatch.setenv(
        "AIRFLOW_CONN_NAS_DEFAULT",
        json.dumps({"conn_type": "fs", "extra": {"path": str(nas_root)}}),
    )
    hook = S3Hook(aws_conn_id="imaging_s3")
    src = Path(demo["source_dir"])
    for p in sorted(src.iterdir()):
        hook.load_file(str(p), key=f"uploads/e2e-s3/{p.name}", bucket_name="imaging", replace=True)

    conf = {"source_dir": "s3://imaging/uploads/e2e-s3/", "shop": "s3-shop", "template": "poster"}
    result = run_dag("design_upload", conf=conf)
    assert result.state == "success", result.task_states
    rep = _report(result.run_id)
    exp = demo["expected"]
    assert {k: v["code"] for k, v in rep["errors"].items()} == exp["errors"]
    # the legacy NAS design is not on this NAS: its variant is new here
    assert sorted(rep["new"]) == sorted([*exp["new"], "legacy_again.png"])
    assert {k: v for k, v in _dup_targets(rep).items()} == {
        k: v for k, v in exp["duplicates"].items() if not v.startswith("nas:")
    }
    with session_scope(make_engine(app_db_url)) as s:
        listings = s.scalars(select(DesignListing).where(DesignListing.shop == "s3-shop")).all()
        assert len(listings) == len(rep["new"]) and {x.state for x in listings} == {"outbox"}
        for x in listings:
            doc = json.loads((Path(x.outbox_path) / "listing.json").read_text())
            assert doc["idempotency_tag"] == x.idempotency_tag and len(doc["images"]) == 3
    stored = [p for p in (nas_root / "s3-shop" / "poster").glob("*") if p.is_file()]
    assert len(stored) == len(rep["new"])
    # no silent fallback: the run's outcome names the missing Etsy connection and the outbox
    from include.common.publish import artefact_path

    summary = json.loads(artefact_path("design_upload", result.run_id, "summary.json").read_text())
    assert any("etsy_default" in w and "outbox" in w for w in summary["warnings"])
    assert not any("nas_default" in w for w in summary["warnings"])


def test_dag_wiring_follows_the_conventions(airflow_db: Path, tmp_path: Path) -> None:
    from imaging.runner import load_dag

    dag = load_dag("design_upload")
    demo_conf = samples.generate_demo(tmp_path / "demo")["design_upload"]
    assert set(demo_conf) <= set(dag.params) and Path(demo_conf["source_dir"]).is_dir()
    assert dag.doc_md and "per-item error isolation" in dag.doc_md
    assert set(dag.params.keys()) >= {"source_dir", "shop", "template", "user_id"}
    for name in dag.params:
        assert dag.params.get_param(name).description, name
    assert {t.task_id for t in dag.tasks} == {
        "plan_batches",
        "processing_and_formatting_images",
        "backfill_nas_hashes",
        "checking_for_duplicates",
        "upload_to_nas",
        "update_database",
        "creating_product_mockups",
        "uploading_to_etsy_store",
        "better_copy_questions",
        "approval_kwargs",
        "replace_stored_design",
        "apply_replacements",
        "summary",
    }
    # nullable optional params: the trigger form submits with its defaults
    for name in ("source_dir", "shop", "user_id", "templates_dir"):
        assert dag.params.get_param(name).value is None, name
    ask = dag.get_task("replace_stored_design")
    # two buttons, no form field that must be typed (the DAG's params are not form fields)
    assert not ask.partial_kwargs.get("params")
    assert ask.partial_kwargs["options"] == ["Replace the stored design", "Keep the stored design"]
    assert all(t.retries >= 2 for t in dag.tasks) and "design" in dag.tags
    src = Path(__file__).resolve().parents[2].joinpath("dags", "design_upload.py").read_text()
    # wiring only: no SQL, sessions, ledger writes or error sorting in the DAG file
    for word in ("select(", "session", "record_item", "raise ", "class "):
        assert word not in src, word
    assert len(src.splitlines()) < 200
    top = [ln for ln in src.splitlines() if ln.startswith(("import ", "from "))]
    assert all(
        ln.split()[1].split(".")[0] in {"__future__", "datetime", "typing", "airflow", "imaging"}
        for ln in top
    ), top


@pytest.mark.slow
def test_etsy_quota_runs_out_then_the_next_run_completes_the_listings(
    run_dag, app_db_url, tmp_path: Path, monkeypatch
) -> None:
    demo = samples.build_demo(tmp_path / "demo", n_designs=3)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NAS_DEFAULT",
        json.dumps({"conn_type": "fs", "extra": {"path": demo["nas_root"]}}),
    )
    srv = FakeEtsyServer(per_day=7).start()  # one listing + its 3 images take 6 requests
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ETSY_DEFAULT", json.dumps(srv.airflow_connection()))
        conf = {"source_dir": demo["source_dir"], "shop": "quota-shop", "template": "poster"}
        first = run_dag("design_upload", conf=conf)
        assert first.state == "failed"
        assert first.task_states["uploading_to_etsy_store"] == "failed"
        assert first.task_states["update_database"] == "success"
        rep = _report(first.run_id)  # written although the run failed
        states = [v["state"] for v in rep["listings"].values()]
        assert states.count("complete") == 1 and states.count("failed") == len(rep["new"]) - 1
        assert len(srv.state.requests) == 7  # stopped at the quota, no hammering

        srv.state.used_today, srv.state.per_day = 0, 10_000  # the next day
        second = run_dag("design_upload", conf=conf)
        assert second.state == "success", second.task_states
        rep2 = _report(second.run_id)
        assert rep2["new"] == []
        assert {v["state"] for v in rep2["listings"].values()} == {"complete"}
        assert len(rep2["listings"]) == len(rep["new"]) - 1
        assert len(srv.listings) == len(
            rep["new"]
        )  # the listing created before the quota ran out was reused
        assert all([i["rank"] for i in srv.images(lid)] == [1, 2, 3] for lid in srv.listings)
        with session_scope(make_engine(app_db_url)) as s:
            rows = s.scalars(select(DesignListing).where(DesignListing.shop == "quota-shop")).all()
            assert {r.state for r in rows} == {"complete"} and len(
                {r.listing_id for r in rows}
            ) == len(rows)
    finally:
        srv.stop()


def test_design_upload_on_the_sqlite_app_db(
    run_dag, use_sqlite_app_db, tmp_path: Path, monkeypatch
) -> None:
    """The demo's embedded database: the same run on SQLite (WAL), mounted NAS, outbox."""
    monkeypatch.delenv("AIRFLOW_CONN_ETSY_DEFAULT", raising=False)
    demo = samples.build_demo(tmp_path / "demo", n_designs=2, shop="lite-shop")
    monkeypatch.setenv(
        "AIRFLOW_CONN_NAS_DEFAULT",
        json.dumps({"conn_type": "fs", "extra": {"path": demo["nas_root"]}}),
    )
    conf = {
        "source_dir": demo["source_dir"],
        "shop": "lite-shop",
        "template": "poster",
        "batch_mb": 0.2,
    }
    result = run_dag("design_upload", conf=conf)
    assert result.state == "success", result.task_states
    rep = _report(result.run_id)
    assert sorted(rep["new"]) == sorted(demo["expected"]["new"])
    assert _dup_targets(rep) == demo["expected"]["duplicates"]
    with session_scope(make_engine(use_sqlite_app_db)) as s:
        n = s.scalar(
            select(func.count()).select_from(DesignImage).where(DesignImage.shop == "lite-shop")
        )
        assert n == len(rep["new"])


def test_single_file_upload_is_the_same_dag(
    run_dag, app_db_url, tmp_path: Path, monkeypatch
) -> None:
    """The seed's single-file "original workflow" is a run with one batch of one file."""
    monkeypatch.delenv("AIRFLOW_CONN_ETSY_DEFAULT", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_NAS_DEFAULT",
        json.dumps({"conn_type": "fs", "extra": {"path": str(tmp_path / "nas")}}),
    )
    src = tmp_path / "one"
    src.mkdir()
    samples.make_design(123, (500, 400)).save(src / "only.png")
    result = run_dag(
        "design_upload", conf={"source_dir": str(src), "shop": "single-shop", "template": "poster"}
    )
    assert result.state == "success", result.task_states
    assert [t for t in result.task_states if t.startswith("processing_and_formatting_images")] == [
        "processing_and_formatting_images[0]"
    ]
    rep = _report(result.run_id)
    assert (
        rep["new"] == ["only.png"]
        and rep["errors"] == {}
        and rep["listings"]["only.png"]["state"] == "outbox"
    )


def test_a_better_copy_is_replaced_after_a_click_and_never_asked_again(
    run_dag, app_db_url, tmp_path: Path, monkeypatch
) -> None:
    """The approval form has two buttons and no field; clicking "Replace" (the REST call the UI
    makes) replaces the stored design; the same upload later is not asked about again."""
    from PIL import Image

    from include.design.approval import KEEP_OPTION, REPLACE_OPTION

    nas_root = tmp_path / "nas"
    monkeypatch.setenv(
        "AIRFLOW_CONN_NAS_DEFAULT",
        json.dumps({"conn_type": "fs", "extra": {"path": str(nas_root)}}),
    )
    im = samples.make_design(21, (600, 600), transparent=True)
    first_dir, second_dir = tmp_path / "up1", tmp_path / "up2"
    first_dir.mkdir()
    second_dir.mkdir()
    im.resize((300, 300), Image.Resampling.BILINEAR).save(first_dir / "bloom_small.png")
    im.save(second_dir / "bloom_full_resolution_master.png")
    conf = {"source_dir": str(first_dir), "shop": "better-shop", "template": "poster"}
    assert run_dag("design_upload", conf=conf).state == "success"

    asked: list[dict[str, Any]] = []

    def click(choice: str) -> Any:
        def answer(detail: dict[str, Any]) -> dict[str, Any]:
            asked.append(detail)
            assert detail["options"] == [REPLACE_OPTION, KEEP_OPTION] and not detail.get("params")
            return {"chosen_options": [choice], "params_input": {}}

        return answer

    conf2 = {**conf, "source_dir": str(second_dir)}
    second = run_dag("design_upload", conf=conf2, approve=click(REPLACE_OPTION))
    assert second.state == "success", second.task_states
    assert len(asked) == 1 and "/artefacts/" in asked[0]["body"]
    engine = make_engine(app_db_url)
    with session_scope(engine) as s:
        row = s.scalars(select(DesignImage).where(DesignImage.shop == "better-shop")).one()
        assert row.source_name == "bloom_full_resolution_master.png"
        assert row.width == 600 and (nas_root / row.nas_path).is_file()
    third = run_dag("design_upload", conf=conf2, approve=click(KEEP_OPTION))
    assert third.state == "success" and len(asked) == 1  # not asked again, not undone
    with session_scope(engine) as s:
        again = s.scalars(select(DesignImage).where(DesignImage.shop == "better-shop")).one()
        assert again.source_name == "bloom_full_resolution_master.png"
