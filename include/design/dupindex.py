"""A near-duplicate index that is sub-linear in the number of stored hashes: multi-index hashing
(Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012).

The 64-bit index key (:func:`include.design.hashing.key64`) is cut into 4 chunks of 16 bits. If
two keys are within Hamming distance ``r``, at least one chunk is within ``r // 4`` (pigeonhole),
so probing each chunk's table with every value within ``r // 4`` of the query's chunk
finds a superset of the answers; the candidates are then checked with the full duplicate rule
(key, pHash, dHash, colour) — the answers are exactly a brute-force scan's
(:meth:`DupIndex.brute_force`, tested and benchmarked).

Each chunk table holds the entries' ids (int32) sorted by chunk value and a bucket-offset array
over the 2**16 chunk values (512 KB, stays in cache): a probe is two offset reads and one
contiguous run of ids whose keys are gathered and filtered on the whole key at once. No Python
loop over entries. At 1 M entries the index holds ~144 MB of hashes and colour signatures, ~17 MB
of references and ~18 MB of tables.
Additions go to an unsorted tail that is scanned directly and merged into the tables when it
grows past an eighth of the index, so the within-run check (add as you go) stays cheap.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from include.design import hashing
from include.design.hashing import COLOUR_BYTES, DEFAULT, DupConfig, Hashes, Match

CHUNK_WIDTHS = (16, 16, 16, 16)
CHUNKS = len(CHUNK_WIDTHS)
CHUNK_SHIFTS = (48, 32, 16, 0)


@lru_cache(maxsize=16)
def _masks(width: int, radius: int) -> np.ndarray:
    """All ``width``-bit masks with at most ``radius`` bits set."""
    radius = min(radius, width)
    out = [0]
    for k in range(1, radius + 1):
        for bits in combinations(range(width), k):
            out.append(sum(1 << b for b in bits))
    return np.array(out, dtype=np.int64)


def _hash_rows(values: Sequence[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), 32)


def hex_rows(hexes: Sequence[str], width: int = 32) -> np.ndarray:
    """Hex strings -> ``(n, width)`` uint8 rows (vectorised: one ``bytes.fromhex``)."""
    if not hexes:
        return np.zeros((0, width), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(len(hexes), width)


def keys_of(phash_rows: np.ndarray) -> np.ndarray:
    """Vectorised :func:`include.design.hashing.key64` over ``(n, 32)`` pHash rows."""
    bits = np.unpackbits(phash_rows, axis=1).reshape(-1, 16, 16)[:, :8, :8].reshape(-1, 64)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def _words(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows).view(">u8").astype(np.uint64)


class _Refs:
    """References stored compactly: chunks of one byte buffer plus end offsets each (a list of
    1 M Python strings costs ~70 MB; this ~20 MB). Appending never copies earlier chunks."""

    def __init__(self) -> None:
        self._starts: list[int] = []  # first index of each chunk
        self._chunks: list[tuple[bytes, np.ndarray]] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def extend(self, refs: Sequence[str]) -> None:
        if not refs:
            return
        data = [r.encode() for r in refs]
        lens = np.fromiter((len(d) for d in data), dtype=np.int64, count=len(data))
        ends = np.cumsum(lens).astype(np.int32)  # offsets within this chunk's buffer
        self._starts.append(self._n)
        self._chunks.append((b"".join(data), ends))
        self._n += len(data)

    def __getitem__(self, i: int) -> str:
        i = int(i)
        c = bisect.bisect_right(self._starts, i) - 1
        buf, ends = self._chunks[c]
        j = i - self._starts[c]
        start = int(ends[j - 1]) if j > 0 else 0
        return buf[start : int(ends[j])].decode()


@dataclass(frozen=True)
class Hit:
    ref: str
    match: Match


class DupIndex:
    """Stored hashes with a reference each (e.g. ``"db:42"``, ``"nas:shop/x.png"``)."""

    def __init__(self, config: DupConfig = DEFAULT, capacity: int = 1024) -> None:
        self.config = config
        self.radius = config.index_radius
        self.refs = _Refs()
        self._n = 0
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._ph = np.zeros((capacity, 4), dtype=np.uint64)
        self._dh = np.zeros((capacity, 4), dtype=np.uint64)
        self._col = np.zeros((capacity, COLOUR_BYTES), dtype=np.uint8)
        self._indexed = 0  # entries [0, _indexed) are in the chunk tables
        # per chunk: (sorted chunk values, ids in that order, bucket offsets or None)
        self._tables: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

    def __len__(self) -> int:
        return self._n

    # ------------------------------------------------------------ adding

    def _grow(self, need: int) -> None:
        cap = len(self._keys)
        if need <= cap:
            return
        new = max(need, cap * 2)
        self._keys = np.resize(self._keys, new)
        self._ph = np.resize(self._ph, (new, 4))
        self._dh = np.resize(self._dh, (new, 4))
        self._col = np.resize(self._col, (new, COLOUR_BYTES))

    def add_rows(
        self, refs: Sequence[str], phash: np.ndarray, dhash: np.ndarray, colour: np.ndarray
    ) -> None:
        """Bulk add: ``(n, 32)`` uint8 rows of pHash and dHash (big-endian bytes) and
        ``(n, COLOUR_BYTES)`` colour signatures."""
        n = len(refs)
        if n == 0:
            return
        if not (phash.shape == dhash.shape == (n, 32) and colour.shape == (n, COLOUR_BYTES)):
            raise ValueError("hash rows must be (n, 32) uint8 arrays")
        self._grow(self._n + n)
        s = slice(self._n, self._n + n)
        for a in range(0, n, 16384):  # bounded temporaries (keys_of unpacks 256 bits a row)
            self._keys[self._n + a : self._n + min(n, a + 16384)] = keys_of(phash[a : a + 16384])
        self._ph[s] = _words(phash)
        self._dh[s] = _words(dhash)
        self._col[s] = colour
        self.refs.extend(refs)
        self._n += n
        if self._n - self._indexed > max(4096, self._indexed // 8):
            self.rebuild()

    def add_hex(
        self, refs: Sequence[str], phash: Sequence[str], dhash: Sequence[str], colour: Sequence[str]
    ) -> None:
        self.add_rows(refs, hex_rows(phash), hex_rows(dhash), hex_rows(colour, COLOUR_BYTES))

    def add(self, ref: str, h: Hashes, alias: Hashes | None = None) -> None:
        """Add ``h`` under ``ref``; ``alias`` (its crop alias, :func:`hashing.crop_alias`) is
        added as a second entry under the same reference."""
        hs = [h] if alias is None else [h, alias]
        self.add_rows(
            [ref] * len(hs),
            _hash_rows([x.phash.to_bytes(32, "big") for x in hs]),
            _hash_rows([x.dhash.to_bytes(32, "big") for x in hs]),
            np.frombuffer(b"".join(x.colour for x in hs), dtype=np.uint8).reshape(
                len(hs), COLOUR_BYTES
            ),
        )

    def rebuild(self) -> None:
        keys = self._keys[: self._n]
        self._tables = []
        for width, shift in zip(CHUNK_WIDTHS, CHUNK_SHIFTS, strict=True):
            vals = ((keys >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.uint16)
            order = np.argsort(vals, kind="stable").astype(
                np.int32 if self._n < 2**31 else np.int64
            )
            offsets = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(np.bincount(vals, minlength=1 << width), out=offsets[1:])
            del vals
            # no copy of the keys in bucket order (-32 MB at 1 M entries): a probe gathers the
            # few thousand candidate keys through ``order``
            self._tables.append((offsets, order, None))
        self._indexed = self._n

    # ------------------------------------------------------------ queries

    def _candidates(self, qkey: int) -> np.ndarray:
        """Ids whose whole key is within the radius (exact), found through the chunk tables plus
        the unindexed tail."""
        parts: list[np.ndarray] = []
        q = np.uint64(qkey)
        if self._indexed:
            for (offsets, order, _unused), width, shift in zip(
                self._tables, CHUNK_WIDTHS, CHUNK_SHIFTS, strict=True
            ):
                chunk = (qkey >> shift) & ((1 << width) - 1)
                probes = chunk ^ _masks(width, self.radius // CHUNKS)
                lo, hi = offsets[probes], offsets[probes + 1]
                lens = hi - lo
                keep = lens > 0
                if not keep.any():
                    continue
                lo, lens = lo[keep], lens[keep]
                total = int(lens.sum())
                pos = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(
                    total
                )
                ids = order[pos]
                near = np.bitwise_count(self._keys[ids] ^ q) <= self.radius
                parts.append(ids[near].astype(np.int64))
        if self._n > self._indexed:
            tail = np.arange(self._indexed, self._n)
            parts.append(tail[np.bitwise_count(self._keys[tail] ^ q) <= self.radius])
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts))  # an entry can be found through several chunks

    def _check(self, idx: np.ndarray, h: Hashes, qkey: int) -> list[Hit]:
        cfg = self.config
        kd = np.bitwise_count(self._keys[idx] ^ np.uint64(qkey)).astype(np.int64)
        sel = kd <= self.radius
        idx, kd = idx[sel], kd[sel]
        qph = _words(_hash_rows([h.phash.to_bytes(32, "big")]))
        pd = np.bitwise_count(self._ph[idx] ^ qph).sum(axis=1).astype(np.int64)
        sel = pd <= cfg.phash_max
        if cfg.key_max is not None:
            sel &= kd <= cfg.key_max
        idx, kd, pd = idx[sel], kd[sel], pd[sel]
        qdh = _words(_hash_rows([h.dhash.to_bytes(32, "big")]))
        dd = np.bitwise_count(self._dh[idx] ^ qdh).sum(axis=1).astype(np.int64)
        qc = np.frombuffer(h.colour, dtype=np.uint8).astype(np.int32).reshape(-1, 2)
        diff = self._col[idx].astype(np.int32).reshape(len(idx), COLOUR_BYTES // 2, 2) - qc
        cd = np.sqrt((diff**2).sum(axis=2).max(axis=1, initial=0))
        sel = np.ones(len(idx), dtype=bool)
        if cfg.dhash_max is not None:
            sel &= dd <= cfg.dhash_max
        if cfg.colour_max is not None:
            sel &= cd <= cfg.colour_max
        hits = [
            Hit(self.refs[i], Match(int(k), int(p), int(d), float(c)))
            for i, k, p, d, c in zip(idx[sel], kd[sel], pd[sel], dd[sel], cd[sel], strict=True)
        ]
        hits.sort(key=lambda x: (x.match.phash_distance, x.match.dhash_distance, x.ref))
        seen: set[str] = set()  # a reference with a crop alias may match twice: nearest kept
        return [x for x in hits if not (x.ref in seen or seen.add(x.ref))]

    def query(self, h: Hashes) -> list[Hit]:
        """Every stored entry that is a duplicate of ``h``, nearest first."""
        qkey = hashing.key64(h.phash)
        return self._check(self._candidates(qkey), h, qkey)

    def brute_force(self, h: Hashes) -> list[Hit]:
        """The same answer by scanning every entry (reference for tests and benchmarks)."""
        return self._check(np.arange(self._n), h, hashing.key64(h.phash))

    def nearest(self, h: Hashes) -> Hit | None:
        hits = self.query(h)
        return hits[0] if hits else None

    def candidate_count(self, h: Hashes) -> int:
        """Entries the index reads for ``h`` (bucket entries of every probe, plus the tail)."""
        qkey = hashing.key64(h.phash)
        n = self._n - self._indexed
        tables = self._tables if self._indexed else []
        for (offsets, _order, _keys), width, shift in zip(
            tables, CHUNK_WIDTHS, CHUNK_SHIFTS, strict=False
        ):
            probes = ((qkey >> shift) & ((1 << width) - 1)) ^ _masks(width, self.radius // CHUNKS)
            n += int((offsets[probes + 1] - offsets[probes]).sum())
        return n
