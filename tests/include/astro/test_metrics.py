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


def test_sky_gradient_and_nebulosity_do_not_hide_stars(tmp_path: Path) -> None:
    """Real lights have a light-pollution gradient and nebulosity: the noise, the threshold and
    so the star count come from a background map, not from one sky level for the whole frame
    (that read this gradient as 7x the noise and raised the detection threshold with it)."""
    clean = star_frame(7, SHAPE, 200)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    sky = 400.0 * xx / SHAPE[1] + 300.0 * np.exp(-((yy - 300) ** 2 + (xx - 400) ** 2) / 2e4)
    graded = (clean + sky).astype(np.uint16)
    m0 = frame_metrics(write_fits(tmp_path / "clean.fits", clean, {}))
    m1 = frame_metrics(write_fits(tmp_path / "graded.fits", graded, {}))
    assert m1.stars >= 0.9 * m0.stars, (m0, m1)
    assert m1.noise <= 1.2 * m0.noise and m1.hfr == pytest.approx(m0.hfr, rel=0.1)


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


def test_sample_sky_frames_show_what_their_names_say(tmp_path: Path) -> None:
    """The blink page's sample lights (``sky_frame``): one sky per target (stars stay put apart
    from the dither), a low STARS count in the name is thin cloud (fewer stars, brighter sky), a
    large RMSAC is trailing (elongated stars), a larger HFR is softer stars."""
    from include.astro.samples import sky_frame

    def m(frame_seed: int, field: int = 11, **kw: float) -> object:
        data = sky_frame(field, frame_seed, SHAPE, **kw)  # type: ignore[arg-type]
        return frame_metrics(write_fits(tmp_path / f"{field}-{frame_seed}.fits", data, {}))

    good, again = m(1, hfr=2.2, stars=800, rmsac=0.6), m(2, hfr=2.2, stars=800, rmsac=0.6)
    cloudy = m(3, hfr=2.2, stars=300, rmsac=0.6)
    trailed = m(4, hfr=2.2, stars=800, rmsac=2.5)
    soft = m(5, hfr=5.0, stars=800, rmsac=0.6)
    assert good.stars > 80 and abs(again.stars - good.stars) <= 0.15 * good.stars
    # another target's sky (other nebulosity, as many stars): about as many found (a single
    # sky level found 51 here and 15 there, of about 400 made)
    elsewhere = m(1, field=2500, hfr=2.2, stars=800, rmsac=0.6)
    assert abs(elsewhere.stars - good.stars) <= 0.3 * good.stars, (good, elsewhere)
    assert cloudy.stars < 0.6 * good.stars and cloudy.background > good.background + 100
    assert trailed.eccentricity > good.eccentricity + 0.3
    assert soft.hfr > good.hfr + 0.5
    assert np.array_equal(sky_frame(11, 1, SHAPE, 2.2), sky_frame(11, 1, SHAPE, 2.2))


def test_metrics_cache_measures_again_after_a_measurement_change(tmp_path: Path) -> None:
    """Cached metrics (``_Metrics/<rig>.json``) of an earlier version of the measurement (entries
    without ``version``: one sky level) are measured again, so one set never mixes the two; an
    entry of this version is used as it is."""
    import json

    from include.astro.metrics import METRICS_VERSION
    from include.astro.metrics_store import MetricsStore

    frame = _frame(tmp_path, "2026-11-21T03-00-00_HFR_2.10.fits", sigma=2.0)
    st = frame.stat()
    fake = {"stars": 3, "hfr": 9.9, "fwhm": 9.9, "eccentricity": 0.9, "background": 1.0}
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "metrics": {**fake, "noise": 1.0}}
    store = MetricsStore(tmp_path, "C8E@f10.0+ZWO ASI2600MM Pro")
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps({frame.name: entry}))  # written before versions existed

    store = MetricsStore(tmp_path, "C8E@f10.0+ZWO ASI2600MM Pro")
    m = store.get(frame)
    assert m is not None and m.stars > 100 and m.hfr == pytest.approx(2.5, rel=0.15)
    store.save()
    saved = json.loads(store.path.read_text())[frame.name]
    assert saved["version"] == METRICS_VERSION and saved["metrics"]["stars"] == m.stars

    saved["metrics"]["hfr"] = 9.9  # same version: the cache is used, nothing is measured
    store.path.write_text(json.dumps({frame.name: saved}))
    assert (
        MetricsStore(tmp_path, "C8E@f10.0+ZWO ASI2600MM Pro").get(frame, measure=False).hfr == 9.9
    )
