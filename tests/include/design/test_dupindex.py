from __future__ import annotations

import gc
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from include.design import dupindex, hashing
from include.design.dupindex import DupIndex
from include.design.hashing import Hashes


def _flip(value: int, positions: list[int]) -> int:
    for p in positions:
        value ^= 1 << (255 - p)
    return value


def _random_store(
    n: int, seed: int = 7, **kw: Any
) -> tuple[DupIndex, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ph = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    dh = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    col = np.full((n, hashing.COLOUR_BYTES), 128, dtype=np.uint8)
    idx = DupIndex(**kw)
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


# under one entry per bucket, and above; verification records in memory, and on disk
@pytest.mark.parametrize(
    ("n", "spill_rows"), [(500, 10**9), (500, 0), (70_000, dupindex.SPILL_ROWS)]
)
def test_index_equals_brute_force(n: int, spill_rows: int) -> None:
    idx, ph, dh, col = _random_store(n, spill_rows=spill_rows)
    assert idx.footprint()["disk"] == (0 if n <= spill_rows else 56 * n + 72 * n)
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


def _queries(ph: np.ndarray, dh: np.ndarray, col: np.ndarray, n: int) -> list[Hashes]:
    """Near-duplicates around the radius (some inside the rule, some not) and unrelated ones."""
    rng = random.Random(3)
    out = [_near(ph, dh, col, (k * 613) % len(ph), k % 13, seed=k) for k in range(n)]
    grey = bytes([128]) * hashing.COLOUR_BYTES
    return out + [Hashes(rng.getrandbits(256), rng.getrandbits(256), grey) for _ in range(5)]


def test_spilled_records_read_back_exactly(tmp_path: Path) -> None:
    """On disk, the records read for any ids (unsorted, repeated, runs) are the ones written, and
    every answer equals an all-in-memory index's (brute force alone would not notice: it reads
    the same records)."""
    n = 3000
    rng = np.random.default_rng(11)
    ph = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    dh = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    col = rng.integers(100, 156, (n, hashing.COLOUR_BYTES), dtype=np.uint8)
    aph = rng.integers(0, 256, (n // 2, 32), dtype=np.uint8)
    adh = rng.integers(0, 256, (n // 2, 32), dtype=np.uint8)
    at = np.arange(0, n, 2)
    refs = [f"r{i}" for i in range(n)]
    disk = DupIndex(capacity=n, alias_capacity=n // 2, spill_rows=100, spill_dir=tmp_path)
    ram = DupIndex(capacity=n, alias_capacity=n // 2, spill_rows=10**9)
    for idx in (disk, ram):
        idx.add_rows(refs, ph, dh, col, aph, adh, at)
    assert disk._rest.on_disk and disk._col.on_disk and not ram._rest.on_disk
    ids = np.array([2999, 0, 1, 2, 4000, 17, 17, 3001, 4499, 5])
    rows_ph = np.concatenate([ph, aph])
    rows_dh = np.concatenate([dh, adh])
    words = np.ascontiguousarray(rows_ph[:, dupindex._PH_ORDER]).view(">u8").astype(np.uint64)
    want = np.concatenate([words[:, 1:], rows_dh.view(">u8").astype(np.uint64)], axis=1)
    assert np.array_equal(disk._rest.take(ids), want[ids])
    assert np.array_equal(disk._rest.take(np.arange(len(want))), want)
    assert np.array_equal(disk._col.take(ids[ids < n]), col[ids[ids < n]])
    assert np.array_equal(disk._keys, words[:, 0])
    with pytest.raises(IndexError):
        disk._rest.take(np.array([len(want)]))
    queries = _queries(ph, dh, col, 60)
    queries += [Hashes(int.from_bytes(aph[k].tobytes(), "big") ^ 3, 0, col[2 * k].tobytes())
                for k in range(0, n // 2, 97)]  # fmt: skip
    found = 0
    for q in queries:
        got = disk.query(q)
        assert got == ram.query(q) == ram.brute_force(q)
        found += bool(got)
    assert found > 40
    assert disk.footprint()["disk"] == 56 * (n + n // 2) + 72 * n
    assert disk.footprint()["ram"] < ram.footprint()["ram"] - 56 * (n + n // 2)
    disk.close()


def test_adds_after_a_bulk_load_spill_and_are_found(tmp_path: Path) -> None:
    """Bulk load in memory, then additions that cross ``spill_rows`` (the records move to disk,
    the earlier ones intact), then one by one after a rebuild (the unsorted tail, appended to the
    file after it was read) and past the merge threshold."""
    idx, ph, dh, col = _random_store(150, spill_rows=200, spill_dir=tmp_path)
    assert not idx._rest.on_disk and idx.spill_path is None
    q0 = _near(ph, dh, col, 5, 4, seed=1)
    assert [h.ref for h in idx.query(q0)] == ["r5"]
    _idx2, ph2, dh2, col2 = _random_store(100, seed=8)
    idx.add_rows([f"s{i}" for i in range(100)], ph2, dh2, col2)
    assert idx._rest.on_disk and idx.spill_path is not None
    assert idx.spill_path.parent == tmp_path
    idx.rebuild()
    assert [h.ref for h in idx.query(q0)] == ["r5"]  # a record written before the spill
    q1 = _near(ph2, dh2, col2, 42, 3, seed=2)
    assert [h.ref for h in idx.query(q1)] == ["s42"]
    for k in range(6000):  # past the merge threshold: rows move from the tail into the tables
        near = Hashes(q1.phash ^ (1 << (200 - k % 50)), q1.dhash, q1.colour)
        idx.add(f"t{k}", near if k % 1000 == 0 else Hashes(k * 7919 << 190, k, q1.colour))
        if k % 1000 == 0:
            got = idx.query(q1)  # reads the file right after an append
            assert {h.ref for h in got} == {"s42"} | {f"t{j}" for j in range(0, k + 1, 1000)}
            assert got == idx.brute_force(q1)
    assert idx._indexed > 250  # merged
    assert len(idx) == 6250
    assert idx.footprint()["disk"] == 128 * 6250
    idx.close()


def test_close_removes_the_files_and_refuses_use(tmp_path: Path) -> None:
    idx, ph, dh, col = _random_store(300, spill_rows=0, spill_dir=tmp_path)
    where = idx.spill_path
    assert where is not None and where.parent == tmp_path
    assert sorted(p.name for p in where.iterdir()) == ["colour.bin", "rows.bin"]
    q = _near(ph, dh, col, 5, 4, seed=1)
    assert [h.ref for h in idx.query(q)] == ["r5"]
    idx.close()
    assert idx.closed and not where.exists() and list(tmp_path.iterdir()) == []
    idx.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        idx.query(q)
    with pytest.raises(ValueError, match="closed"):
        idx.add("x", q)

    with DupIndex(spill_rows=0, spill_dir=tmp_path) as ctx:
        ctx.add("a", q)
        assert [h.ref for h in ctx.query(q)] == ["a"]
        assert ctx.spill_path is not None and ctx.spill_path.exists()
    assert ctx.closed and list(tmp_path.iterdir()) == []

    dropped = DupIndex(spill_rows=0, spill_dir=tmp_path)
    dropped.add("a", q)
    assert len(list(tmp_path.iterdir())) == 1
    del dropped
    gc.collect()
    assert list(tmp_path.iterdir()) == []  # the finalizer removed them


def test_small_index_stays_in_memory(tmp_path: Path) -> None:
    idx = DupIndex(spill_dir=tmp_path)
    grey = bytes([128]) * hashing.COLOUR_BYTES
    rng = random.Random(4)
    stored = [Hashes(rng.getrandbits(256), rng.getrandbits(256), grey) for _ in range(100)]
    for k, h in enumerate(stored):
        idx.add(f"r{k}", h)
    assert idx.spill_path is None and list(tmp_path.iterdir()) == []
    assert idx.footprint()["disk"] == 0
    assert [h.ref for h in idx.query(stored[7])] == ["r7"]


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
