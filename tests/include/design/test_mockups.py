from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from include.design import mockups


def _template(tmp_path: Path, quad: list[list[int]], **extra: object) -> Path:
    folder = tmp_path / "tpl" / "t1"
    folder.mkdir(parents=True)
    Image.new("RGB", (400, 300), (10, 10, 10)).save(folder / "bg.png")
    cfg = {
        "name": "t1",
        "title": "Tee",
        "mockups": [{"name": "m", "background": "bg.png", "quad": quad, **extra}],
    }
    (folder / "template.json").write_text(json.dumps(cfg))
    return tmp_path / "tpl"


def test_perspective_coeffs_map_corners() -> None:
    dst = ((10.0, 20.0), (200.0, 30.0), (180.0, 150.0), (5.0, 140.0))
    src = ((0.0, 0.0), (100.0, 0.0), (100.0, 80.0), (0.0, 80.0))
    a, b, c, d, e, f, g, h = mockups.perspective_coeffs(dst, src)
    for (x, y), (u, v) in zip(dst, src, strict=True):
        w = g * x + h * y + 1
        assert (a * x + b * y + c) / w == pytest.approx(u, abs=1e-6)
        assert (d * x + e * y + f) / w == pytest.approx(v, abs=1e-6)


def test_render_places_the_design_inside_the_quad(tmp_path: Path) -> None:
    templates = _template(tmp_path, [[100, 50], [300, 50], [300, 250], [100, 250]], padding=0)
    tpl = mockups.load_template(templates, "t1")
    design = tmp_path / "d.png"
    Image.new("RGBA", (50, 50), (250, 0, 0, 255)).save(design)
    out = Image.open(io.BytesIO(mockups.render(design, tpl.mockups[0], 1000, 90)))
    assert out.format == "JPEG" and out.size == (400, 300)
    arr = np.asarray(out).astype(int)
    assert arr[150, 200, 0] > 200 and arr[150, 200, 1] < 60  # red inside the quad
    assert arr[20, 20].max() < 40 and arr[280, 380].max() < 40  # background outside


def test_transparent_design_keeps_the_background(tmp_path: Path) -> None:
    templates = _template(tmp_path, [[100, 50], [300, 50], [300, 250], [100, 250]], padding=0)
    tpl = mockups.load_template(templates, "t1")
    design = tmp_path / "t.png"
    im = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (20, 20, 30, 30))
    im.save(design)
    arr = np.asarray(
        Image.open(io.BytesIO(mockups.render(design, tpl.mockups[0], 1000, 90)))
    ).astype(int)
    assert arr[60, 110].max() < 40  # transparent corner of the design: background shows
    assert arr[150, 200, 2] > 180  # the opaque centre


@pytest.mark.parametrize(
    ("quad", "extra", "message"),
    [
        ([[0, 0], [1, 0], [1, 1]], {}, "4 points"),
        ([[0, 0], [1, 0], [1, 1], [0, 1]], {"fit": "stretch"}, "contain or cover"),
    ],
)
def test_bad_template_config(
    tmp_path: Path, quad: list[list[int]], extra: dict[str, object], message: str
) -> None:
    templates = _template(tmp_path, quad, **extra)
    with pytest.raises(mockups.TemplateError, match=message):
        mockups.load_template(templates, "t1")


def test_missing_template_and_escaping_background(tmp_path: Path) -> None:
    with pytest.raises(mockups.TemplateError, match="not found"):
        mockups.load_template(tmp_path, "nope")
    with pytest.raises(mockups.TemplateError, match="bad template name"):
        mockups.load_template(tmp_path, "../x")
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "template.json").write_text(
        json.dumps(
            {
                "mockups": [
                    {
                        "name": "m",
                        "background": "../../etc/passwd",
                        "quad": [[0, 0], [1, 0], [1, 1], [0, 1]],
                    }
                ]
            }
        )
    )
    with pytest.raises(mockups.TemplateError, match="background"):
        mockups.load_template(tmp_path, "evil")
    (folder / "template.json").write_text("{not json")
    with pytest.raises(mockups.TemplateError, match="invalid JSON"):
        mockups.load_template(tmp_path, "evil")


def test_shipped_template_loads() -> None:
    import include.design

    tpl = mockups.load_template(Path(include.design.__file__).parent / "templates", "poster")
    assert [m.name for m in tpl.mockups] == ["wall", "table", "shelf"]
    assert tpl.listing["price"] == 18.0 and all(m.shadow for m in tpl.mockups)


def _gradient_template(tmp_path: Path, **extra: object) -> Path:
    """A scene whose blank sheet is lit from the left (bright) to the right (half as bright)."""
    folder = tmp_path / "tpl" / "g"
    folder.mkdir(parents=True)
    x = np.linspace(240, 120, 400)
    bg = np.repeat(np.repeat(x[None, :, None], 300, axis=0), 3, axis=2)
    bg[:40] = 60  # a dark band above the sheet
    Image.fromarray(bg.astype(np.uint8), "RGB").save(folder / "bg.png")
    m = {"name": "m", "background": "bg.png", "quad": [[100, 80], [300, 80], [300, 250], [100, 250]],
         "padding": 0, **extra}  # fmt: skip
    (folder / "template.json").write_text(json.dumps({"name": "g", "mockups": [m]}))
    return tmp_path / "tpl"


def test_the_scene_shades_the_design_and_the_print_casts_a_soft_shadow(tmp_path: Path) -> None:
    templates = _gradient_template(tmp_path, shadow={"offset": [8, 8], "blur": 4, "opacity": 0.5})
    spec = mockups.load_template(templates, "g").mockups[0]
    design = tmp_path / "red.png"
    Image.new("RGBA", (60, 50), (230, 40, 40, 255)).save(design)
    arr = np.asarray(Image.open(io.BytesIO(mockups.render(design, spec, 1000, 95)))).astype(int)
    left, right = arr[160, 110, 0], arr[160, 290, 0]
    assert left > 200 and right < 0.75 * left  # the scene's light falls off on the design too
    bg_right_of_print = np.asarray(Image.open(spec.background)).astype(int)[200, 304, 0]
    assert arr[200, 304, 0] < bg_right_of_print - 15  # the shadow, just beside the print
    assert abs(arr[200, 330, 0] - bg_right_of_print) < 30  # and soft: gone further out
    flat = mockups.load_template(_gradient_template(tmp_path / "f", multiply=0), "g").mockups[0]
    arr2 = np.asarray(Image.open(io.BytesIO(mockups.render(design, flat, 1000, 95)))).astype(int)
    assert abs(arr2[160, 110, 0] - arr2[160, 290, 0]) < 10  # multiply 0: pasted flat
