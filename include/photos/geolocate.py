"""Match a photo's GPS point to a storage location (point in polygon).

Polygons are rings of ``[lon, lat]`` pairs (GeoJSON order). The areas of a site are small (tens
of metres), so planar ray casting on degrees is exact enough. When areas overlap, the smallest
containing area wins (a shelf inside a room inside a warehouse).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LocationArea:
    id: int
    code: str
    name: str
    polygon: tuple[tuple[float, float], ...]  # (lon, lat)
    config: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    warehouse_name: str | None = None


def validate_polygon(poly: Sequence[Sequence[float]]) -> tuple[tuple[float, float], ...]:
    """A clean ring (at least 3 distinct points, valid lon/lat); raises ``ValueError``."""
    pts = [(float(p[0]), float(p[1])) for p in poly]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    if len(set(pts)) < 3:
        raise ValueError("a polygon needs at least 3 distinct [lon, lat] points")
    for lon, lat in pts:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"point ({lon}, {lat}) is not a valid [lon, lat]")
    return tuple(pts)


def point_in_polygon(lon: float, lat: float, poly: Sequence[tuple[float, float]]) -> bool:
    """Ray casting; points on an edge count as inside."""
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        # on the segment?
        cross = (x2 - x1) * (lat - y1) - (y2 - y1) * (lon - x1)
        if (
            abs(cross) < 1e-15
            and min(x1, x2) <= lon <= max(x1, x2)
            and min(y1, y2) <= lat <= max(y1, y2)
        ):
            return True
        if (y1 > lat) != (y2 > lat):
            x_at = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_at:
                inside = not inside
    return inside


def polygon_area(poly: Sequence[tuple[float, float]]) -> float:
    s = 0.0
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def locate(gps: dict[str, float] | None, areas: Iterable[LocationArea]) -> LocationArea | None:
    """The smallest area containing the GPS point, or ``None``."""
    if not gps or gps.get("lat") is None or gps.get("lon") is None:
        return None
    lat, lon = float(gps["lat"]), float(gps["lon"])
    hits = [a for a in areas if point_in_polygon(lon, lat, a.polygon)]
    if not hits:
        return None
    return min(hits, key=lambda a: (polygon_area(a.polygon), a.id))
