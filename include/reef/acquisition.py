"""The microscope's acquisition layout: ``acquisition parameters.json``, ``0/coordinates.csv`` and
tile names ``0/<Region>_<FOV>_<Z>_<Channel>.bmp|tiff``.

Pixel size follows the original stitcher:
``sensor_pixel_size_um / (magnification / (objective tube_lens_f_mm / tube_lens_mm))`` times a
calibration factor (the original used 0.936).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

PARAMETERS_FILE = "acquisition parameters.json"
IMAGE_DIR = "0"
COORDINATES_FILE = "coordinates.csv"
TILE_EXTENSIONS = (".bmp", ".tif", ".tiff")
ORIGINAL_ADJUSTMENT = 0.936

# A channel may itself contain underscores (``Fluorescence_488_nm_Ex``).
_TILE = re.compile(
    r"^(?P<region>[^_]+)_(?P<fov>\d+)_(?P<z>\d+)_(?P<channel>.+)\.(?P<ext>bmp|tiff?)$", re.I
)


class AcquisitionError(ValueError):
    """The folder's acquisition data is missing or malformed (a per-folder input error)."""


@dataclass(frozen=True)
class AcquisitionParameters:
    sensor_pixel_size_um: float
    magnification: float
    objective_tube_lens_mm: float
    tube_lens_mm: float

    def pixel_size_um(self, adjustment: float = 1.0) -> float:
        return (
            self.sensor_pixel_size_um
            / (self.magnification / (self.objective_tube_lens_mm / self.tube_lens_mm))
            * adjustment
        )

    @classmethod
    def from_dict(cls, data: object) -> AcquisitionParameters:
        if not isinstance(data, dict):
            raise AcquisitionError("acquisition parameters: top level is not a JSON object")
        objective = data.get("objective")
        if not isinstance(objective, dict):
            raise AcquisitionError("acquisition parameters: 'objective' object missing")
        values = {
            "sensor_pixel_size_um": data.get("sensor_pixel_size_um"),
            "magnification": objective.get("magnification"),
            "objective_tube_lens_mm": objective.get("tube_lens_f_mm"),
            "tube_lens_mm": data.get("tube_lens_mm"),
        }
        out: dict[str, float] = {}
        for key, raw in values.items():
            try:
                v = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise AcquisitionError(
                    f"acquisition parameters: {key} missing or not a number ({raw!r})"
                ) from None
            if not math.isfinite(v) or v <= 0:
                raise AcquisitionError(f"acquisition parameters: {key} must be > 0, got {v}")
            out[key] = v
        return cls(**out)


def read_parameters(folder: str | os.PathLike[str]) -> AcquisitionParameters:
    path = Path(folder) / PARAMETERS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AcquisitionError(f"missing {PARAMETERS_FILE}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AcquisitionError(f"{PARAMETERS_FILE} is not valid JSON: {exc}") from None
    return AcquisitionParameters.from_dict(data)


@dataclass(frozen=True)
class Coordinate:
    region: str
    fov: int
    z_level: int
    x_mm: float
    y_mm: float


def read_coordinates(folder: str | os.PathLike[str]) -> list[Coordinate]:
    """Rows of ``0/coordinates.csv``; a malformed row is an error naming its line."""
    path = Path(folder) / IMAGE_DIR / COORDINATES_FILE
    if not path.is_file():
        raise AcquisitionError(f"missing {IMAGE_DIR}/{COORDINATES_FILE}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip() for c in (reader.fieldnames or [])}
        need = {"region", "fov", "x (mm)", "y (mm)"}
        if not need <= cols:
            raise AcquisitionError(
                f"{COORDINATES_FILE}: missing columns {sorted(need - cols)} (has {sorted(cols)})"
            )
        rows: list[Coordinate] = []
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            try:
                c = Coordinate(
                    region=row["region"],
                    fov=int(row["fov"]),
                    z_level=int(row.get("z_level") or 0),
                    x_mm=float(row["x (mm)"]),
                    y_mm=float(row["y (mm)"]),
                )
            except (TypeError, ValueError) as exc:
                raise AcquisitionError(f"{COORDINATES_FILE} line {line}: {exc}") from None
            if not (math.isfinite(c.x_mm) and math.isfinite(c.y_mm)) or not c.region:
                raise AcquisitionError(f"{COORDINATES_FILE} line {line}: bad region or position")
            rows.append(c)
    if not rows:
        raise AcquisitionError(f"{COORDINATES_FILE} has no rows")
    return rows


@dataclass(frozen=True)
class TileName:
    region: str
    fov: int
    z_level: int
    channel: str


def parse_tile_name(name: str) -> TileName | None:
    m = _TILE.match(name)
    if not m:
        return None
    return TileName(m["region"], int(m["fov"]), int(m["z"]), m["channel"])


def scan_tiles(folder: str | os.PathLike[str]) -> dict[TileName, Path]:
    """Tile files in ``<folder>/0`` keyed by their parsed name (other files are ignored)."""
    image_dir = Path(folder) / IMAGE_DIR
    if not image_dir.is_dir():
        raise AcquisitionError(f"missing image folder {IMAGE_DIR}/")
    tiles: dict[TileName, Path] = {}
    with os.scandir(image_dir) as it:
        for e in it:
            t = parse_tile_name(e.name)
            if t is not None and e.is_file():
                tiles[t] = Path(e.path)
    return tiles


@dataclass(frozen=True)
class Placement:
    """One tile of one channel at pixel offset (y, x) on the canvas."""

    path: str
    y: int
    x: int
    region: str
    fov: int


@dataclass
class MosaicPlan:
    pixel_size_um: float
    origin_mm: tuple[float, float]  # stage (x, y) of canvas pixel (0, 0)
    tile_shape: tuple[int, int]
    shape: tuple[int, int]  # canvas (height, width)
    channels: dict[str, list[Placement]]


def plan_mosaic(
    folder: str | os.PathLike[str],
    *,
    tile_shape: tuple[int, int],
    channels: list[str] | None = None,
    z_level: int | None = None,
    adjustment: float = 1.0,
    origin_mm: tuple[float, float] | None = None,
) -> MosaicPlan:
    """Where every tile of every selected channel goes.

    ``tile_shape`` is the (height, width) of the tiles after the stitcher's flips/rotation.
    The canvas spans the tiles' bounding box unless ``origin_mm`` pins pixel (0, 0) to a stage
    position (e.g. the stage's negative limits, as the original did).
    Raises :class:`AcquisitionError` for missing parameters/coordinates, tiles listed but absent,
    and a selected channel without tiles.
    """
    params = read_parameters(folder)
    coords = read_coordinates(folder)
    tiles = scan_tiles(folder)
    px = params.pixel_size_um(adjustment)
    if z_level is None:
        z_level = min(c.z_level for c in coords)
    coords = [c for c in coords if c.z_level == z_level]
    if not coords:
        raise AcquisitionError(f"{COORDINATES_FILE} has no rows for z_level {z_level}")
    present = sorted({t.channel for t in tiles})
    if channels:
        unknown = [c for c in channels if c not in present]
        if unknown:
            raise AcquisitionError(f"channel(s) {unknown} have no tiles (found {present})")
        selected = list(channels)
    else:
        selected = present
    if not selected:
        raise AcquisitionError(f"no tiles in {IMAGE_DIR}/")
    ox, oy = (
        origin_mm
        if origin_mm is not None
        else (min(c.x_mm for c in coords), min(c.y_mm for c in coords))
    )
    out: dict[str, list[Placement]] = {ch: [] for ch in selected}
    missing: list[str] = []
    max_y = max_x = 0
    for c in sorted(coords, key=lambda c: (c.region, c.fov)):
        x = round((c.x_mm - ox) * 1000.0 / px)
        y = round((c.y_mm - oy) * 1000.0 / px)
        if x < 0 or y < 0:
            raise AcquisitionError(f"tile {c.region}_{c.fov} lies before the canvas origin")
        for ch in selected:
            p = tiles.get(TileName(c.region, c.fov, z_level, ch))
            if p is None:
                missing.append(f"{c.region}_{c.fov}_{z_level}_{ch}")
                continue
            out[ch].append(Placement(str(p), y, x, c.region, c.fov))
        max_y, max_x = max(max_y, y), max(max_x, x)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise AcquisitionError(
            f"{len(missing)} tile(s) listed in {COORDINATES_FILE} are absent: {shown}"
        )
    for ch, pl in out.items():
        if not pl:
            raise AcquisitionError(f"channel {ch} has no tiles")
    shape = (max_y + tile_shape[0], max_x + tile_shape[1])
    return MosaicPlan(px, (ox, oy), tile_shape, shape, out)


def _bmp_problem(path: Path) -> str | None:
    """Why a BMP is unreadable or truncated (from its header and the file size), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(54)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if len(head) < 26 or head[:2] != b"BM":
        return "not a BMP (bad header)"
    declared = int.from_bytes(head[2:6], "little")
    offset = int.from_bytes(head[10:14], "little")
    if int.from_bytes(head[14:18], "little") >= 40 and len(head) >= 30:
        w = int.from_bytes(head[18:22], "little", signed=True)
        h = abs(int.from_bytes(head[22:26], "little", signed=True))
        bpp = int.from_bytes(head[28:30], "little")
        need = offset + ((w * bpp + 31) // 32) * 4 * h
        if w <= 0 or h == 0 or bpp == 0:
            return "bad BMP dimensions"
        if size < need:
            return f"truncated ({size} of {need} bytes)"
    if declared and size < declared:
        return f"truncated ({size} of {declared} bytes)"
    return None


def check_folder(folder: str | os.PathLike[str]) -> list[str]:
    """Problems with a timelapse folder's tiles, as human-readable warnings (empty: all there):
    parameters or coordinates missing, tiles listed in the coordinates but absent (for any channel
    the folder has), BMP tiles that are not BMPs or are truncated, other tiles whose header does
    not decode. Reads headers only."""
    folder = Path(folder)
    out: list[str] = []
    try:
        read_parameters(folder)
    except AcquisitionError as exc:
        out.append(str(exc))
    try:
        tiles = scan_tiles(folder)
    except (OSError, AcquisitionError) as exc:
        return [*out, f"cannot list {IMAGE_DIR}/: {exc}"]
    try:
        coords = read_coordinates(folder)
    except AcquisitionError as exc:
        out.append(str(exc))
        coords = []
    channels = sorted({t.channel for t in tiles})
    missing = [
        f"{c.region}_{c.fov}_{c.z_level}_{ch}"
        for c in coords
        for ch in channels
        if TileName(c.region, c.fov, c.z_level, ch) not in tiles
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        out.append(f"{len(missing)} tile(s) listed in {COORDINATES_FILE} are missing: {shown}")
    bad: list[str] = []
    for _t, p in sorted(tiles.items(), key=lambda kv: kv[1].name):
        why = _bmp_problem(p) if p.suffix.lower() == ".bmp" else _tiff_problem(p)
        if why:
            bad.append(f"{p.name}: {why}")
    if bad:
        shown = "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        out.append(f"{len(bad)} corrupt tile(s): {shown}")
    return out


def _tiff_problem(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - header decode only
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return f"cannot decode ({exc})"
    return None
