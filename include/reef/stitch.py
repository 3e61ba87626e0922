"""Stitch microscope tiles into one OME-NGFF 0.5 (zarr v3) multiscale image per timepoint, with a
channel axis (``c``, ``y``, ``x``), without ever holding the canvas in memory.

How: the canvas is produced in horizontal bands one shard high, and each band only as the shard
columns that tiles touch (a dict of blocks): memory follows the data, not the canvas extent (two
regions 80 mm apart cost what two regions side by side cost). Every tile overlapping a band is
decoded once (kept until its last band is done) and pasted into the blocks it covers; each block
is written as a whole shard (no read-modify-write). Each pyramid level is derived block by block
from the level above (2x2 mean) and buffered until its shard row is complete. Empty shards are
never written. Shard encoding (blosc/zstd per inner chunk) runs in a thread pool.

Output (``<name>.zarr``): the root group is the image: ``ome.multiscales`` with axes
``c`` (channel), ``y``, ``x`` (micrometer), per level a ``scale`` and a ``translation`` (the
physical position of that level's pixel (0, 0) centre: level ``l`` is shifted by
``(2**l - 1) / 2`` level-0 pixels from level 0), ``ome.omero`` channel labels, colours and
windows; arrays ``0``, ``1``, ... of shape ``(C, H, W)``, chunks ``(1, chunk, chunk)``, shards
``(1, shard, shard)``. Root attrs ``reef`` hold the source folder, options and tile positions.
The result is built under a temp name and renamed; ``.done`` marks a finished stitch, and a finished
stitch made with other options (or from other source files) is rebuilt.
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
    register: bool = True  # refine stage positions from the tiles' overlaps
    max_shift_px: int = 40  # registration: largest correction searched
    min_correlation: float = 0.3  # registration: weaker overlaps keep the stage position

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

    def output_key(self) -> dict[str, Any]:
        """The options that change the output's pixels or layout (not ``workers``)."""
        d = json.loads(json.dumps(self.as_dict()))
        d.pop("workers", None)
        return d


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
    index: int
    tiles: int
    window: tuple[float, float]
    colour: str = "FFFFFF"


@dataclass
class StitchResult:
    zarr_path: str
    shape: tuple[int, int]
    pixel_size_um: float
    origin_mm: tuple[float, float]
    dtype: str
    levels: list[tuple[int, int]] = field(default_factory=list)
    channels: list[ChannelResult] = field(default_factory=list)
    source: str = ""  # fingerprint of the source files (names, sizes, times)
    registration: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


MAX_UINT_64 = 2**64 - 1


class ShardWriter:
    """Writes whole shards of a zarr v3 sharded ``(C, H, W)`` array straight to its directory store.

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
        self.shard = tuple(arr.shards)[1:]
        self.chunk = tuple(sc.chunk_shape)[1:]
        self.dtype = arr.dtype
        self.dir = array_dir
        self.pool = pool
        self.arr = arr

    def _encode_shard(self, block: np.ndarray, c: int, i: int, j: int) -> None:
        import google_crc32c

        sy, sx = self.shard
        cy, cx = self.chunk
        ny, nx = sy // cy, sx // cx
        index = np.full((1, ny, nx, 2), MAX_UINT_64, dtype="<u8")
        parts: list[bytes] = []
        offset = 0
        h, w = block.shape
        for a in range(ny):
            for b in range(nx):
                y0, x0 = a * cy, b * cx
                if y0 >= h or x0 >= w:
                    continue
                ch = block[y0 : y0 + cy, x0 : x0 + cx]
                if not ch.any():
                    continue
                if ch.shape != (cy, cx):
                    full = np.zeros((cy, cx), dtype=block.dtype)
                    full[: ch.shape[0], : ch.shape[1]] = ch
                    ch = full
                data = self.codec.encode(np.ascontiguousarray(ch))
                index[0, a, b] = (offset, len(data))
                parts.append(bytes(data))
                offset += len(data)
        path = self.dir / self.arr.metadata.encode_chunk_key((c, i, j))
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

    def submit(self, block: np.ndarray, c: int, i: int, j: int) -> Future[None]:
        """Encode and write shard ``(c, i, j)`` (``block`` is at most one shard, top-left aligned)."""
        sy, sx = self.shard
        h = min(sy, self.shape[1] - i * sy)
        w = min(sx, self.shape[2] - j * sx)
        return self.pool.submit(self._encode_shard, block[:h, :w], c, i, j)


class _SparseLevel:
    """One pyramid level's current shard row as blocks (shard columns that hold data only)."""

    def __init__(self, writer: ShardWriter, level: int):
        self.writer = writer
        self.level = level
        self.blocks: dict[int, np.ndarray] = {}

    def put(self, piece: np.ndarray, band: int, col: int) -> None:
        """``piece`` is level-0 block ``(band, col)`` downsampled ``level`` times."""
        sy, sx = self.writer.shard
        f = 2**self.level
        y0 = (band % f) * (sy // f)
        x0 = (col % f) * (sx // f)
        blk = self.blocks.get(col // f)
        if blk is None:
            blk = self.blocks[col // f] = np.zeros((sy, sx), dtype=self.writer.dtype)
        blk[y0 : y0 + piece.shape[0], x0 : x0 + piece.shape[1]] = piece

    def flush(self, c: int, band: int) -> list[Future[None]]:
        row = band // 2**self.level
        futs = [self.writer.submit(b, c, row, j) for j, b in sorted(self.blocks.items())]
        self.blocks = {}
        return futs


def _ome_metadata(
    plan: MosaicPlan, levels: int, channels: list[ChannelResult], dtype: np.dtype
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(axes, datasets, omero) of the image. Translation: the centre of each level's pixel (0, 0)
    in micrometer (stage position of the canvas origin plus half a level-l pixel minus half a
    level-0 pixel)."""
    px = plan.pixel_size_um
    ox_um, oy_um = plan.origin_mm[0] * 1000.0, plan.origin_mm[1] * 1000.0
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    datasets = []
    for lvl in range(levels):
        f = 2**lvl
        shift = px * (f - 1) / 2.0
        datasets.append(
            {
                "path": str(lvl),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, px * f, px * f]},
                    {"type": "translation", "translation": [0.0, oy_um + shift, ox_um + shift]},
                ],
            }
        )
    info = np.iinfo(dtype)
    omero = {
        "version": "0.5",
        "channels": [
            {
                "label": ch.name,
                "color": ch.colour,
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
                "window": {
                    "min": float(info.min),
                    "max": float(info.max),
                    "start": ch.window[0],
                    "end": ch.window[1],
                },
            }
            for ch in channels
        ],
        "rdefs": {"model": "color", "defaultT": 0, "defaultZ": 0},
    }
    return axes, datasets, omero


def _create_arrays(
    root: Any, n_channels: int, shapes: list[tuple[int, int]], dtype: np.dtype, opts: StitchOptions
) -> list[Any]:
    import zarr
    from zarr.codecs import BloscCodec, BloscShuffle

    shuffle = BloscShuffle.bitshuffle if dtype.itemsize == 1 else BloscShuffle.shuffle
    arrays = []
    for lvl, (h, w) in enumerate(shapes):
        arrays.append(
            zarr.create_array(
                root.store,
                name=str(lvl),
                shape=(n_channels, h, w),
                dtype=dtype,
                chunks=(1, opts.chunk, opts.chunk),
                shards=(1, opts.shard, opts.shard),
                compressors=[
                    BloscCodec(cname=opts.codec, clevel=opts.compression_level, shuffle=shuffle)
                ],
                fill_value=0,
                dimension_names=("c", "y", "x"),
                # shard files c.<channel>.<row>.<col> side by side: one folder per level
                chunk_key_encoding={"name": "default", "separator": "."},
                config={"write_empty_chunks": False},
            )
        )
    return arrays


def _stitch_channel(
    ci: int,
    placements: list[Placement],
    plan: MosaicPlan,
    dtype: np.dtype,
    opts: StitchOptions,
    writers: list[ShardWriter],
    pool: ThreadPoolExecutor,
) -> None:
    th, tw = plan.tile_shape
    H, W = plan.shape
    sy = sx = opts.shard
    order = sorted(placements, key=lambda p: (p.y, p.x, p.region, p.fov))
    cache: dict[int, Future[np.ndarray]] = {}
    levels = [_SparseLevel(w, lvl) for lvl, w in enumerate(writers)]

    def load(p: Placement) -> np.ndarray:
        img = transform_tile(read_tile(p.path), opts)
        if img.shape != (th, tw):
            raise StitchInputError(
                f"tile {Path(p.path).name} is {img.shape[1]}x{img.shape[0]}, expected {tw}x{th}"
            )
        return img.astype(dtype, copy=False)

    n_bands = math.ceil(H / sy)
    pending: list[Future[None]] = []
    nxt = 0  # index in `order` of the first tile not yet scheduled
    try:
        for bi in range(n_bands):
            y0, y1 = bi * sy, min(H, (bi + 1) * sy)
            # decode tiles of this band and prefetch those of the next one
            while nxt < len(order) and order[nxt].y < y1 + sy:
                cache[nxt] = pool.submit(load, order[nxt])
                nxt += 1
            blocks: dict[int, np.ndarray] = {}
            for k in list(cache):
                p = order[k]
                if p.y >= y1:
                    continue
                img = cache[k].result()
                ty0, ty1 = max(p.y, y0), min(p.y + th, y1)
                for j in range(p.x // sx, (p.x + tw - 1) // sx + 1):
                    bx0 = j * sx
                    blk = blocks.get(j)
                    if blk is None:
                        blk = blocks[j] = np.zeros((y1 - y0, min(sx, W - bx0)), dtype=dtype)
                    tx0, tx1 = max(p.x, bx0), min(p.x + tw, bx0 + blk.shape[1])
                    blk[ty0 - y0 : ty1 - y0, tx0 - bx0 : tx1 - bx0] = img[
                        ty0 - p.y : ty1 - p.y, tx0 - p.x : tx1 - p.x
                    ]
                if p.y + th <= y1:
                    del cache[k]
            for f in pending:  # one band in flight: memory stays bounded
                f.result()
            pending = [writers[0].submit(b, ci, bi, j) for j, b in sorted(blocks.items())]
            last = bi == n_bands - 1
            for j, b in blocks.items():
                cur = b
                for lv in levels[1:]:
                    cur = downsample2(cur, opts.downsample)
                    lv.put(cur, bi, j)
            for lv in levels[1:]:
                if last or (bi + 1) % 2**lv.level == 0:
                    pending += lv.flush(ci, bi)
        for f in pending:
            f.result()
    finally:
        for f in cache.values():
            f.cancel()


def is_stitched(zarr_path: str | os.PathLike[str]) -> bool:
    return (Path(zarr_path) / DONE_MARKER).is_file()


def source_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A hash of the folder's tile list, coordinates and parameters (names, sizes, mtimes)."""
    import hashlib

    h = hashlib.sha256()
    folder = Path(folder)
    for p in sorted(
        [*folder.glob("*.json"), *(folder / "0").iterdir()]
        if (folder / "0").is_dir()
        else folder.glob("*.json")
    ):
        try:
            st = p.stat()
        except OSError:
            continue
        h.update(f"{p.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _finished_matches(zarr_path: Path, opts: StitchOptions, source: str) -> bool:
    try:
        meta = json.loads((zarr_path / "stitch_result.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("options") == opts.output_key() and meta.get("source") == source


def stitch_folder(
    folder: str | os.PathLike[str],
    zarr_path: str | os.PathLike[str],
    *,
    channels: Iterable[str] | None = None,
    options: StitchOptions | None = None,
    force: bool = False,
) -> StitchResult:
    """Stitch ``folder`` into ``zarr_path`` (a directory ending in ``.zarr``).

    Idempotent: a finished output (``.done`` marker) made with the same output options from the
    same source files (and channels) is returned as is; otherwise (or with ``force``) it is
    rebuilt. A half-written temp output from a crash is discarded. Source tiles are only read.
    Raises :class:`AcquisitionError` (incl. :class:`StitchInputError`) for bad input.
    """
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    opts = options or StitchOptions()
    zarr_path = Path(zarr_path)
    chans = list(channels) if channels else None
    source = source_fingerprint(folder) + (f":{','.join(chans)}" if chans else "")
    if not force and is_stitched(zarr_path) and _finished_matches(zarr_path, opts, source):
        return _read_result(zarr_path)
    tiles = scan_tiles(folder)
    if not tiles:
        raise AcquisitionError("no tiles in 0/")
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
    registration: dict[str, Any] = {}
    if opts.register:
        from include.reef.register import register_plan

        plan, registration = register_plan(plan, opts)
    dtype = output_dtype(src_dtype, opts)
    shapes = level_shapes(plan.shape, opts)
    if opts.shard % opts.chunk or opts.shard % (2 ** (len(shapes) - 1)):
        raise ValueError("shard must be a multiple of chunk and of 2**(levels-1)")
    tmp = zarr_path.with_name(f".{zarr_path.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    if zarr_path.exists():  # our own unfinished or outdated output: rebuild
        shutil.rmtree(zarr_path)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    names = list(plan.channels)
    arrays = _create_arrays(root, len(names), shapes, dtype, opts)
    result = StitchResult(
        zarr_path=str(zarr_path),
        shape=plan.shape,
        pixel_size_um=plan.pixel_size_um,
        origin_mm=plan.origin_mm,
        dtype=dtype.name,
        levels=shapes,
        source=source,
        registration=registration,
    )
    try:
        with ThreadPoolExecutor(max(1, opts.workers)) as pool:
            writers = [ShardWriter(a, tmp / a.path, pool) for a in arrays]
            for ci, ch in enumerate(names):
                placements = plan.channels[ch]
                _stitch_channel(ci, placements, plan, dtype, opts, writers, pool)
                smallest = np.asarray(arrays[-1][ci])
                nz = smallest[smallest > 0]
                lo, hi = (float(nz.min()), float(nz.max())) if nz.size else (0.0, 0.0)
                result.channels.append(
                    ChannelResult(ch, ci, len(placements), (lo, hi), channel_colour(ch))
                )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own half-written output
        raise
    axes, datasets, omero = _ome_metadata(plan, len(shapes), result.channels, dtype)
    write_multiscales_metadata(
        root,
        datasets,
        fmt=FormatV05(),
        axes=axes,
        name=Path(folder).name,
        metadata={"omero": omero},
    )
    root.attrs["reef"] = {
        "source_folder": Path(folder).name,
        "channels": names,
        "pixel_size_um": plan.pixel_size_um,
        "origin_mm": list(plan.origin_mm),
        "options": opts.output_key(),
        "registration": {k: v for k, v in registration.items() if k != "positions"},
    }
    meta = result.as_dict()
    meta["options"] = opts.output_key()
    (tmp / "stitch_result.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, zarr_path)
    (zarr_path / DONE_MARKER).write_text("ok\n")
    return result


def _read_result(zarr_path: Path) -> StitchResult:
    data = json.loads((zarr_path / "stitch_result.json").read_text())
    data.pop("options", None)
    data["shape"] = tuple(data["shape"])
    data["origin_mm"] = tuple(data["origin_mm"])
    data["levels"] = [tuple(s) for s in data["levels"]]
    data["channels"] = [
        ChannelResult(
            name=c["name"],
            index=c["index"],
            tiles=c["tiles"],
            window=tuple(c["window"]),
            colour=c.get("colour", "FFFFFF"),
        )
        for c in data["channels"]
    ]
    data["zarr_path"] = str(zarr_path)
    return StitchResult(**data)


def validate_zarr(zarr_path: str | os.PathLike[str], expected: StitchResult) -> dict[str, Any]:
    """Validate the image with ome-zarr-models (the NGFF 0.5 schema) and read it back with
    ome-zarr's reader: one multiscale image, axes c/y/x, level shapes, scale, channel labels."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader
    from ome_zarr_models.v05.image import Image as OmeImage

    problems: list[str] = []
    try:
        model = OmeImage.from_zarr(zarr.open_group(str(zarr_path), mode="r"))
        n_ms = len(model.ome_attributes.multiscales)
        if n_ms != 1:
            problems.append(f"{n_ms} multiscales, expected 1")
    except Exception as exc:  # noqa: BLE001 - any schema error is a validation problem
        problems.append(f"not a valid OME-Zarr 0.5 image: {exc}")
    loc = parse_url(str(zarr_path))
    if loc is None:
        raise ValueError("OME-Zarr validation failed: not readable as OME-Zarr")
    nodes = list(Reader(loc)())
    if not nodes or not any(isinstance(s, Multiscales) for s in nodes[0].specs):
        raise ValueError("OME-Zarr validation failed: no multiscales image at the root")
    node = nodes[0]
    n_c = len(expected.channels)
    shapes = [tuple(int(x) for x in d.shape) for d in node.data]
    want = [(n_c, *s) for s in expected.levels]
    if shapes != want:
        problems.append(f"level shapes {shapes} != {want}")
    ms = node.metadata
    axes = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])]
    if axes != ["c", "y", "x"]:
        problems.append(f"axes {axes}")
    scale0 = ms["coordinateTransformations"][0][0]["scale"]
    if not np.allclose(scale0, [1.0] + [expected.pixel_size_um] * 2):
        problems.append(f"scale {scale0} != {expected.pixel_size_um}")
    names = [c.name for c in expected.channels]
    if ms.get("channel_names") != names:
        problems.append(f"channel names {ms.get('channel_names')} != {names}")
    if problems:
        raise ValueError("OME-Zarr validation failed: " + "; ".join(problems))
    return {"levels": [list(s) for s in shapes], "ome_version": loc.version, "channels": names}
