"""Frame metrics from the pixels (issue 15 deliverable 3): star count, HFR, FWHM, eccentricity,
background from a real 16-bit NINA-layout file; suggestions for clouds, trails and focus drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from include.astro.metrics import deviations, frame_metrics, suggestions
from include.astro.samples import star_frame, write_fits

SHAPE = (600, 800)


def _frame(tmp_path: Path, name: str, **kw: float) -> Path:
    n = int(kw.pop("n", 200))
    return write_fits(tmp_path / name, star_frame(7, SHAPE, n, **kw), {"IMAGETYP": "LIGHT"})


def test_metrics_of_a_known_star_field(tmp_path: Path) -> None:
    m = frame_metrics(_frame(tmp_path, "a.fits", sigma=2.0, background=1500.0))
    assert 160 <= m.stars <= 200  # a few blend in 0.5 Mpx
    assert m.hfr == pytest.approx(2.0 * np.sqrt(np.pi / 2), rel=0.1)
    assert m.fwhm == pytest.approx(2.3548 * 2.0, rel=0.1)
    assert m.eccentricity < 0.3 and m.background == pytest.approx(1500.0, rel=0.01)


def test_blank_frame_has_no_stars(tmp_path: Path) -> None:
    m = frame_metrics(_frame(tmp_path, "b.fits", n=0))
    assert (m.stars, m.hfr, m.fwhm) == (0, None, None)


def test_suggestions_for_clouds_trails_and_focus(tmp_path: Path) -> None:
    rows = []
    for i in range(4):
        rows.append({"file": f"ok{i}", **frame_metrics(_frame(tmp_path, f"ok{i}.fits")).to_dict()})
    rows.append({"file": "cloud", **frame_metrics(_frame(tmp_path, "c.fits", n=60)).to_dict()})
    trail = frame_metrics(_frame(tmp_path, "t.fits", elongation=2.2))
    rows.append({"file": "trail", **trail.to_dict()})
    rows.append({"file": "focus", **frame_metrics(_frame(tmp_path, "f.fits", sigma=3.0)).to_dict()})
    hints = suggestions(rows)
    assert set(hints) == {"cloud", "trail", "focus"}
    assert hints["cloud"][0].startswith("clouds?")
    assert any(h.startswith("trailing?") for h in hints["trail"])
    assert any(h.startswith("focus drift?") for h in hints["focus"])
    dev = {r["file"]: r for r in deviations(rows, ["stars"])}
    assert dev["cloud"]["stars_dev"] < -0.5
