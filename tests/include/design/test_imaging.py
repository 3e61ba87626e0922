from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from include.design import imaging


@pytest.mark.parametrize(
    "code", ["not_image", "corrupt", "too_small", "animated", "cmyk", "16bit", "too_large"]
)
def test_bad_input_is_rejected_with_its_reason(bad_files: dict[str, str], code: str) -> None:
    with pytest.raises(imaging.ImageRejected) as err:
        imaging.decode_for_hash(bad_files[code])
    assert err.value.code == code
    assert err.value.reason  # a sentence for the report
    with pytest.raises(imaging.ImageRejected) as err2:
        imaging.prepare_output(bad_files[code], Path(bad_files[code]).with_suffix(".out"))
    assert err2.value.code == code


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    Image.new("RGB", (200, 100)).save(p)
    imaging.decode_for_hash(p)
    with pytest.raises(imaging.ImageRejected, match="pixel limit"):
        imaging.decode_for_hash(p, max_pixels=10_000)


def test_decode_for_hash_composites_transparency_on_white(tmp_path: Path) -> None:
    im = Image.new("RGBA", (100, 100), (0, 0, 0, 0))  # transparent black, as many tools store it
    im.paste((200, 0, 0, 255), (40, 40, 60, 60))
    p = tmp_path / "t.png"
    im.save(p)
    canon = imaging.decode_for_hash(p)
    assert canon.size == (imaging.CANON, imaging.CANON) and canon.mode == "RGB"
    assert canon.getpixel((2, 2)) == (255, 255, 255)
    seed = imaging.decode_for_hash(p, composite=False)
    assert seed.getpixel((2, 2)) == (0, 0, 0)  # the seed's behaviour, kept for its configuration


def test_palette_transparency_is_composited(tmp_path: Path) -> None:
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 32, 64))
    p = tmp_path / "p.png"
    im.quantize(colors=4).save(p)  # palette + tRNS
    assert Image.open(p).mode == "P"
    canon = imaging.decode_for_hash(p)
    assert canon.getpixel((120, 60)) == (255, 255, 255)


def test_prepare_output_downscales_only_and_picks_format(tmp_path: Path) -> None:
    big = Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    )
    src = tmp_path / "big.png"
    big.save(src)
    out = imaging.prepare_output(src, tmp_path / "out" / "big", max_side=800)
    assert (out.width, out.height) == (800, 600) and out.format == "JPEG"
    with Image.open(out.path) as im:
        assert im.format == "JPEG" and im.info.get("progressive") == 1
    small = tmp_path / "small.png"
    Image.new("RGBA", (50, 40), (10, 20, 30, 100)).save(small)
    out2 = imaging.prepare_output(small, tmp_path / "out" / "small", max_side=800)
    assert (out2.width, out2.height) == (50, 40) and out2.format == "PNG"  # never upscaled
    with Image.open(out2.path) as im:
        assert im.mode == "RGBA"


def test_prepare_output_opaque_alpha_becomes_jpeg(tmp_path: Path) -> None:
    p = tmp_path / "opaque.png"
    Image.new("RGBA", (40, 40), (1, 2, 3, 255)).save(p)
    assert imaging.prepare_output(p, tmp_path / "o").format == "JPEG"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (200, 100), (255, 255, 255))
    im.paste((0, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes())
    out = imaging.prepare_output(p, tmp_path / "rot_out")
    assert (out.width, out.height) == (100, 200)


def test_pixel_limit_between_ours_and_pillows(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("1", (11000, 10000)).save(p)  # 110 MP: over our default 100 MP, under Pillow's stop
    with pytest.raises(imaging.ImageRejected, match="110000000 px > 100000000") as err:
        imaging.open_image(p)
    assert err.value.code == "too_large"
    with imaging.open_image(p, max_pixels=150_000_000) as im:  # a raised limit is honoured
        assert im.size == (11000, 10000)
