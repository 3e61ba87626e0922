"""Validation, EXIF and decoding of uploaded photos (real Pillow files, generated here)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from include.photos.exif import BadImageError, decode_rgb, inspect_image, thumbnail_bytes
from include.photos.samples import bad_files, jpeg_bytes, make_exif, tray_image


@pytest.fixture(scope="module")
def tray() -> Image.Image:
    return tray_image(7, 800, 600, (3, 4), pots=1)[0]


def test_reads_camera_time_and_gps(tray: Image.Image) -> None:
    data = jpeg_bytes(tray, make_exif((-34.603722, -58.381592), when="2026:11:20 10:30:15"))
    info = inspect_image(data)
    assert (info.format, info.content_type, info.extension) == ("JPEG", "image/jpeg", "jpg")
    assert (info.width, info.height) == (800, 600)
    assert info.exif["camera_make"] == "Demeter"
    assert info.exif["camera_model"] == "TrayCam 1"
    assert info.taken_at == "2026-11-20T10:30:15"
    assert info.gps is not None
    assert info.gps["lat"] == pytest.approx(-34.603722, abs=1e-6)
    assert info.gps["lon"] == pytest.approx(-58.381592, abs=1e-6)
    assert info.gps["altitude"] == pytest.approx(25.0)


def test_photo_without_exif_is_valid_without_gps(tray: Image.Image) -> None:
    info = inspect_image(jpeg_bytes(tray, None))
    assert info.exif == {}
    assert info.gps is None and info.taken_at is None


def test_null_island_gps_is_rejected_as_implausible(tray: Image.Image) -> None:
    info = inspect_image(jpeg_bytes(tray, make_exif((0.0, 0.0))))
    assert info.gps is None
    assert "implausible" in info.exif["gps_error"]


@pytest.mark.parametrize("name", sorted(bad_files()))
def test_bad_files_give_a_readable_reason(name: str) -> None:
    data, reason = bad_files()[name]
    with pytest.raises(BadImageError) as err:
        inspect_image(data)
        decode_rgb(data, 600)
    assert reason.lower() in str(err.value).lower()


def test_png_rgba_and_palette_decode_to_rgb() -> None:
    for mode in ("RGBA", "P", "L"):
        buf = io.BytesIO()
        Image.new(mode, (120, 80)).save(buf, "PNG")
        img, scale = decode_rgb(buf.getvalue(), 60)
        assert img.mode == "RGB" and scale == pytest.approx(2.0)


def test_jpeg_draft_decode_reduces_and_reports_scale(tray: Image.Image) -> None:
    big = tray.resize((3200, 2400))
    img, scale = decode_rgb(jpeg_bytes(big, None), 800)
    assert max(img.size) == 800 and scale == pytest.approx(4.0)


def test_thumbnail_fits_300(tray: Image.Image) -> None:
    t = Image.open(io.BytesIO(thumbnail_bytes(tray)))
    assert t.format == "JPEG" and t.size == (300, 300)
    w = Image.open(io.BytesIO(thumbnail_bytes(tray, fmt="WEBP")))
    assert w.format == "WEBP"
