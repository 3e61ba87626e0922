"""Shared sample files for the design tests (generated once per session, small)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def quality_set(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from include.design import samples

    return samples.generate_quality_set(
        tmp_path_factory.mktemp("quality"), n_designs=6, photo_side=320, design_side=320
    )


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from include.design import samples

    return samples.write_bad_files(tmp_path_factory.mktemp("bad"))


@pytest.fixture
def design_png(tmp_path: Path) -> Path:
    from include.design import samples

    p = tmp_path / "design.png"
    samples.make_design(3, (300, 300)).save(p)
    return p
