from __future__ import annotations

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
    assert hashing.SEED.index_radius == 5 and hashing.DEFAULT.index_radius == 10


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA"])
def test_every_8bit_mode_hashes(tmp_path: Path, mode: str) -> None:
    p = tmp_path / f"m_{mode}.png"
    Image.new("RGB", (40, 30), (90, 160, 30)).convert(mode).save(p)
    h = hashing.hash_file(p)
    assert h.phash.bit_length() <= 256
