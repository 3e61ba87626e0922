from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import imagehash
import pytest
from PIL import Image

from include.design import hashing, imaging


def test_hashes_equal_imagehash_on_the_canonical_image(quality_set: dict[str, Any]) -> None:
    for item in quality_set["stored"]:
        canon = imaging.decode_for_hash(item["path"])
        h = hashing.hash_canonical(canon)
        assert h.phash_hex == str(imagehash.phash(canon, hash_size=16))
        assert h.dhash_hex == str(imagehash.dhash(canon, hash_size=16))
        assert len(h.colour) == hashing.COLOUR_BYTES


def test_hashes_roundtrip_through_dict(design_png: Path) -> None:
    h = hashing.hash_file(design_png)
    assert hashing.Hashes.from_dict(h.to_dict()) == h
    assert len(h.phash_hex) == len(h.dhash_hex) == 64


def test_key64_is_the_low_frequency_corner() -> None:
    only_corner = int("".join(("1" * 8 + "0" * 8) if r < 8 else "0" * 16 for r in range(16)), 2)
    assert hashing.key64(only_corner) == (1 << 64) - 1
    outside = ((1 << 256) - 1) ^ only_corner
    assert hashing.key64(outside) == 0


def test_variants_match_and_hard_negatives_do_not(quality_set: dict[str, Any]) -> None:
    stored = {s["id"]: hashing.hash_file(s["path"]) for s in quality_set["stored"]}
    for q in quality_set["queries"]:
        h = hashing.hash_file(q["path"])
        dups = {sid for sid, sh in stored.items() if hashing.is_duplicate(h, sh)}
        if q["expect"] is None:
            assert not dups, (q["path"], dups)
        elif q["kind"] != "crop2":  # crops: measured recall, see bench_design_quality
            assert dups == {q["expect"]}, (q["path"], dups)


def test_seed_config_misses_transparent_design_saved_as_jpeg(tmp_path: Path) -> None:
    from include.design import samples

    im = samples.make_design(5, (300, 300), transparent=True)
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    im.save(a)
    samples.flatten_white(im).save(b, quality=90)
    assert hashing.is_duplicate(hashing.hash_file(a), hashing.hash_file(b))
    seed = hashing.SEED
    assert not hashing.is_duplicate(hashing.hash_file(a, seed), hashing.hash_file(b, seed), seed)


def test_config_from_dict_presets_and_overrides() -> None:
    assert hashing.DupConfig.from_dict(None) is hashing.DEFAULT
    assert hashing.DupConfig.from_dict({"name": "seed"}) == hashing.SEED
    c = hashing.DupConfig.from_dict({"name": "tuned", "phash_max": 60})
    assert c.phash_max == 60 and c.key_max == hashing.DEFAULT.key_max
    assert hashing.DupConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="bogus"):
        hashing.DupConfig.from_dict({"name": "tuned", "bogus": 1})
    with pytest.raises(ValueError, match="unknown duplicate rule"):
        hashing.DupConfig.from_dict({"name": "strict"})
    assert hashing.SEED.index_radius == 5 and hashing.DEFAULT.index_radius == 15
    assert replace(hashing.DEFAULT, wide_key_max=None).index_radius == 10


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA"])
def test_every_8bit_mode_hashes(tmp_path: Path, mode: str) -> None:
    p = tmp_path / f"m_{mode}.png"
    Image.new("RGB", (40, 30), (90, 160, 30)).convert(mode).save(p)
    h = hashing.hash_file(p)
    assert h.phash.bit_length() <= 256


def test_second_look_finds_a_watermark_on_a_texture_and_keeps_hard_negatives(
    tmp_path: Path,
) -> None:
    """A watermark on a texture (TUNE_WIDE's brick photo) moves the index key past the first
    look's radius; the second look takes it. A recolour, a mirror and the other half of a photo
    stay apart under the same rule (also through the index)."""
    from include.design import evalset, samples
    from include.design.dupindex import DupIndex

    first_only = replace(hashing.DEFAULT, wide_key_max=None)
    brick = evalset._load("brick")
    brick.thumbnail((640, 640), Image.Resampling.LANCZOS)
    stored = hashing.hash_file(evalset._base(brick, tmp_path / "brick"))
    marked = evalset.watermark(brick, "etsy.com/shop/maple", 0.0721, 196, "br")
    wm = hashing.hash_file(evalset._write(marked, tmp_path / "brick_wm", "JPEG", {"quality": 90}))
    m = hashing.compare(stored, wm)
    assert m.key_distance > hashing.DEFAULT.key_max  # type: ignore[operator]
    assert not hashing.accepts(m, first_only)
    assert hashing.accepts(m)

    design = samples.make_design(5, (700, 520), transparent=True)
    d_h = hashing.hash_file(evalset._base(design, tmp_path / "design"))
    rng = random.Random(0)
    negatives = {
        "recolour": evalset.recolour(design, "rotate", rng)[0],
        "mirror": evalset.mirror(design, "lr"),
    }
    neg_h = {k: hashing.hash_file(evalset._base(v, tmp_path / k)) for k, v in negatives.items()}
    coffee = evalset._load("coffee")
    left, right = evalset._half(coffee, "lr", False), evalset._half(coffee, "lr", True)
    half_h = hashing.hash_file(evalset._base(left, tmp_path / "left"))
    neg_h["otherhalf"] = hashing.hash_file(evalset._base(right, tmp_path / "right"))

    index = DupIndex()
    for ref, h in (("brick", stored), ("design", d_h), ("half", half_h)):
        index.add(ref, h)
    assert [h.ref for h in index.query(wm)] == ["brick"]
    for kind, h in neg_h.items():
        assert index.query(h) == [], kind
        src = half_h if kind == "otherhalf" else d_h
        assert not hashing.is_duplicate(src, h), kind
