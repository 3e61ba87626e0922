"""GPS point → storage location."""

from __future__ import annotations

import pytest

from include.photos.geolocate import LocationArea, locate, point_in_polygon, validate_polygon
from include.photos.samples import SITE_LAT, SITE_LON, square


def test_point_in_square_and_outside() -> None:
    poly = validate_polygon(square(SITE_LAT, SITE_LON))
    assert point_in_polygon(SITE_LON, SITE_LAT, poly)
    assert not point_in_polygon(SITE_LON + 0.01, SITE_LAT, poly)
    # on the edge counts as inside
    assert point_in_polygon(poly[0][0], SITE_LAT, poly)


def test_concave_polygon() -> None:
    # an L shape: the notch is outside
    poly = validate_polygon([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2], [0, 0]])
    assert point_in_polygon(0.5, 1.5, poly)
    assert not point_in_polygon(1.5, 1.5, poly)


def test_smallest_containing_area_wins_and_missing_gps() -> None:
    big = LocationArea(1, "WH", "warehouse", validate_polygon(square(SITE_LAT, SITE_LON, 0.01)))
    small = LocationArea(2, "R1", "rack", validate_polygon(square(SITE_LAT, SITE_LON)))
    hit = locate({"lat": SITE_LAT, "lon": SITE_LON}, [big, small])
    assert hit is not None and hit.code == "R1"
    assert locate({"lat": SITE_LAT + 0.005, "lon": SITE_LON}, [big, small]).code == "WH"
    assert locate(None, [big, small]) is None
    assert locate({"lat": 10.0, "lon": 10.0}, [big, small]) is None


@pytest.mark.parametrize(
    "poly", [[[0, 0], [1, 1]], [[0, 0], [0, 0], [0, 0]], [[0, 0], [1, 0], [1, 200]]]
)
def test_invalid_polygons(poly: list[list[float]]) -> None:
    with pytest.raises(ValueError):
        validate_polygon(poly)
