"""Upload validation by content: magic bytes, Pillow verify + reduced decode, pixel and size limits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from include.photos.samples import bad_files, jpeg_bytes, make_exif, tray_image
from include.webapp.validation import (
    MB,
    BatchError,
    Code,
    Limits,
    Rejection,
    ValidPhoto,
    check_batch,
    display_name,
    rejection_status,
    sniff,
    validate_batch,
    validate_photo,
)


@pytest.fixture(scope="module")
def good_jpeg() -> bytes:
    return jpeg_bytes(tray_image(3, 320, 240, (2, 3), pots=0)[0], make_exif((-34.6, -58.38)))


def _png(mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def test_good_jpeg_and_png_are_accepted(good_jpeg: bytes) -> None:
    res = validate_photo(good_jpeg, "tray.jpg", 0)
    assert isinstance(res, ValidPhoto)
    assert (res.format, res.content_type, res.extension) == ("JPEG", "image/jpeg", "jpg")
    assert (res.width, res.height) == (320, 240)
    assert len(res.sha256) == 64 and res.size == len(good_jpeg)
    png = validate_photo(_png(), "x.png", 1)
    assert isinstance(png, ValidPhoto) and png.format == "PNG" and png.content_type == "image/png"


def test_type_comes_from_content_not_name(good_jpeg: bytes) -> None:
    # a JPEG named .png is a JPEG; a text file named .jpg is refused as unsupported type (415)
    res = validate_photo(good_jpeg, "actually_a_jpeg.png")
    assert isinstance(res, ValidPhoto) and res.format == "JPEG"
    bad = validate_photo(b"GIF89a" + b"\0" * 100, "anim.jpg")
    assert isinstance(bad, Rejection) and bad.code == Code.UNSUPPORTED_TYPE
    assert bad.http_status == 415 and "first bytes" in bad.reason
    webp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(webp, "WEBP")
    assert validate_photo(webp.getvalue(), "a.webp").code == Code.UNSUPPORTED_TYPE


@pytest.mark.parametrize(
    ("name", "code", "status"),
    [
        ("notes_not_an_image.jpg", Code.UNSUPPORTED_TYPE, 415),
        ("truncated.jpg", Code.CORRUPT, 422),
        ("bomb.png", Code.TOO_MANY_PIXELS, 413),
        ("cmyk.jpg", Code.UNSUPPORTED_MODE, 422),
        ("gray16.png", Code.UNSUPPORTED_MODE, 422),
    ],
)
def test_bad_files_get_a_clear_reason(name: str, code: str, status: int) -> None:
    data, _ = bad_files()[name]
    res = validate_photo(data, name, 4)
    assert isinstance(res, Rejection), res
    assert (res.code, res.http_status, res.index, res.filename) == (code, status, 4, name)
    assert res.reason


def test_truncated_jpeg_is_caught_without_decoding(good_jpeg: bytes) -> None:
    res = validate_photo(good_jpeg[: len(good_jpeg) * 2 // 3], "cut.jpg")
    assert isinstance(res, Rejection) and res.code == Code.CORRUPT and "truncated" in res.reason


def test_png_with_broken_crc_fails_verify() -> None:
    data = bytearray(_png())
    data[40] ^= 0xFF  # inside IDAT
    res = validate_photo(bytes(data), "crc.png")
    assert isinstance(res, Rejection) and res.code == Code.CORRUPT


def test_empty_and_oversize_files(good_jpeg: bytes) -> None:
    assert validate_photo(b"", "e.jpg").code == Code.EMPTY
    small = Limits(max_file_bytes=1000)
    res = validate_photo(good_jpeg, "big.jpg", 0, small)
    assert isinstance(res, Rejection) and res.code == Code.TOO_LARGE and res.http_status == 413
    assert "limit per photo" in res.reason


def test_pixel_limit_below_pillow_bomb_threshold() -> None:
    img = Image.fromarray(np.zeros((200, 300, 3), np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    res = validate_photo(buf.getvalue(), "wide.jpg", 0, Limits(max_pixels=50_000))
    assert isinstance(res, Rejection) and res.code == Code.TOO_MANY_PIXELS
    assert "0.1 MP exceeds" in res.reason


def test_batch_rules() -> None:
    with pytest.raises(BatchError) as e:
        check_batch([])
    assert e.value.code == Code.NO_FILES and e.value.http_status == 422
    with pytest.raises(BatchError) as e:
        check_batch([10] * 101)
    assert e.value.code == Code.TOO_MANY_FILES and e.value.http_status == 422
    with pytest.raises(BatchError) as e:
        check_batch([20 * MB] * 26)
    assert e.value.code == Code.TOTAL_TOO_LARGE and e.value.http_status == 413
    check_batch([20 * MB] * 25)  # exactly 500 MB is allowed


def test_validate_batch_keeps_the_good_ones(good_jpeg: bytes) -> None:
    files = [("a.jpg", good_jpeg), ("b.txt", b"hello"), ("c.png", _png())]
    ok, bad = validate_batch(files)
    assert [p.filename for p in ok] == ["a.jpg", "c.png"]
    assert [(r.index, r.code) for r in bad] == [(1, Code.UNSUPPORTED_TYPE)]


def test_rejection_status_and_names() -> None:
    r = lambda code: Rejection(0, "x", code, "why")  # noqa: E731
    assert rejection_status([r(Code.UNSUPPORTED_TYPE), r(Code.UNSUPPORTED_TYPE)]) == 415
    assert rejection_status([r(Code.TOO_LARGE)]) == 413
    assert rejection_status([r(Code.TOO_LARGE), r(Code.CORRUPT)]) == 422
    assert display_name("../../etc/passwd", 0) == "passwd"
    assert display_name("C:\\Users\\x\\IMG\x00_1.jpg", 0) == "IMG_1.jpg"
    assert display_name("", 2) == "file-3"
    assert sniff(b"\xff\xd8\xff\xe0") == "JPEG" and sniff(b"BM") is None


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGING_WEBAPP_MAX_FILE_MB", "1.5")
    monkeypatch.setenv("IMAGING_WEBAPP_MAX_FILES", "3")
    lim = Limits.from_env()
    assert lim.max_file_bytes == int(1.5 * MB) and lim.max_files == 3
    assert lim.max_total_bytes == 500 * MB


def test_jpeg_structure_walk(good_jpeg: bytes) -> None:
    from include.webapp.validation import jpeg_structure_error

    assert jpeg_structure_error(good_jpeg) is None
    assert jpeg_structure_error(good_jpeg + b"camera trailer \xff\x00") is None
    assert "end-of-image" in jpeg_structure_error(good_jpeg[:-2])
    assert "headers" in jpeg_structure_error(good_jpeg[:40])
    res = validate_photo(good_jpeg[:-2], "no_eoi.jpg")  # only the last 2 bytes are missing
    assert isinstance(res, Rejection) and res.code == Code.CORRUPT and "truncated" in res.reason


def _png_with_bad_zlib() -> bytes:
    """A PNG whose IDAT holds garbage with a *valid* CRC: its structure is sound, its pixels are
    not."""
    import struct
    import zlib

    data = bytearray(_png(size=(64, 48)))
    pos = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[pos : pos + 4])
    body = bytes((i * 37 + 11) % 256 for i in range(length))
    data[pos + 8 : pos + 8 + length] = body
    data[pos + 8 + length : pos + 12 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return bytes(data)


def test_decode_check_mode_also_decodes(good_jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGING_WEBAPP_DECODE_CHECK", "1")
    lim = Limits.from_env()
    assert lim.decode_check
    assert isinstance(validate_photo(good_jpeg, "a.jpg", 0, lim), ValidPhoto)
    assert validate_photo(good_jpeg[:-2], "t.jpg", 0, lim).code == Code.CORRUPT
    bad = _png_with_bad_zlib()
    assert isinstance(validate_photo(bad, "z.png"), ValidPhoto)  # structure (CRCs) is fine
    res = validate_photo(bad, "z.png", 0, lim)
    assert isinstance(res, Rejection) and res.code == Code.CORRUPT, res


def test_validate_all_with_readers_keeps_order_and_drops_bytes(good_jpeg: bytes) -> None:
    from include.webapp.validation import validate_all

    reads: list[int] = []

    def reader(i: int, data: bytes):  # noqa: ANN202
        def read() -> bytes:
            reads.append(i)
            return data

        return read

    items = [
        (0, "a.jpg", reader(0, good_jpeg)),
        (1, "b.txt", reader(1, b"nope")),
        (2, "c.png", _png()),
    ]
    res = validate_all(items, workers=2, keep_data=False)
    assert [type(r).__name__ for r in res] == ["ValidPhoto", "Rejection", "ValidPhoto"]
    assert res[0].data == b"" and res[0].size == len(good_jpeg) and res[0].width == 320
    assert res[2].data == b"" and res[2].size == len(_png())
    assert sorted(reads) == [0, 1]
    kept = validate_all(items, workers=1)
    assert kept[0].data == good_jpeg and kept[0].sha256 == res[0].sha256


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1"])
def test_what_the_upload_accepts_the_pipeline_can_process(mode: str) -> None:
    from include.photos.exif import decode_rgb, inspect_image

    data = _png(mode)
    res = validate_photo(data, f"{mode}.png")
    assert isinstance(res, ValidPhoto), res
    assert inspect_image(data).mode == res.mode == mode
    assert decode_rgb(data)[0].mode == "RGB"


@pytest.mark.parametrize("name", ["bomb.png", "cmyk.jpg", "gray16.png"])
def test_upload_refuses_with_the_pipelines_reason(name: str) -> None:
    """One header check (include.photos.exif.open_image) for both: same verdict, same reason."""
    from include.photos.exif import BadImageError, inspect_image

    data, reason = bad_files()[name]
    res = validate_photo(data, name)
    assert isinstance(res, Rejection) and reason.lower() in res.reason.lower(), res
    with pytest.raises(BadImageError) as err:
        inspect_image(data)
    assert str(err.value) == res.reason
