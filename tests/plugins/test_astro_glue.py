"""Astro DAG inputs (issue 15.3 / 13): an empty form param falls back to the triggering Asset
event's ``extra``, then to the installation setting (Variable ``imaging_astro_*``), never to a
hard-coded ``$IMAGING_DATA_DIR/astro``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from imaging.astro import asset_extras, inputs


def test_scheduled_run_uses_the_installation_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib, db = tmp_path / "my library", tmp_path / "scheduler.sqlite"
    monkeypatch.setenv("AIRFLOW_VAR_IMAGING_ASTRO_LIBRARY_DIR", str(lib))
    monkeypatch.setenv("AIRFLOW_VAR_IMAGING_ASTRO_SCHEDULER_DB", str(db))
    ctx = {"params": {"library_dir": None, "scheduler_db": None, "report_dir": None}}
    got = inputs(ctx, ["library_dir", "scheduler_db", "report_dir"])
    assert got["library_dir"] == str(lib) and got["scheduler_db"] == str(db)
    assert got["report_dir"] is None  # default: <library>/_Reports, decided by the step
    # a value typed into the form wins
    ctx = {"params": {"library_dir": str(tmp_path / "typed")}}
    assert inputs(ctx, ["library_dir"])["library_dir"] == str(tmp_path / "typed")


def test_asset_triggered_run_reads_the_event_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_IMAGING_ASTRO_LIBRARY_DIR", str(tmp_path / "setting"))
    event = SimpleNamespace(extra={"library_dir": str(tmp_path / "announced")})
    ctx = {
        "params": {"library_dir": None, "raw_dir": None},
        "triggering_asset_events": {"astro_calibration_library": [event]},
    }
    assert asset_extras(ctx) == [{"library_dir": str(tmp_path / "announced")}]
    got = inputs(ctx, ["library_dir", "raw_dir"])
    assert got["library_dir"] == str(tmp_path / "announced")
    assert got["raw_dir"].endswith("astro/raw")  # not announced: the setting's default


def test_remembered_cull_answers_belong_to_their_library(app_db_url: str, tmp_path: Path) -> None:
    """A "Keep all" about ``lib_a``'s frame is not an answer about ``lib_b``'s frame of the same
    relative path (the full test suite ran two libraries generated with the same names); an answer
    recorded before the library was stored with it still applies everywhere."""
    import uuid

    from imaging.astro import ItemLedger, remembered

    pipeline = f"astro_test_{uuid.uuid4().hex[:8]}"  # rows of its own in the shared DB
    lib_a, lib_b = str(tmp_path / "a"), str(tmp_path / "b")
    ledger = ItemLedger(pipeline, "manual__1")
    ledger(
        "cull_decision",
        "frame:x.fits|HFR 6 > 4.6",
        "done",
        {"decision": "KEEP", "library": lib_a},
        None,
    )
    ledger("cull_decision", "frame:old.fits|HFR 5 > 4.6", "done", {"decision": "REJECT"}, None)
    ledger.flush()
    assert remembered(pipeline, "cull_decision", lib_a) == {
        "frame:x.fits|HFR 6 > 4.6": "KEEP",
        "frame:old.fits|HFR 5 > 4.6": "REJECT",
    }
    assert remembered(pipeline, "cull_decision", lib_b) == {"frame:old.fits|HFR 5 > 4.6": "REJECT"}
