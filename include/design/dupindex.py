"""A near-duplicate index that is sub-linear in the number of stored hashes: multi-index hashing
(Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012).

The 64-bit index key (:func:`include.design.hashing.key64`) is cut into 4 chunks of 16 bits. If
two keys are within Hamming distance ``r``, at least one chunk is within ``r // 4`` (pigeonhole),
so probing each chunk's table with every value within ``r // 4`` of the query's chunk
finds a superset of the answers; the candidates are then checked with the full duplicate rule
(key, pHash, dHash, colour) — the answers are exactly a brute-force scan's
(:meth:`DupIndex.brute_force`, tested and benchmarked).

Layout (what holds the memory, measured by ``bench/bench_design_index.py``): in memory only what
a probe needs; the data used only by the full-rule check of the few candidates is out of core.

* **rows** — one per stored hash pair: a design, or its crop alias
  (:func:`include.design.hashing.crop_alias`). In memory: the 64-bit key (uint64; the pHash's
  first word in :data:`_PH_ORDER` — Hamming distance does not depend on the bit order) and the
  row's entry (int32): 12 bytes a row. Verification record (56 bytes a row): the pHash's other 3
  words and the dHash's 4 words;
* **entries** — one per reference: the reference (in memory, :class:`_Refs`) and the colour
  signature (72 uint8, a verification record), stored once however many rows (a design and its
  alias) point at it. An alias row is checked with its own pHash and dHash and its design's
  colour signature (a 2.5 % border cut moves the 6x6 chroma grid little; on the tune sets the
  alias' own signature and the design's give the same answers);
* **chunk tables** (in memory) — per chunk the row ids (int32) sorted by chunk value (a counting
  sort in bounded blocks, no n-sized temporaries) and a bucket-offset array over the 2**16 chunk
  values (512 KB, stays in cache): a probe is two offset reads and one contiguous run of ids whose
  keys are gathered and filtered on the whole key at once. No Python loop over entries.

The verification records (:class:`_Records`) stay in numpy arrays while the index is small (up to
``spill_rows`` rows, e.g. a run's own uploads); past that they move to two files in a temporary
directory the index owns (under ``spill_dir``), appended with ``file.write`` in blocks (page
cache, not this process's memory) and read with ``os.pread`` only for the candidate rows that
pass the key filter (one read per run of consecutive ids; no memory map, whose touched pages
would count as this process's memory).
:meth:`DupIndex.close` (or ``with DupIndex(...) as index``, or the garbage collector, or the
interpreter's exit) removes them; an index is not reopened from its files (it is rebuilt from the
database each run). At 1 M designs with their aliases (2 M rows): 71 MB in memory (rows 24 MB,
tables 34 MB, references 13 MB) + 184 MB on disk (rows 112 MB, colour 72 MB); the bench's isolated
process peaks at 144 MB resident (Python, numpy and imports included), 0.6-1.1 ms a query at key
radius 10, 3.3 ms at the second look's radius 15 (2074x the seed scan).

Additions go to an unsorted tail that is scanned directly and merged into the tables (at the next
query) when it has grown past an eighth of the index, so the within-run check (add as you go) stays
cheap and a bulk load sorts once. Additions after the spill are appended to the files (flushed
before the next read).
"""

from __future__ import annotations

import bisect
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import IO, Any

import numpy as np

from include.design import hashing
from include.design.hashing import COLOUR_BYTES, DEFAULT, DupConfig, Hashes, Match

CHUNK_WIDTHS = (16, 16, 16, 16)
CHUNKS = len(CHUNK_WIDTHS)
CHUNK_SHIFTS = (48, 32, 16, 0)
_BLOCK = 65536  # rows per block when adding or sorting (bounded temporaries)
#: Rows up to which the verification records stay in memory (:class:`DupIndex` ``spill_rows``).
SPILL_ROWS = 1 << 16

#: pHash byte order of the stored words: the key's bytes (the first 8 bits of each of the first 8
#: rows of the 16x16 bit grid = bytes 0, 2, ..., 14) first, then the other 24 bytes.
_PH_ORDER = np.array([*range(0, 16, 2), *range(1, 16, 2), *range(16, 32)])


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


def _ph_words(rows: np.ndarray) -> np.ndarray:
    """``(n, 32)`` pHash rows -> ``(n, 4)`` uint64 words, word 0 = the key (:data:`_PH_ORDER`)."""
    return np.ascontiguousarray(rows[:, _PH_ORDER]).view(">u8").astype(np.uint64)


def _words(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows).view(">u8").astype(np.uint64)


def keys_of(phash_rows: np.ndarray) -> np.ndarray:
    """Vectorised :func:`include.design.hashing.key64` over ``(n, 32)`` pHash rows."""
    return np.ascontiguousarray(_ph_words(phash_rows)[:, 0])


class _Refs:
    """References stored compactly: chunks of one byte buffer plus end offsets each (a list of
    1 M Python strings costs ~70 MB; this ~13 MB). Appending never copies earlier chunks."""

    def __init__(self) -> None:
        self._starts: list[int] = []  # first index of each chunk
        self._chunks: list[tuple[bytes, np.ndarray]] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def extend(self, refs: Sequence[str]) -> None:
        if not refs:
            return
        buf = "".join(refs).encode()
        lens = np.fromiter(map(len, refs), dtype=np.int64, count=len(refs))
        if len(buf) != int(lens.sum()):  # not all ASCII: byte lengths one by one
            lens = np.fromiter((len(r.encode()) for r in refs), dtype=np.int64, count=len(refs))
        ends = np.cumsum(lens).astype(np.int32)  # offsets within this chunk's buffer
        self._starts.append(self._n)
        self._chunks.append((buf, ends))
        self._n += len(refs)

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


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    if need <= len(a):
        return a
    return np.resize(a, (max(need, len(a) * 2), *a.shape[1:]))


class _Records:
    """Fixed-width records appended in order and read by number (:meth:`take`): in a numpy array
    until :meth:`spill`, then in a file — appended with ``file.write`` (page cache, not this
    process's memory) and read with positional reads of just the records asked for. Not a memory
    map: the pages a map touches count towards this process's resident memory, and on a current
    kernel a fault maps a whole large folio of the page cache (measured at 2 M rows: +107 MB
    resident after 200 queries through ``np.frombuffer(mmap)``, +1 MB with ``os.pread``)."""

    def __init__(self, width: int, dtype: Any, capacity: int) -> None:
        self.width, self.dtype = width, np.dtype(dtype)
        self.n = 0
        self._arr: np.ndarray | None = np.zeros((max(1, capacity), width), dtype=self.dtype)
        self._file: IO[bytes] | None = None
        self._dirty = False  # appended since the last flush

    @property
    def record_bytes(self) -> int:
        return self.width * self.dtype.itemsize

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    @property
    def ram_bytes(self) -> int:
        return 0 if self._arr is None else self.n * self.record_bytes

    @property
    def disk_bytes(self) -> int:
        return self.n * self.record_bytes if self._file is not None else 0

    def spill(self, path: Path) -> None:
        """Move the records to the file ``path`` (written block by block); later appends go there."""
        f = open(path, "w+b")  # noqa: SIM115  # closed by close()
        if self._arr is not None:
            for a in range(0, self.n, _BLOCK):
                f.write(np.ascontiguousarray(self._arr[a : min(self.n, a + _BLOCK)]))
        self._arr, self._file, self._dirty = None, f, True

    def append(self, block: np.ndarray) -> None:
        k = len(block)
        if self._file is not None:
            self._file.write(np.ascontiguousarray(block, dtype=self.dtype))
            self._dirty = True
        elif self._arr is not None:
            self._arr = _grown(self._arr, self.n + k)
            self._arr[self.n : self.n + k] = block
        else:
            raise ValueError("the index is closed")
        self.n += k

    def take(self, idx: np.ndarray) -> np.ndarray:
        """The records ``idx`` (a copy). From the file: one positional read (``os.pread``) per run
        of consecutive ids, nothing mapped into this process."""
        if self._arr is not None:
            return self._arr[idx]
        if self._file is None:
            raise ValueError("the index is closed")
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) == 0:
            return np.zeros((0, self.width), dtype=self.dtype)
        if not 0 <= idx.min() <= idx.max() < self.n:
            raise IndexError("record id out of range")
        if self._dirty:
            self._file.flush()
            self._dirty = False
        ids, back = np.unique(idx, return_inverse=True)
        first = np.flatnonzero(np.diff(ids, prepend=ids[0] - 2) != 1)  # runs of consecutive ids
        lens = np.diff(first, append=len(ids))
        rb, fd = self.record_bytes, self._file.fileno()
        buf = b"".join(
            os.pread(fd, int(k) * rb, int(i) * rb) for i, k in zip(ids[first], lens, strict=True)
        )
        if len(buf) != len(ids) * rb:
            raise OSError(f"short read from {self._file.name}")
        return np.frombuffer(buf, dtype=self.dtype).reshape(len(ids), self.width)[back.ravel()]

    def close(self) -> None:
        self._arr = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _release(records: list[_Records], directory: list[str]) -> None:
    """Close ``records`` and remove the spill directory (the finalizer of a :class:`DupIndex`:
    refers to its records and directory, not to the index)."""
    for r in records:
        r.close()
    if directory:
        shutil.rmtree(directory.pop(), ignore_errors=True)


class DupIndex:
    """Stored hashes with a reference each (e.g. ``"db:42"``, ``"nas:shop/x.png"``), optionally
    with a crop alias each (a second row under the same reference).

    ``capacity``: expected references, ``alias_capacity``: expected aliases (sizes the in-memory
    arrays up front, so a bulk load never copies them while growing). ``spill_rows``: past this
    many rows the verification records (pHash beyond the key, dHash, colour) move to files in a
    temporary directory made under ``spill_dir`` (default: the system's temporary directory) and
    removed by :meth:`close` (also a context manager; the garbage collector or the interpreter's
    exit do it otherwise)."""

    def __init__(
        self,
        config: DupConfig = DEFAULT,
        capacity: int = 1024,
        alias_capacity: int = 0,
        *,
        spill_rows: int = SPILL_ROWS,
        spill_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config
        self.radius = config.index_radius
        self.refs = _Refs()
        self._n = 0  # rows
        self._ne = 0  # entries (references)
        rows = max(1, capacity + alias_capacity)
        self._key = np.zeros(rows, dtype=np.uint64)
        self._entry = np.zeros(rows, dtype=np.int32)
        # verification records: pHash words 1-3 + dHash words 0-3 per row; colour per entry
        self._rest = _Records(7, np.uint64, min(rows, spill_rows))
        self._col = _Records(COLOUR_BYTES, np.uint8, min(max(1, capacity), spill_rows))
        self._spill_rows = spill_rows
        self._spill_dir = spill_dir
        self._dir: list[str] = []  # the spill directory, once made
        self._closed = False
        self._finalizer = weakref.finalize(self, _release, [self._rest, self._col], self._dir)
        self._indexed = 0  # rows [0, _indexed) are in the chunk tables
        # per chunk: (bucket offsets, row ids in chunk-value order)
        self._tables: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return self._n

    def __enter__(self) -> DupIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the verification records and remove their files (idempotent); the index
        cannot be used afterwards."""
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def spill_path(self) -> Path | None:
        """The directory holding the verification records, if they are on disk."""
        return Path(self._dir[0]) if self._dir else None

    def footprint(self) -> dict[str, int]:
        """Bytes held: ``ram`` (keys, entries, chunk tables, references, in-memory verification
        records; the used part of each array) and ``disk`` (the verification record files)."""
        tables = sum(o.nbytes + ids.nbytes for o, ids in self._tables)
        refs = sum(len(b) + e.nbytes for b, e in self.refs._chunks)
        rows = self._n * (self._key.itemsize + self._entry.itemsize)
        return {
            "ram": rows + tables + refs + self._rest.ram_bytes + self._col.ram_bytes,
            "disk": self._rest.disk_bytes + self._col.disk_bytes,
        }

    @property
    def _keys(self) -> np.ndarray:
        """The rows' 64-bit keys."""
        return self._key[: self._n]

    def _spill(self) -> None:
        self._dir.append(tempfile.mkdtemp(prefix="dupindex-", dir=self._spill_dir))
        self._rest.spill(Path(self._dir[0]) / "rows.bin")
        self._col.spill(Path(self._dir[0]) / "colour.bin")

    # ------------------------------------------------------------ adding

    def _add_block(self, entries: np.ndarray, phash: np.ndarray, dhash: np.ndarray) -> None:
        for a in range(0, len(entries), _BLOCK):  # bounded temporaries
            b = min(len(entries), a + _BLOCK)
            s = slice(self._n, self._n + b - a)
            words = _ph_words(phash[a:b])
            self._key[s] = words[:, 0]
            rest = np.empty((b - a, 7), dtype=np.uint64)
            rest[:, :3] = words[:, 1:]
            rest[:, 3:] = _words(dhash[a:b])
            self._rest.append(rest)
            self._entry[s] = entries[a:b]
            self._n += b - a

    def add_rows(
        self,
        refs: Sequence[str],
        phash: np.ndarray,
        dhash: np.ndarray,
        colour: np.ndarray,
        alias_phash: np.ndarray | None = None,
        alias_dhash: np.ndarray | None = None,
        alias_at: np.ndarray | None = None,
    ) -> None:
        """Bulk add: ``(n, 32)`` uint8 rows of pHash and dHash (big-endian bytes) and
        ``(n, COLOUR_BYTES)`` colour signatures; optionally ``(m, 32)`` rows of crop-alias pHash
        and dHash belonging to the references at positions ``alias_at`` (default: all n)."""
        if self._closed:
            raise ValueError("the index is closed")
        n = len(refs)
        if not (phash.shape == dhash.shape == (n, 32) and colour.shape == (n, COLOUR_BYTES)):
            raise ValueError("hash rows must be (n, 32) uint8 arrays")
        if alias_phash is not None:
            if alias_dhash is None or alias_phash.shape != alias_dhash.shape:
                raise ValueError("alias pHash and dHash rows must come together")
            at = np.arange(n) if alias_at is None else np.asarray(alias_at, dtype=np.int64)
            if alias_phash.shape != (len(at), 32) or (
                len(at) and not 0 <= at.min() <= at.max() < n
            ):
                raise ValueError("alias rows must be (m, 32) uint8 arrays of listed references")
        else:
            at = np.zeros(0, dtype=np.int64)
        if n == 0:
            return
        rows = self._n + n + len(at)
        if rows > self._spill_rows and not self._rest.on_disk:
            self._spill()
        self._key, self._entry = _grown(self._key, rows), _grown(self._entry, rows)
        for a in range(0, n, _BLOCK):
            self._col.append(colour[a : a + _BLOCK])
        self._add_block(np.arange(self._ne, self._ne + n, dtype=np.int32), phash, dhash)
        if len(at):
            assert alias_phash is not None and alias_dhash is not None
            self._add_block((self._ne + at).astype(np.int32), alias_phash, alias_dhash)
        self.refs.extend(refs)
        self._ne += n

    def add_hex(
        self,
        refs: Sequence[str],
        phash: Sequence[str],
        dhash: Sequence[str],
        colour: Sequence[str],
        alias_phash: Sequence[str | None] | None = None,
        alias_dhash: Sequence[str | None] | None = None,
    ) -> None:
        """Hex columns as stored in the database; the alias columns may hold ``None`` (a row
        whose crop alias is not known: no alias row)."""
        at: list[int] = []
        if alias_phash is not None and alias_dhash is not None:
            at = [
                k
                for k, (p, d) in enumerate(zip(alias_phash, alias_dhash, strict=True))
                if p is not None and d is not None
            ]
        self.add_rows(
            refs,
            hex_rows(phash),
            hex_rows(dhash),
            hex_rows(colour, COLOUR_BYTES),
            hex_rows([alias_phash[k] for k in at]) if at else None,  # type: ignore[index,misc]
            hex_rows([alias_dhash[k] for k in at]) if at else None,  # type: ignore[index,misc]
            np.array(at, dtype=np.int64) if at else None,
        )

    def add(self, ref: str, h: Hashes, alias: Hashes | None = None) -> None:
        """Add ``h`` under ``ref``; ``alias`` (its crop alias, :func:`hashing.crop_alias`) is
        added as a second row under the same reference (checked with ``h``'s colour signature)."""
        one = np.frombuffer(h.colour, dtype=np.uint8).reshape(1, COLOUR_BYTES)
        self.add_rows(
            [ref],
            _hash_rows([h.phash.to_bytes(32, "big")]),
            _hash_rows([h.dhash.to_bytes(32, "big")]),
            one,
            None if alias is None else _hash_rows([alias.phash.to_bytes(32, "big")]),
            None if alias is None else _hash_rows([alias.dhash.to_bytes(32, "big")]),
        )

    def rebuild(self) -> None:
        """(Re)build the chunk tables over every row: a counting sort per chunk, block by block
        (the only temporaries are one block's values and order)."""
        n = self._n
        keys = self._key[:n]
        id_type = np.int32 if n < 2**31 else np.int64
        self._tables = []
        for width, shift in zip(CHUNK_WIDTHS, CHUNK_SHIFTS, strict=True):
            mask, sh = np.uint64((1 << width) - 1), np.uint64(shift)
            counts = np.zeros(1 << width, dtype=np.int64)
            for a in range(0, n, _BLOCK):
                vals = ((keys[a : a + _BLOCK] >> sh) & mask).astype(np.intp)
                counts += np.bincount(vals, minlength=1 << width)
            offsets = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            cursor = offsets[:-1].copy()
            order = np.empty(n, dtype=id_type)
            for a in range(0, n, _BLOCK):
                vals = ((keys[a : a + _BLOCK] >> sh) & mask).astype(np.intp)
                s = np.argsort(vals, kind="stable")
                sv = vals[s]
                rank = np.arange(len(sv)) - np.searchsorted(sv, sv, side="left")
                order[cursor[sv] + rank] = a + s
                cursor += np.bincount(vals, minlength=1 << width)
            self._tables.append((offsets, order))
        self._indexed = n

    # ------------------------------------------------------------ queries

    def _probe_lists(self, qkey: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for (offsets, order), width, shift in zip(
            self._tables, CHUNK_WIDTHS, CHUNK_SHIFTS, strict=False
        ):
            probes = ((qkey >> shift) & ((1 << width) - 1)) ^ _masks(width, self.radius // CHUNKS)
            out.append((offsets[probes], offsets[probes + 1], order))
        return out

    def _candidates(self, qkey: int) -> np.ndarray:
        """Rows whose whole key is within the radius (exact), found through the chunk tables plus
        the unindexed tail."""
        if self._n - self._indexed > max(4096, self._indexed // 8):
            self.rebuild()  # lazily, at the first query after a bulk load
        parts: list[np.ndarray] = []
        q = np.uint64(qkey)
        if self._indexed:
            for lo, hi, order in self._probe_lists(qkey):
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
                near = np.bitwise_count(self._key[ids] ^ q) <= self.radius
                parts.append(ids[near].astype(np.int64))
        if self._n > self._indexed:
            tail = np.arange(self._indexed, self._n)
            parts.append(
                tail[np.bitwise_count(self._key[self._indexed : self._n] ^ q) <= self.radius]
            )
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts))  # a row can be found through several chunks

    def _check(self, idx: np.ndarray, h: Hashes, qkey: int) -> list[Hit]:
        """The rows ``idx`` (ascending) that pass the full rule, one hit per reference: the key
        filter in memory first, then only the survivors' verification records are read."""
        if self._closed:
            raise ValueError("the index is closed")
        cfg = self.config
        kd = np.bitwise_count(self._key[idx] ^ np.uint64(qkey)).astype(np.int64)
        sel = kd <= self.radius
        idx, kd = idx[sel], kd[sel]
        qph = _ph_words(_hash_rows([h.phash.to_bytes(32, "big")]))[0]
        qdh = _words(_hash_rows([h.dhash.to_bytes(32, "big")]))[0]
        rest = self._rest.take(idx)  # pHash words 1-3, dHash words 0-3
        pd = kd + np.bitwise_count(rest[:, :3] ^ qph[1:]).sum(axis=1, dtype=np.int64)
        sel = pd <= cfg.phash_max  # a cheap first cut; the rule itself is hashing.accepts_arrays
        idx, kd, pd, rest = idx[sel], kd[sel], pd[sel], rest[sel]
        dd = np.bitwise_count(rest[:, 3:] ^ qdh).sum(axis=1, dtype=np.int64)
        ent = self._entry[idx]
        qc = np.frombuffer(h.colour, dtype=np.uint8).astype(np.int32).reshape(-1, 2)
        diff = self._col.take(ent).astype(np.int32).reshape(len(idx), COLOUR_BYTES // 2, 2) - qc
        cd = np.sqrt((diff**2).sum(axis=2).max(axis=1, initial=0))
        sel = hashing.accepts_arrays(kd, pd, dd, cd, cfg)
        hits = [
            Hit(self.refs[e], Match(int(k), int(p), int(d), float(c)))
            for e, k, p, d, c in zip(ent[sel], kd[sel], pd[sel], dd[sel], cd[sel], strict=True)
        ]
        hits.sort(key=lambda x: (x.match.phash_distance, x.match.dhash_distance, x.ref))
        seen: set[str] = set()  # a reference with a crop alias may match twice: nearest kept
        return [x for x in hits if not (x.ref in seen or seen.add(x.ref))]

    def query(self, h: Hashes) -> list[Hit]:
        """Every stored reference that is a duplicate of ``h`` (through its hashes or its crop
        alias), nearest first."""
        qkey = hashing.key64(h.phash)
        return self._check(self._candidates(qkey), h, qkey)

    def brute_force(self, h: Hashes) -> list[Hit]:
        """The same answer by scanning every row (reference for tests and benchmarks)."""
        return self._check(np.arange(self._n), h, hashing.key64(h.phash))

    def nearest(self, h: Hashes) -> Hit | None:
        hits = self.query(h)
        return hits[0] if hits else None

    def candidate_count(self, h: Hashes) -> int:
        """Rows the index reads for ``h`` (bucket entries of every probe, plus the tail)."""
        qkey = hashing.key64(h.phash)
        n = self._n - self._indexed
        if self._indexed:
            n += sum(int((hi - lo).sum()) for lo, hi, _order in self._probe_lists(qkey))
        return n
