"""Stitch microscope tiles by stage coordinates into an OME-NGFF 0.5 (zarr v3) multiscale image,
one image group per channel, without ever holding the canvas in memory.

How: the canvas is produced in horizontal bands one shard high. Every tile that overlaps a band is
decoded once (kept until its last band is done), pasted into the band buffer, and the band is
written as whole shards (no read-modify-write). Each pyramid level is derived band by band from
the level above and buffered until it has a full shard row. Memory is about
``2 x shard_height x canvas_width`` pixels plus one row of tiles, whatever the canvas size; the
shard encoding (blosc/zstd per inner chunk) runs in parallel in zarr's codec pipeline and our
thread pool.

Output (``<name>.zarr``): root group attrs ``reef`` (channels, pixel size, source folder) and per
channel ``<channel>/`` a multiscale image with axes y/x in micrometer, ``scale`` and
``translation`` transforms (stage position of pixel 0,0) and ``omero`` channel name, colour and
window. The result is built under a temp name and renamed; ``.done`` marks a finished stitch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from include.reef.acquisition import (
    ORIGINAL_ADJUSTMENT,
    AcquisitionError,
    MosaicPlan,
    Placement,
    plan_mosaic,
    scan_tiles,
)

DONE_MARKER = ".done"


class StitchInputError(AcquisitionError):
    """A tile cannot be decoded or does not fit (per-folder input error)."""


@dataclass(frozen=True)
class StitchOptions:
    """How tiles are turned before placing and how the output is chunked.

    Defaults keep pixels as recorded (no flip, no rotation, no clipping). :meth:`original` gives
    the original uploader's choices: both axes flipped, 0.1 degree rotation, 1-99 percentile
    clipping to 8 bit, 0.936 pixel-size calibration.
    """

    flip_x: bool = False
    flip_y: bool = False
    rot90: int = 0  # quarter turns counter-clockwise
    rotation_deg: float = 0.0  # extra small rotation (bilinear, edges replicated)
    clip_percentiles: tuple[float, float] | None = None  # -> uint8
    pixel_size_adjustment: float = 1.0
    z_level: int | None = None
    chunk: int = 512
    shard: int = 2048
    min_level_size: int = 512  # stop the pyramid when the largest side is <= this
    max_levels: int = 8
    downsample: str = "mean"  # "mean" (2x2 average) or "nearest"
    codec: str = "zstd"
    compression_level: int = 1
    workers: int = 2

    @classmethod
    def original(cls, **overrides: Any) -> StitchOptions:
        base = dict(
            flip_x=True,
            flip_y=True,
            rotation_deg=0.1,
            clip_percentiles=(1.0, 99.0),
            pixel_size_adjustment=ORIGINAL_ADJUSTMENT,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StitchOptions:
        data = dict(data or {})
        preset = data.pop("preset", None)
        if "clip_percentiles" in data and data["clip_percentiles"] is not None:
            data["clip_percentiles"] = tuple(data["clip_percentiles"])
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown stitch option(s): {sorted(unknown)}")
        return cls.original(**data) if preset == "original" else cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_COLOURS = (
    ("405", "0000FF"),
    ("488", "00FF00"),
    ("561", "FFFF00"),
    ("638", "FF0000"),
    ("640", "FF0000"),
    ("730", "FF00FF"),
)


def channel_colour(name: str) -> str:
    for key, colour in _COLOURS:
        if key in name:
            return colour
    return "FFFFFF"


def read_tile(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a BMP/TIFF tile to a 2-D array (colour tiles are converted to luminance)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA", "P", "LA"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise StitchInputError(f"cannot decode tile {Path(path).name}: {exc}") from None
    if arr.ndim != 2:
        raise StitchInputError(f"tile {Path(path).name} is not a single-channel image")
    return arr


def tile_header(path: str | os.PathLike[str]) -> tuple[tuple[int, int], np.dtype]:
    """(height, width) and dtype of a tile from its header (no pixel decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise StitchInputError(f"cannot decode tile {Path(path).name}: {exc}") from None
    dtype = np.dtype(np.uint16) if mode.startswith("I;16") else np.dtype(np.uint8)
    if mode in ("I", "F"):
        raise StitchInputError(f"tile {Path(path).name}: unsupported pixel mode {mode}")
    return (h, w), dtype


def transform_tile(img: np.ndarray, opts: StitchOptions) -> np.ndarray:
    if opts.clip_percentiles is not None and img.dtype != np.uint8:
        lo, hi = np.percentile(img, opts.clip_percentiles)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = ((np.clip(img, lo, hi) - lo) * scale).astype(np.uint8)
    if opts.rot90 % 4:
        img = np.rot90(img, opts.rot90 % 4)
    if opts.rotation_deg:
        from skimage.transform import rotate

        dtype = img.dtype
        img = rotate(img, opts.rotation_deg, order=1, mode="edge", preserve_range=True)
        img = np.round(img).astype(dtype)
    if opts.flip_y:
        img = img[::-1, :]
    if opts.flip_x:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def output_dtype(src: np.dtype, opts: StitchOptions) -> np.dtype:
    return np.dtype(np.uint8) if opts.clip_percentiles is not None else np.dtype(src)


def level_shapes(shape: tuple[int, int], opts: StitchOptions) -> list[tuple[int, int]]:
    shapes = [shape]
    while len(shapes) < opts.max_levels and max(shapes[-1]) > opts.min_level_size:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def downsample2(a: np.ndarray, method: str) -> np.ndarray:
    """Halve both axes (odd sizes round up)."""
    if method == "nearest":
        return a[::2, ::2]
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), mode="edge")
    wide = np.uint32 if a.dtype.itemsize >= 2 else np.uint16
    r = np.add(a[0::2], a[1::2], dtype=wide)  # rows first: contiguous, fast
    s = np.add(r[:, 0::2], r[:, 1::2])
    s += 2
    s >>= 2
    return s.astype(a.dtype)


@dataclass
class ChannelResult:
    name: str
    path: str
    levels: list[tuple[int, int]]
    tiles: int
    window: tuple[float, float]


@dataclass
class StitchResult:
    zarr_path: str
    shape: tuple[int, int]
    pixel_size_um: float
    origin_mm: tuple[float, float]
    dtype: str
    channels: list[ChannelResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


MAX_UINT_64 = 2**64 - 1


class ShardWriter:
    """Writes whole shards of a zarr v3 sharded 2-D array straight to its directory store.

    zarr creates the array (metadata); this class encodes each shard's inner chunks with the
    array's blosc codec in a thread pool (blosc releases the GIL) and writes the shard file
    (chunks + ``(offset, nbytes)`` index + crc32c, index at the end) under a temp name before
    renaming it. All-zero chunks (the fill value) are left out, as zarr does.
    """

    def __init__(self, arr: Any, array_dir: Path, pool: ThreadPoolExecutor):
        from numcodecs import Blosc
        from zarr.codecs import BloscCodec, ShardingCodec
        from zarr.codecs.sharding import ShardingCodecIndexLocation

        codecs = arr.metadata.codecs
        if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
            raise ValueError("expected a sharded array")
        sc = codecs[0]
        if sc.index_location != ShardingCodecIndexLocation.end:
            raise ValueError("expected the shard index at the end")
        blosc = [c for c in sc.codecs if isinstance(c, BloscCodec)]
        if len(blosc) != 1:
            raise ValueError("expected one blosc codec inside the shards")
        b = blosc[0]
        shuffle = {
            "noshuffle": Blosc.NOSHUFFLE,
            "shuffle": Blosc.SHUFFLE,
            "bitshuffle": Blosc.BITSHUFFLE,
        }
        self.codec = Blosc(cname=b.cname.value, clevel=b.clevel, shuffle=shuffle[b.shuffle.value])
        self.shape = tuple(arr.shape)
        self.shard = tuple(arr.shards)
        self.chunk = tuple(sc.chunk_shape)
        self.dtype = arr.dtype
        self.dir = array_dir
        self.pool = pool
        self.arr = arr

    def _encode_shard(self, block: np.ndarray, i: int, j: int) -> None:
        import google_crc32c

        sy, sx = self.shard
        cy, cx = self.chunk
        ny, nx = sy // cy, sx // cx
        index = np.full((ny, nx, 2), MAX_UINT_64, dtype="<u8")
        parts: list[bytes] = []
        offset = 0
        h, w = block.shape
        for a in range(ny):
            for b in range(nx):
                y0, x0 = a * cy, b * cx
                if y0 >= h or x0 >= w:
                    continue
                c = block[y0 : y0 + cy, x0 : x0 + cx]
                if not c.any():
                    continue
                if c.shape != (cy, cx):
                    full = np.zeros((cy, cx), dtype=block.dtype)
                    full[: c.shape[0], : c.shape[1]] = c
                    c = full
                data = self.codec.encode(np.ascontiguousarray(c))
                index[a, b] = (offset, len(data))
                parts.append(bytes(data))
                offset += len(data)
        path = self.dir / self.arr.metadata.encode_chunk_key((i, j))
        if not parts:
            path.unlink(missing_ok=True)
            return
        idx = index.tobytes()
        parts.append(idx)
        parts.append(np.uint32(google_crc32c.value(idx)).astype("<u4").tobytes())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        with open(tmp, "wb") as fh:
            for p in parts:
                fh.write(p)
        os.replace(tmp, path)

    def submit_rows(self, row0: int, rows: np.ndarray) -> list[Future[None]]:
        """Encode and write the shard row starting at ``row0`` (a multiple of the shard height)."""
        sy, sx = self.shard
        if row0 % sy or rows.shape[0] > sy or rows.shape[1] != self.shape[1]:
            raise ValueError("rows must be one shard row wide and aligned")
        i = row0 // sy
        futs = []
        for j, x0 in enumerate(range(0, self.shape[1], sx)):
            futs.append(self.pool.submit(self._encode_shard, rows[:, x0 : x0 + sx], i, j))
        return futs


class _LevelWriter:
    """Buffers rows of one pyramid level until a full shard row is ready, then writes it."""

    def __init__(self, writer: ShardWriter):
        self.writer = writer
        self.shard_rows = writer.shard[0]
        self.buf = np.zeros((self.shard_rows, writer.shape[1]), dtype=writer.dtype)
        self.filled = 0
        self.row0 = 0
        self.pending: list[Future[None]] = []

    def push(self, rows: np.ndarray) -> None:
        i = 0
        while i < rows.shape[0]:
            n = min(self.shard_rows - self.filled, rows.shape[0] - i)
            self.wait()
            self.buf[self.filled : self.filled + n] = rows[i : i + n]
            self.filled += n
            i += n
            if self.filled == self.shard_rows:
                self.flush()

    def wait(self) -> None:
        for f in self.pending:
            f.result()
        self.pending = []

    def flush(self) -> None:
        if self.filled:
            n = min(self.filled, self.writer.shape[0] - self.row0)
            self.pending = self.writer.submit_rows(self.row0, self.buf[:n])
            self.row0 += n
            self.filled = 0


def _stitch_channel(
    group: Any,
    name: str,
    placements: list[Placement],
    plan: MosaicPlan,
    dtype: np.dtype,
    opts: StitchOptions,
    pool: ThreadPoolExecutor,
) -> ChannelResult:
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata
    from zarr.codecs import BloscCodec, BloscShuffle

    shapes = level_shapes(plan.shape, opts)
    shard = opts.shard
    if shard % (opts.chunk) or shard % (2 ** (len(shapes) - 1)):
        raise ValueError("shard must be a multiple of chunk and of 2**(levels-1)")
    g = group.create_group(name)
    shuffle = BloscShuffle.bitshuffle if dtype.itemsize == 1 else BloscShuffle.shuffle
    arrays = []
    for lvl, (h, w) in enumerate(shapes):
        c = (min(opts.chunk, h), min(opts.chunk, w))
        s = (min(shard, math.ceil(h / c[0]) * c[0]), min(shard, math.ceil(w / c[1]) * c[1]))
        arrays.append(
            zarr.create_array(
                g.store,
                name=f"{g.path}/{lvl}",
                shape=(h, w),
                dtype=dtype,
                chunks=c,
                shards=s,
                compressors=[
                    BloscCodec(cname=opts.codec, clevel=opts.compression_level, shuffle=shuffle)
                ],
                fill_value=0,
                dimension_names=("y", "x"),
                # shard files c.<row>.<col> side by side: one folder per level to list and sync
                chunk_key_encoding={"name": "default", "separator": "."},
                config={"write_empty_chunks": False},
            )
        )
    store_root = Path(str(g.store.root))
    shard_writers = [ShardWriter(a, store_root / a.path, pool) for a in arrays]
    writers = [_LevelWriter(w) for w in shard_writers[1:]]
    th, tw = plan.tile_shape
    order = sorted(placements, key=lambda p: (p.y, p.x, p.region, p.fov))
    cache: dict[int, Future[np.ndarray]] = {}

    def load(p: Placement) -> np.ndarray:
        img = transform_tile(read_tile(p.path), opts)
        if img.shape != (th, tw):
            raise StitchInputError(
                f"tile {Path(p.path).name} is {img.shape[1]}x{img.shape[0]}, expected {tw}x{th}"
            )
        return img.astype(dtype, copy=False)

    H, W = plan.shape
    bands = [np.zeros((shard, W), dtype=dtype) for _ in range(2)]
    band_pending: list[list[Future[None]]] = [[], []]
    nxt = 0  # index in `order` of the first tile not yet scheduled
    try:
        for bi, y0 in enumerate(range(0, H, shard)):
            y1 = min(H, y0 + shard)
            # decode tiles of this band and prefetch those of the next one
            while nxt < len(order) and order[nxt].y < y1 + shard:
                cache[nxt] = pool.submit(load, order[nxt])
                nxt += 1
            band = bands[bi % 2]
            for f in band_pending[bi % 2]:
                f.result()
            band[: y1 - y0].fill(0)
            for k in list(cache):
                p = order[k]
                if p.y >= y1:
                    continue
                img = cache[k].result()
                ty0, ty1 = max(p.y, y0), min(p.y + th, y1)
                band[ty0 - y0 : ty1 - y0, p.x : p.x + tw] = img[ty0 - p.y : ty1 - p.y]
                if p.y + th <= y1:
                    del cache[k]
            rows = band[: y1 - y0]
            band_pending[bi % 2] = shard_writers[0].submit_rows(y0, rows)
            cur = rows
            for wr in writers:
                cur = downsample2(cur, opts.downsample)
                wr.push(cur)
        for wr in writers:
            wr.flush()
            wr.wait()
        for futs in band_pending:
            for f in futs:
                f.result()
    finally:
        for f in cache.values():
            f.cancel()
    smallest = np.asarray(arrays[-1][...])
    nz = smallest[smallest > 0]
    lo, hi = (float(nz.min()), float(nz.max())) if nz.size else (0.0, 0.0)
    info = np.iinfo(dtype)
    px = plan.pixel_size_um
    ox_um, oy_um = plan.origin_mm[0] * 1000.0, plan.origin_mm[1] * 1000.0
    datasets = [
        {
            "path": str(lvl),
            "coordinateTransformations": [
                {"type": "scale", "scale": [px * 2**lvl, px * 2**lvl]},
                {"type": "translation", "translation": [oy_um, ox_um]},
            ],
        }
        for lvl in range(len(shapes))
    ]
    write_multiscales_metadata(
        g,
        datasets,
        fmt=FormatV05(),
        axes=[
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        name=name,
        metadata={
            "omero": {
                "name": name,
                "channels": [
                    {
                        "label": name,
                        "color": channel_colour(name),
                        "active": True,
                        "window": {
                            "min": float(info.min),
                            "max": float(info.max),
                            "start": lo,
                            "end": hi,
                        },
                    }
                ],
                "rdefs": {"model": "color"},
            }
        },
    )
    return ChannelResult(name, f"{name}", shapes, len(placements), (lo, hi))


def is_stitched(zarr_path: str | os.PathLike[str]) -> bool:
    return (Path(zarr_path) / DONE_MARKER).is_file()


def stitch_folder(
    folder: str | os.PathLike[str],
    zarr_path: str | os.PathLike[str],
    *,
    channels: Iterable[str] | None = None,
    options: StitchOptions | None = None,
) -> StitchResult:
    """Stitch ``folder`` into ``zarr_path`` (a directory ending in ``.zarr``).

    Idempotent: a finished output (``.done`` marker) is returned as is; a half-written temp
    output from a crash is discarded and rebuilt. Source tiles are only read.
    Raises :class:`AcquisitionError` (incl. :class:`StitchInputError`) for bad input.
    """
    import zarr

    opts = options or StitchOptions()
    zarr_path = Path(zarr_path)
    if is_stitched(zarr_path):
        return StitchResult(**_read_result(zarr_path))
    tiles = scan_tiles(folder)
    if not tiles:
        raise AcquisitionError("no tiles in 0/")
    chans = list(channels) if channels else None
    first = next(iter(sorted(tiles.values())))
    (h, w), src_dtype = tile_header(first)
    if opts.rot90 % 2:
        h, w = w, h
    plan = plan_mosaic(
        folder,
        tile_shape=(h, w),
        channels=chans,
        z_level=opts.z_level,
        adjustment=opts.pixel_size_adjustment,
    )
    dtype = output_dtype(src_dtype, opts)
    tmp = zarr_path.with_name(f".{zarr_path.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    if zarr_path.exists():  # our own unfinished output (no .done): rebuild
        shutil.rmtree(zarr_path)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    result = StitchResult(
        zarr_path=str(zarr_path),
        shape=plan.shape,
        pixel_size_um=plan.pixel_size_um,
        origin_mm=plan.origin_mm,
        dtype=dtype.name,
    )
    try:
        with ThreadPoolExecutor(max(1, opts.workers)) as pool:
            for ch, placements in plan.channels.items():
                result.channels.append(
                    _stitch_channel(root, ch, placements, plan, dtype, opts, pool)
                )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own half-written output
        raise
    meta = result.as_dict()
    meta["zarr_path"] = str(zarr_path)
    root.attrs["reef"] = {
        "source_folder": Path(folder).name,
        "channels": [c.name for c in result.channels],
        "pixel_size_um": plan.pixel_size_um,
        "origin_mm": list(plan.origin_mm),
        "options": opts.as_dict(),
    }
    (tmp / "stitch_result.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, zarr_path)
    (zarr_path / DONE_MARKER).write_text("ok\n")
    return result


def _read_result(zarr_path: Path) -> dict[str, Any]:
    data = json.loads((zarr_path / "stitch_result.json").read_text())
    data["shape"] = tuple(data["shape"])
    data["origin_mm"] = tuple(data["origin_mm"])
    data["channels"] = [
        ChannelResult(
            name=c["name"],
            path=c["path"],
            levels=[tuple(s) for s in c["levels"]],
            tiles=c["tiles"],
            window=tuple(c["window"]),
        )
        for c in data["channels"]
    ]
    return data


def validate_zarr(zarr_path: str | os.PathLike[str], expected: StitchResult) -> dict[str, Any]:
    """Read the output back with ome-zarr's reader and check levels, shapes and metadata."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    problems: list[str] = []
    report: dict[str, Any] = {}
    for ch in expected.channels:
        loc = parse_url(str(Path(zarr_path) / ch.path))
        if loc is None:
            problems.append(f"{ch.name}: not readable as OME-Zarr")
            continue
        nodes = list(Reader(loc)())
        if not nodes or not any(isinstance(s, Multiscales) for s in nodes[0].specs):
            problems.append(f"{ch.name}: no multiscales image")
            continue
        node = nodes[0]
        shapes = [tuple(int(x) for x in d.shape) for d in node.data]
        if shapes != [tuple(s) for s in ch.levels]:
            problems.append(f"{ch.name}: level shapes {shapes} != {ch.levels}")
        ms = node.metadata
        axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])]
        if axes != ["y", "x"]:
            problems.append(f"{ch.name}: axes {axes}")
        units = {a.get("unit") for a in ms.get("axes", []) if isinstance(a, dict)}
        if units != {"micrometer"}:
            problems.append(f"{ch.name}: axis units {units}")
        scale0 = ms["coordinateTransformations"][0][0]["scale"]
        if not np.allclose(scale0, [expected.pixel_size_um] * 2):
            problems.append(f"{ch.name}: scale {scale0} != {expected.pixel_size_um}")
        if ms.get("channel_names") != [ch.name]:
            problems.append(f"{ch.name}: channel names {ms.get('channel_names')}")
        report[ch.name] = {"levels": shapes, "ome_version": loc.version}
    if problems:
        raise ValueError("OME-Zarr validation failed: " + "; ".join(problems))
    return report
