"""The one set-up step: pools and installation-setting Variables, idempotent, and a value an
operator changed is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_setup_creates_pools_and_variables_and_keeps_an_operators_choice(
    airflow_db: Path, tmp_path: Path
) -> None:
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from imaging.airflow_setup import pools_created, setup

    f = tmp_path / "variables.json"
    f.write_text(json.dumps({"imaging_astro_raw_dir": "/samples/raw", "imaging_design_shop": "s"}))
    pools, variables = setup(f)
    assert (
        {p.pool for p in pools} == pools_created() >= {"etsy_api", "roboflow_api", "hypha_uploads"}
    )
    with create_session() as s:
        names = set(s.scalars(select(Pool.pool)))
    assert pools_created() <= names
    assert {v.key: v.action for v in variables}["imaging_astro_raw_dir"] in ("created", "kept")

    # the operator changes a setting in Admin -> Variables; running the set-up again keeps it
    Variable.set("imaging_astro_raw_dir", "/mnt/nina")
    pools2, variables2 = setup(f)
    assert {p.action for p in pools2} == {"unchanged"}
    assert {v.key: v.action for v in variables2}["imaging_astro_raw_dir"] == "kept"
    assert Variable.get("imaging_astro_raw_dir") == "/mnt/nina"
    setup(f, overwrite=True)
    assert Variable.get("imaging_astro_raw_dir") == "/samples/raw"


def test_unknown_installation_setting_is_refused(tmp_path: Path) -> None:
    from imaging.airflow_setup import load_variables

    f = tmp_path / "v.json"
    f.write_text(json.dumps({"imaging_astro_raw_directory": "/x"}))
    with pytest.raises(ValueError, match="unknown installation settings"):
        load_variables(f)
