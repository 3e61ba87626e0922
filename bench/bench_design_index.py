"""Near-duplicate lookup against 1,000,000 stored designs, each with its crop alias (2,000,000
rows): the multi-index-hashing index (:class:`include.design.dupindex.DupIndex`) against
brute-force scans, same answers.

Stored: 1,000,000 designs, each a random 256-bit pHash/dHash pair with a grey colour signature plus
a random pHash/dHash pair as its crop alias (:func:`include.design.hashing.crop_alias`, a second
row under the same reference, as the library index loads them from the database since migration
0008; ``--no-aliases``: the designs alone, 1,000,000 rows). Uniformly random hashes are the hard
case for an index: no clusters to exploit. Queries: half are planted near-duplicates (0-12 flipped
bits in the 64-bit index key, 15 more in the rest of the pHash, up to 30 in the dHash: some inside
the tuned rule, some just outside) of a stored design, every other one of a design's alias; half
are unrelated.

* ``baseline_s`` — the seed's brute-force scan, per query: a Python loop over every stored row
  comparing ``imagehash.ImageHash`` objects (``stored - query``, pre-parsed, so parsing is not
  counted), then the rest of the same rule for rows within the pHash threshold (one hit per
  reference, as the index answers);
* ``ours_s`` — :meth:`DupIndex.query`, per query (mean over all queries);
* also reported: a numpy-vectorised full scan (:meth:`DupIndex.brute_force`, per query) and the
  ratio against it, and a plain-Python int scan. Every method must return the same hits.

The seed scan takes seconds per query, so it runs on ``--baseline-queries`` of the queries.

The index is also compared with faiss's ``IndexBinaryMultiHash`` (the maintained implementation of
the same multi-index hashing: 4 tables of 16 bits over the 64-bit key, ``nflip`` = radius // 4),
each in its own process so that peak memory is the index's own: the hashes arrive in chunks of
100 000 designs (as from the database), the same queries run, the candidates go through the same
full rule, and the answers must be identical (``faiss_*`` and ``isolated_*`` fields).

Storage: ``isolated_ram_mb`` / ``isolated_disk_mb`` are :meth:`DupIndex.footprint` (what the
index holds in memory, and its verification-record files on disk: pHash beyond the key, dHash and
colour signature, read only for candidates); the peak RSS is the process's (Python + numpy +
imports + the index). The faiss engine keeps its own tables in memory and uses the same storage
(keys, entries, verification records on disk) for the full rule, so its peak is faiss's tables
plus that storage.

Measured (2 vCPU, shared and loaded; 1 M designs): with aliases (2 M rows) ours 144 MB peak RSS
(the index holds 71 MB in memory + 184 MB on disk), 0.59 ms a query isolated and 1.1 ms in the
main process (4238x the seed scan), faiss 276 MB and 7.2 ms, same answers; without aliases (1 M
rows) ours 117 MB (43 MB + 128 MB on disk) and 0.69 ms, faiss 218 MB and 2.5 ms. Before the
verification records went out of core: 313 MB / 0.59 ms with aliases, 236 MB / 0.42 ms without.
With the duplicate rule's second look (key radius 15, not 10) the same bench on main gives 137 MB
peak, 3.3 ms a query isolated, 2074x the seed scan, faiss 261 MB and 66 ms, same answers (~85 k
candidate ids a query: finer chunks would cut that).
See ``include/design/dupindex.py``.

Usage: ``python bench/bench_design_index.py [--n 1000000] [--queries 200] [--engine ours|faiss]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._util import emit, peak_rss_mb  # noqa: E402
from include.design import hashing  # noqa: E402
from include.design.dupindex import DupIndex, Hit  # noqa: E402
from include.design.hashing import Hashes, Match  # noqa: E402

CORNER = [r * 16 + c for r in range(8) for c in range(8)]
REST = [p for p in range(256) if p not in CORNER]


def _flip(value: int, positions: list[int]) -> int:
    for p in positions:
        value ^= 1 << (255 - p)
    return value


def make_queries(
    ph: Any,
    dh: Any,
    col: Any,
    n: int,
    seed: int = 11,
    aph: Any = None,
    adh: Any = None,
) -> list[Hashes]:
    """Even queries: near-duplicates of a stored design (every other one of its crop alias when
    ``aph``/``adh`` are given); odd: unrelated."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        if k % 2 == 0:
            i = rng.randrange(len(ph))
            of_alias = aph is not None and k % 4 == 2
            p = _flip(
                int.from_bytes((aph if of_alias else ph)[i].tobytes(), "big"),
                rng.sample(CORNER, rng.randint(0, 12)) + rng.sample(REST, 15),
            )
            d = _flip(
                int.from_bytes((adh if of_alias else dh)[i].tobytes(), "big"),
                rng.sample(range(256), rng.randint(0, 30)),
            )
            out.append(Hashes(p, d, col[i].tobytes()))
        else:
            out.append(
                Hashes(
                    rng.getrandbits(256), rng.getrandbits(256), bytes([128]) * hashing.COLOUR_BYTES
                )
            )
    return out


def seed_scan(
    stored: list[Any],
    dh_ints: list[int],
    keys: list[int],
    col: np.ndarray,
    refs: list[str],
    q: Hashes,
    cfg: hashing.DupConfig,
) -> list[Hit]:
    """The seed's loop: ``existing_hash - new_hash`` over every record, then the rest of the rule."""
    import imagehash

    qh = imagehash.ImageHash(
        np.unpackbits(np.frombuffer(q.phash.to_bytes(32, "big"), dtype=np.uint8))
        .reshape(16, 16)
        .astype(bool)
    )
    qkey = hashing.key64(q.phash)
    hits = []
    for i, h in enumerate(stored):
        pd = h - qh
        if pd > cfg.phash_max:
            continue
        m = Match(
            hashing.hamming(keys[i], qkey),
            int(pd),
            hashing.hamming(dh_ints[i], q.dhash),
            hashing.colour_distance(col[i].tobytes(), q.colour),
        )
        if hashing.accepts(m, cfg):
            hits.append(Hit(refs[i], m))
    hits.sort(key=lambda x: (x.match.phash_distance, x.match.dhash_distance, x.ref))
    seen: set[str] = set()  # a design and its alias are two rows of one reference: nearest kept
    return [x for x in hits if not (x.ref in seen or seen.add(x.ref))]


def int_scan(ph_ints: list[int], q: Hashes, cfg: hashing.DupConfig) -> list[int]:
    qp = q.phash
    return [i for i, p in enumerate(ph_ints) if (p ^ qp).bit_count() <= cfg.phash_max]


def isolated(engine: str, n: int, queries: int, aliases: bool = True) -> dict[str, Any]:
    """Build one engine over the n designs (the same as ``main``'s; with ``aliases`` each also
    carries its crop alias, a second row) and answer the same queries; the peak RSS is this
    process's: Python + numpy + the index (the stored hashes are generated chunk by chunk, as rows
    arrive from the database). Printed as JSON (subprocess of ``main``)."""
    import hashlib

    cfg = hashing.DEFAULT
    col1 = np.full((1, hashing.COLOUR_BYTES), 128, dtype=np.uint8)
    data = _ChunkedHashes(n)  # generated chunk by chunk: the inputs never all exist at once
    qs = make_queries(
        data.ph,
        data.dh,
        _Col(col1),
        queries,
        aph=data.aph if aliases else None,
        adh=data.adh if aliases else None,
    )
    rss_inputs = peak_rss_mb()
    t0 = time.perf_counter()
    index = DupIndex(cfg, capacity=n, alias_capacity=n if aliases else 0)
    fx = None
    if engine == "faiss":
        import faiss

        index.rebuild = lambda: None  # type: ignore[method-assign]  # storage only: faiss indexes
        fx = faiss.IndexBinaryMultiHash(64, 4, 16)
        fx.nflip = index.radius // 4
    for start in range(0, n, CHUNK):  # chunks, as rows arrive from the database
        ph, dh, aph, adh = data.chunk(start // CHUNK)
        col = np.broadcast_to(col1, (len(ph), hashing.COLOUR_BYTES))  # no copy
        before = len(index)
        refs = [f"db:{i}" for i in range(start, start + len(ph))]
        if aliases:
            index.add_rows(refs, ph, dh, col, aph, adh)
        else:
            index.add_rows(refs, ph, dh, col)
        if fx is not None:
            keys = np.ascontiguousarray(index._keys[before:])
            fx.add(keys.view(np.uint8).reshape(-1, 8))
    if fx is None:
        index.rebuild()
    build_s = time.perf_counter() - t0
    footprint = index.footprint()
    t0 = time.perf_counter()
    answers = []
    for q in qs:
        qkey = hashing.key64(q.phash)
        if fx is None:
            answers.append(index.query(q))
        else:
            code = np.array([qkey], dtype=np.uint64).view(np.uint8).reshape(1, 8)
            lims, _d, ids = fx.range_search(code, index.radius + 1)  # faiss: distance < radius
            found = np.unique(ids[lims[0] : lims[1]].astype(np.int64))
            answers.append(index._check(found, q, qkey))
    per_query = (time.perf_counter() - t0) / len(qs)
    index.close()
    digest = hashlib.sha256(
        repr([[(h.ref, h.match) for h in a] for a in answers]).encode()
    ).hexdigest()
    return {
        "engine": engine,
        "rows": len(index),
        "per_query_s": per_query,
        "build_s": build_s,
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_before_index_mb": round(rss_inputs),
        "ram_mb": round(footprint["ram"] / 1e6, 1),
        "disk_mb": round(footprint["disk"] / 1e6, 1),
        "answers_sha256": digest,
        "hits": sum(1 for a in answers if a),
    }


CHUNK = 100_000


class _ChunkedHashes:
    """Random stored hashes (pHash, dHash, alias pHash, alias dHash), chunk ``c`` drawn from seed
    2026 + c (regenerated on access)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ph, self.dh = _Rows(self, 0), _Rows(self, 1)
        self.aph, self.adh = _Rows(self, 2), _Rows(self, 3)

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(2026 + c)
        size = min(CHUNK, self.n - c * CHUNK)
        ph, dh, aph, adh = rng.integers(0, 256, (4, size, 32), dtype=np.uint8)
        return ph, dh, aph, adh

    def all(self) -> tuple[np.ndarray, ...]:
        parts = [self.chunk(c) for c in range((self.n + CHUNK - 1) // CHUNK)]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))


class _Rows:
    def __init__(self, data: _ChunkedHashes, which: int) -> None:
        self.data, self.which = data, which

    def __len__(self) -> int:
        return self.data.n

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data.chunk(i // CHUNK)[self.which][i % CHUNK]


class _Col:
    """The grey colour signature of every stored entry, without an (n, 72) array."""

    def __init__(self, row: np.ndarray) -> None:
        self.row = row[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.row


def _run_isolated(engine: str, n: int, queries: int, aliases: bool) -> dict[str, Any]:
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--engine", engine, "--n", str(n), "--queries", str(queries)]
        + ([] if aliases else ["--no-aliases"]),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--baseline-queries", type=int, default=2)
    ap.add_argument("--engine", choices=["ours", "faiss"], default=None)
    ap.add_argument(
        "--no-aliases", action="store_true", help="designs without their crop alias (n rows)"
    )
    args = ap.parse_args(argv)
    aliases = not args.no_aliases
    if args.engine:
        import json

        res = isolated(args.engine, args.n, args.queries, aliases)
        print(json.dumps(res), flush=True)
        return res
    # first, while this process is small (a child inherits its parent's peak RSS on Linux)
    iso = _run_isolated("ours", args.n, args.queries, aliases)
    try:
        fx = _run_isolated("faiss", args.n, args.queries, aliases)
    except Exception as exc:  # faiss not installed: say so in the record
        fx = {"error": str(exc)[:200]}
    cfg = hashing.DEFAULT
    ph, dh, aph, adh = _ChunkedHashes(args.n).all()  # the isolated runs' hashes
    col = np.full((args.n, hashing.COLOUR_BYTES), 128, dtype=np.uint8)
    refs = [f"db:{i}" for i in range(args.n)]

    t0 = time.perf_counter()
    index = DupIndex(cfg, capacity=args.n, alias_capacity=args.n if aliases else 0)
    if aliases:
        index.add_rows(refs, ph, dh, col, aph, adh)
        # the rows in index order (designs, then their aliases) for the scans below
        row_ph, row_dh, row_refs = np.concatenate([ph, aph]), np.concatenate([dh, adh]), refs * 2
        row_col = np.broadcast_to(col[:1], (2 * args.n, hashing.COLOUR_BYTES))
    else:
        index.add_rows(refs, ph, dh, col)
        row_ph, row_dh, row_refs, row_col = ph, dh, refs, col
    del aph, adh
    index.rebuild()
    build_s = time.perf_counter() - t0

    queries = make_queries(
        ph, dh, col, args.queries, aph=row_ph[args.n :] if aliases else None,
        adh=row_dh[args.n :] if aliases else None,
    )  # fmt: skip
    t0 = time.perf_counter()
    ours = [index.query(q) for q in queries]
    ours_s = (time.perf_counter() - t0) / len(queries)
    candidates = float(np.mean([index.candidate_count(q) for q in queries]))

    t0 = time.perf_counter()
    vec = [index.brute_force(q) for q in queries]
    vec_s = (time.perf_counter() - t0) / len(queries)

    # the seed's scan on a few planted queries (each one takes seconds)
    import imagehash

    stored = [
        imagehash.ImageHash(b)
        for a in range(0, len(row_ph), CHUNK)
        for b in np.unpackbits(row_ph[a : a + CHUNK], axis=1).reshape(-1, 16, 16).astype(bool)
    ]
    dh_ints = [int.from_bytes(r.tobytes(), "big") for r in row_dh]
    keys = [int(k) for k in index._keys]
    chosen = [q for k, q in enumerate(queries) if k % 2 == 0][: args.baseline_queries]
    t0 = time.perf_counter()
    seed = [seed_scan(stored, dh_ints, keys, row_col, row_refs, q, cfg) for q in chosen]
    baseline_s = (time.perf_counter() - t0) / len(chosen)
    del stored

    ph_ints = [int.from_bytes(r.tobytes(), "big") for r in row_ph]
    t0 = time.perf_counter()
    ints = [int_scan(ph_ints, q, cfg) for q in chosen]
    int_s = (time.perf_counter() - t0) / len(chosen)

    chosen_ours = [ours[k] for k in range(0, 2 * len(chosen), 2)]
    same = ours == vec and seed == chosen_ours
    same_int = all(
        {h.ref for h in o} <= {row_refs[i] for i in ix}
        for o, ix in zip(chosen_ours, ints, strict=True)
    )
    found = sum(1 for o in ours if o)
    index.close()
    return emit(
        "design_index",
        baseline_s,
        ours_s,
        stored=args.n,
        stored_rows=len(index),
        crop_aliases=aliases,
        queries=len(queries),
        baseline="seed-style Python scan over imagehash.ImageHash objects, per query",
        baseline_queries=len(chosen),
        numpy_bruteforce_s=round(vec_s, 5),
        ratio_vs_numpy_bruteforce=round(vec_s / ours_s, 2),
        python_int_scan_s=round(int_s, 4),
        ratio_vs_python_int_scan=round(int_s / ours_s, 1),
        build_s=round(build_s, 2),
        mean_candidates=round(candidates, 1),
        queries_with_hits=found,
        same_results=same and same_int,
        peak_rss_mb=round(peak_rss_mb()),
        peak_rss_note="this process holds the seed baseline's 1 M imagehash objects too; "
        "isolated_peak_rss_mb is a process with only the index (Python + numpy + imports included)",
        isolated_ours_s=round(iso["per_query_s"], 5),
        isolated_peak_rss_mb=iso["peak_rss_mb"],
        isolated_build_s=round(iso["build_s"], 2),
        isolated_ram_mb=iso["ram_mb"],
        isolated_disk_mb=iso["disk_mb"],
        storage_note="ram_mb: what the index holds in memory (keys, entries, chunk tables, "
        "references); disk_mb: its verification records (pHash beyond the key, dHash, colour) in "
        "temporary files, read with pread for candidates only",
        faiss_engine="faiss.IndexBinaryMultiHash(64, nhash=4, b=16), nflip=radius//4",
        faiss_s=round(fx["per_query_s"], 5) if "per_query_s" in fx else None,
        faiss_peak_rss_mb=fx.get("peak_rss_mb"),
        faiss_build_s=round(fx["build_s"], 2) if "build_s" in fx else None,
        faiss_note="faiss's tables in memory + the same storage (verification records on disk)",
        faiss_error=fx.get("error"),
        same_as_faiss=fx.get("answers_sha256") == iso["answers_sha256"],
        target_ratio=1000,
        target_peak_rss_mb=250,
        meets_target=same and baseline_s / ours_s >= 1000 and iso["peak_rss_mb"] <= 250,
    )


if __name__ == "__main__":
    main()
