from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from include.design import evalset


def test_held_out_shares_no_source_with_the_tune_set() -> None:
    tune, held = evalset.TUNE, evalset.HELD_OUT
    assert tune.seed != held.seed
    loaders = {lo for _, lo in tune.photos} | {lo for _, lo, _ in tune.halves}
    assert not loaders & ({lo for _, lo in held.photos} | {lo for _, lo, _ in held.halves})
    designs = set(range(tune.first_design, tune.first_design + tune.n_designs))
    assert not designs & set(range(held.first_design, held.first_design + held.n_designs))
    # wider ranges on the held-out set
    for field in ("jpeg_quality", "resize", "crop", "brightness", "watermark_height"):
        lo, hi = getattr(held, field)
        tlo, thi = getattr(tune, field)
        assert lo <= tlo and hi >= thi and hi - lo > thi - tlo, field


def test_generate_writes_variants_and_hard_negatives(tmp_path: Path) -> None:
    m = evalset.generate(evalset.HELD_OUT, tmp_path, scale=0.2)
    ids = {s["id"] for s in m["stored"]}
    kinds = Counter(q["kind"] for q in m["queries"])
    assert all(kinds[k] == len(ids) for k in evalset.VARIANTS)
    assert {"recolour", "mirror", "otherhalf"} <= set(kinds)
    for q in m["queries"]:
        assert Path(q["path"]).is_file()
        assert (q["expect"] in ids) if q["expect"] else (q["source"] in ids)
    again = evalset.generate(evalset.HELD_OUT, tmp_path / "again", scale=0.2)
    assert [q["params"] for q in again["queries"]] == [q["params"] for q in m["queries"]]


def test_the_fresh_set_is_new() -> None:
    fresh, tune, held = evalset.FRESH, evalset.TUNE, evalset.HELD_OUT
    assert fresh.seed not in (tune.seed, held.seed)
    loaders = {lo for _, lo in tune.photos} | {lo for _, lo, _ in tune.halves}
    assert not loaders & ({lo for _, lo in fresh.photos} | {lo for _, lo, _ in fresh.halves})
    designs = set(range(fresh.first_design, fresh.first_design + fresh.n_designs))
    for other in (tune, held):
        assert not designs & set(range(other.first_design, other.first_design + other.n_designs))
    assert fresh.watermark_alpha[0] < held.watermark_alpha[0]  # fainter marks allowed


def test_max_designs_keeps_every_kind(tmp_path: Path) -> None:
    m = evalset.generate(evalset.FRESH, tmp_path, scale=0.2, max_designs=2)
    designs = [s for s in m["stored"] if s["id"].startswith("design_")]
    assert len(designs) == 2
    kinds = Counter(q["kind"] for q in m["queries"])
    assert all(kinds[k] == len(m["stored"]) for k in evalset.VARIANTS)
    assert {"recolour", "mirror", "otherhalf"} <= set(kinds)


def test_tune_wide_is_tune_with_wider_ranges() -> None:
    wide, tune = evalset.TUNE_WIDE, evalset.TUNE
    assert (wide.photos, wide.halves, wide.first_design) == (tune.photos, tune.halves, 0)
    assert wide.seed not in (tune.seed, evalset.HELD_OUT.seed, evalset.FRESH.seed)
    assert wide.crop == (0.01, 0.05) and wide.watermark_height[1] > 1 / 14


@pytest.mark.parametrize("name", ["fresh2", "fresh3"])
def test_fresh_sets_are_new(name: str) -> None:
    f2 = evalset.SETS[name]
    others = [s for n, s in evalset.SETS.items() if n != name]
    assert f2.seed not in {s.seed for s in others}
    designs = set(range(f2.first_design, f2.first_design + f2.n_designs))
    for other in others:
        assert not designs & set(range(other.first_design, other.first_design + other.n_designs))
