from __future__ import annotations

import random

import numpy as np
import pytest

from include.design import dupindex, hashing
from include.design.dupindex import DupIndex
from include.design.hashing import Hashes


def _flip(value: int, positions: list[int]) -> int:
    for p in positions:
        value ^= 1 << (255 - p)
    return value


def _random_store(n: int, seed: int = 7) -> tuple[DupIndex, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ph = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    dh = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    col = np.full((n, hashing.COLOUR_BYTES), 128, dtype=np.uint8)
    idx = DupIndex()
    idx.add_rows([f"r{i}" for i in range(n)], ph, dh, col)
    return idx, ph, dh, col


def _near(
    ph: np.ndarray, dh: np.ndarray, col: np.ndarray, i: int, key_flips: int, seed: int
) -> Hashes:
    r = random.Random(seed)
    corner = [row * 16 + c for row in range(8) for c in range(8)]
    rest = [p for p in range(256) if p not in corner]
    p = _flip(
        int.from_bytes(ph[i].tobytes(), "big"), r.sample(corner, key_flips) + r.sample(rest, 15)
    )
    d = _flip(int.from_bytes(dh[i].tobytes(), "big"), r.sample(range(256), 20))
    return Hashes(p, d, col[i].tobytes())


@pytest.mark.parametrize("n", [500, 70_000])  # under one entry per bucket, and above
def test_index_equals_brute_force(n: int) -> None:
    idx, ph, dh, col = _random_store(n)
    idx.rebuild()
    wide = hashing.DEFAULT.wide_key_max
    assert wide is not None
    for k in range(54):
        i = (k * 7919) % n
        # 0..17 key flips around the first look's 10 and the second look's 15 (pHash 15-32 bits
        # and dHash 20 bits away: within both looks' whole-hash limits)
        q = _near(ph, dh, col, i, key_flips=k % 18, seed=k)
        got = idx.query(q)
        assert got == idx.brute_force(q)
        assert (f"r{i}" in {h.ref for h in got}) == (k % 18 <= wide)
    # an unrelated query finds nothing and looks at far fewer entries than stored
    q = Hashes(1 << 200, 3, bytes([128]) * hashing.COLOUR_BYTES)
    assert idx.query(q) == idx.brute_force(q)
    if n > 10_000:
        assert idx.candidate_count(q) < n / 10  # radius 15: 3 bits of each 16-bit chunk


def test_unindexed_tail_is_searched_and_merged() -> None:
    idx, ph, dh, col = _random_store(300)
    assert idx._indexed == 0  # below the rebuild threshold: all in the tail
    q = _near(ph, dh, col, 5, 4, seed=1)
    assert [h.ref for h in idx.query(q)] == ["r5"]
    idx.rebuild()
    extra = Hashes(q.phash ^ 1, q.dhash, q.colour)
    idx.add("new", extra)
    assert {h.ref for h in idx.query(q)} == {"r5", "new"}
    assert idx.query(q) == idx.brute_force(q)


def test_seed_config_uses_phash_radius_only() -> None:
    idx = DupIndex(hashing.SEED)
    base = Hashes((1 << 255) | 12345, 0, bytes(hashing.COLOUR_BYTES))
    idx.add("a", base)
    five = Hashes(_flip(base.phash, [100, 101, 102, 103, 104]), (1 << 256) - 1, bytes([255]) * 72)
    six = Hashes(_flip(five.phash, [105]), 0, bytes(hashing.COLOUR_BYTES))
    assert [h.ref for h in idx.query(five)] == ["a"]  # dHash and colour ignored by the seed rule
    assert idx.query(six) == []


def test_colour_signature_separates_recolours() -> None:
    idx = DupIndex()
    grey = bytes([128]) * hashing.COLOUR_BYTES
    idx.add("orig", Hashes(7, 7, grey))
    red_cell = bytearray(grey)
    red_cell[0:2] = bytes([90, 200])
    assert idx.query(Hashes(7, 7, bytes(red_cell))) == []
    slight = bytearray(grey)
    slight[0:2] = bytes([135, 120])
    assert [h.ref for h in idx.query(Hashes(7, 7, bytes(slight)))] == ["orig"]


def test_hex_rows_and_keys_match_scalar() -> None:
    rng = np.random.default_rng(3)
    values = [int.from_bytes(rng.bytes(32), "big") for _ in range(20)]
    rows = dupindex.hex_rows([hashing.to_hex(v) for v in values])
    assert [int(k) for k in dupindex.keys_of(rows)] == [hashing.key64(v) for v in values]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        DupIndex().add_rows(
            ["a"],
            np.zeros((1, 31), np.uint8),
            np.zeros((1, 32), np.uint8),
            np.zeros((1, 72), np.uint8),
        )


def test_crop_alias_is_one_reference_and_finds_a_border_crop() -> None:
    from PIL import Image

    from include.design import samples

    im = samples.make_design(3, (400, 400), transparent=False).convert("RGB")
    canon = im.resize((hashing.imaging.CANON, hashing.imaging.CANON))
    h, alias = hashing.hash_canonical(canon), hashing.crop_alias(canon)
    assert h != alias
    w = im.width
    cut = round(w * 0.04)
    crop = im.crop((cut, cut // 2, w - cut, w - cut)).resize(
        (hashing.imaging.CANON, hashing.imaging.CANON), Image.Resampling.LANCZOS
    )
    q = hashing.hash_canonical(crop)
    idx = DupIndex()
    idx.add("a", h, alias)
    idx.add("b", alias)  # an unrelated reference that happens to equal the alias
    assert len(idx) == 3
    hits = idx.query(alias)
    assert [x.ref for x in hits] == sorted({x.ref for x in hits})  # each reference once
    assert {x.ref for x in hits} == {"a", "b"}
    assert [x.ref for x in idx.brute_force(q)] == [x.ref for x in idx.query(q)]


def test_stored_aliases_from_hex_columns_are_one_reference_each() -> None:
    """The library as loaded from the database: alias columns may be NULL (no alias row); an
    alias row answers under its design's reference, checked with the design's colour; non-ASCII
    references come back intact."""
    rng = np.random.default_rng(5)
    ph = [hashing.to_hex(int.from_bytes(rng.bytes(32), "big")) for _ in range(3)]
    dh = [hashing.to_hex(int.from_bytes(rng.bytes(32), "big")) for _ in range(3)]
    aph = [hashing.to_hex(int.from_bytes(rng.bytes(32), "big")) for _ in range(3)]
    adh = [hashing.to_hex(int.from_bytes(rng.bytes(32), "big")) for _ in range(3)]
    grey = (bytes([128]) * hashing.COLOUR_BYTES).hex()
    idx = DupIndex(capacity=3, alias_capacity=3)
    refs = ["db:1", "nas:shop/é.png", "db:3"]
    idx.add_hex(refs, ph, dh, [grey] * 3, [aph[0], None, aph[2]], [adh[0], None, adh[2]])
    assert len(idx) == 5  # 3 designs + 2 aliases
    for k in range(3):
        q = Hashes(int(aph[k], 16) ^ 7, int(adh[k], 16), bytes.fromhex(grey))
        assert [h.ref for h in idx.query(q)] == ([refs[k]] if k != 1 else [])
        assert idx.query(q) == idx.brute_force(q)
        assert [h.ref for h in idx.query(Hashes(int(ph[k], 16), int(dh[k], 16), q.colour))] == [
            refs[k]
        ]
    idx.rebuild()
    q = Hashes(int(aph[2], 16), int(adh[2], 16), bytes([200]) * hashing.COLOUR_BYTES)
    assert idx.query(q) == []  # the design's colour signature applies to its alias row


def test_second_look_needs_close_whole_hashes() -> None:
    """Beyond the first look's key radius the index still finds a candidate, but the rule
    (hashing.accepts_arrays) takes it only when its pHash and dHash are close."""
    idx, ph, dh, col = _random_store(2000)
    idx.rebuild()
    cfg = hashing.DEFAULT
    assert cfg.wide_key_max is not None and cfg.key_max is not None
    r = random.Random(3)
    corner = [row * 16 + c for row in range(8) for c in range(8)]
    base_p, base_d = int.from_bytes(ph[9].tobytes(), "big"), int.from_bytes(dh[9].tobytes(), "big")
    keyflips = r.sample(corner, cfg.key_max + 3)  # outside the first look, inside the second
    close = Hashes(_flip(base_p, keyflips), _flip(base_d, list(range(10))), col[9].tobytes())
    far_d = Hashes(close.phash, _flip(base_d, list(range(cfg.wide_dhash_max + 1))), close.colour)
    rest = [p for p in range(256) if p not in corner]
    far_p = Hashes(_flip(close.phash, rest[: cfg.wide_phash_max]), close.dhash, close.colour)
    assert [h.ref for h in idx.query(close)] == ["r9"] == [h.ref for h in idx.brute_force(close)]
    for q in (far_d, far_p):  # within the first look's pHash/dHash limits, not the second's
        assert idx.query(q) == [] == idx.brute_force(q)
