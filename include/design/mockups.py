"""Product mockups: composite a design onto a template's mockup photos (Pillow).

A template is a folder ``<templates_dir>/<template>/`` with ``template.json``::

    {
      "name": "poster",
      "title": "Art print",            # used in the Etsy listing title
      "listing": {"price": 18.0, "taxonomy_id": 2078, "who_made": "i_did",
                  "when_made": "made_to_order", "quantity": 25, "tags": ["art print"]},
      "shops": {"my-shop": {"title": "{colours} Botanical {product}", "price": 22.0,
                            "tags": ["botanical print", "{colour} wall art"]}},
      "output": {"max_side": 1600, "quality": 85},
      "mockups": [
        {"name": "wall", "background": "wall.jpg",
         "quad": [[x, y], [x, y], [x, y], [x, y]],   # top-left, top-right, bottom-right, bottom-left
         "fit": "contain", "padding": 0.04, "shade": 0.0}
      ]
    }

The design is fitted into the quad's aspect ratio (``contain`` keeps all of it on a transparent
margin, ``cover`` fills and crops), warped with a perspective transform onto the background, and
alpha-composited (optionally darkened by ``shade`` to sit in the scene). Output: JPEG.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

Point = tuple[float, float]


class TemplateError(ValueError):
    """The template folder or its config is missing or invalid."""


@dataclass(frozen=True)
class MockupSpec:
    name: str
    background: Path
    quad: tuple[Point, Point, Point, Point]
    fit: str = "contain"
    padding: float = 0.04
    shade: float = 0.0


@dataclass(frozen=True)
class Template:
    name: str
    folder: Path
    title: str
    mockups: tuple[MockupSpec, ...]
    listing: dict[str, Any] = field(default_factory=dict)
    shops: dict[str, Any] = field(default_factory=dict)  # per-shop listing overrides
    max_side: int = 1600
    quality: int = 85


def load_template(templates_dir: str | os.PathLike[str], name: str) -> Template:
    from include.common.files import is_within

    folder = Path(templates_dir) / name
    if not is_within(folder, templates_dir):
        raise TemplateError(f"bad template name {name!r}")
    cfg_path = folder / "template.json"
    if not cfg_path.is_file():
        raise TemplateError(f"template {name!r} not found: {cfg_path} is missing")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise TemplateError(f"template {name!r}: invalid JSON: {exc}") from None
    specs = []
    for m in cfg.get("mockups", []):
        try:
            quad = tuple((float(x), float(y)) for x, y in m["quad"])
            if len(quad) != 4:
                raise ValueError("quad needs 4 points")
            bg = folder / m["background"]
            if not is_within(bg, folder) or not bg.is_file():
                raise ValueError(f"background {m['background']!r} not found in the template folder")
            fit = m.get("fit", "contain")
            if fit not in ("contain", "cover"):
                raise ValueError(f"fit must be contain or cover, not {fit!r}")
            specs.append(
                MockupSpec(
                    name=str(m["name"]),
                    background=bg,
                    quad=quad,  # type: ignore[arg-type]
                    fit=fit,
                    padding=float(m.get("padding", 0.04)),
                    shade=float(m.get("shade", 0.0)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateError(
                f"template {name!r}, mockup {m.get('name', '?')!r}: {exc}"
            ) from None
    if not specs:
        raise TemplateError(f"template {name!r} defines no mockups")
    out = cfg.get("output", {})
    return Template(
        name=str(cfg.get("name", name)),
        folder=folder,
        title=str(cfg.get("title", name)),
        mockups=tuple(specs),
        listing=dict(cfg.get("listing", {})),
        shops=dict(cfg.get("shops", {})),
        max_side=int(out.get("max_side", 1600)),
        quality=int(out.get("quality", 85)),
    )


def perspective_coeffs(dst: tuple[Point, ...], src: tuple[Point, ...]) -> tuple[float, ...]:
    """Coefficients for ``Image.transform(..., PERSPECTIVE)``: map output (dst) -> input (src)."""
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.extend([u, v])
    sol = np.linalg.solve(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64))
    return tuple(float(c) for c in sol)


def _quad_size(quad: tuple[Point, ...]) -> tuple[int, int]:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad
    w = max(np.hypot(x1 - x0, y1 - y0), np.hypot(x2 - x3, y2 - y3))
    h = max(np.hypot(x3 - x0, y3 - y0), np.hypot(x2 - x1, y2 - y1))
    return max(1, round(w)), max(1, round(h))


def _fit(design: Image.Image, size: tuple[int, int], fit: str, padding: float) -> Image.Image:
    w, h = size
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    if fit == "cover":
        scale = max(w / design.width, h / design.height)
    else:
        scale = min(w / design.width, h / design.height) * (1 - 2 * padding)
    nw, nh = max(1, round(design.width * scale)), max(1, round(design.height * scale))
    resized = design.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=2.0)
    canvas.alpha_composite(resized, ((w - nw) // 2, (h - nh) // 2)) if fit == "contain" else None
    if fit == "cover":
        left, top = (nw - w) // 2, (nh - h) // 2
        canvas = resized.crop((left, top, left + w, top + h))
    return canvas


def render(
    design_path: str | os.PathLike[str], spec: MockupSpec, max_side: int, quality: int
) -> bytes:
    """The mockup JPEG bytes for one design and one mockup spec."""
    with Image.open(spec.background) as bg_file:
        bg = bg_file.convert("RGB")
    with Image.open(design_path) as d:
        design = d.convert("RGBA")
    flat_size = _quad_size(spec.quad)
    flat = _fit(design, flat_size, spec.fit, spec.padding)
    if spec.shade:
        rgb = ImageEnhance.Brightness(flat.convert("RGB")).enhance(1 - spec.shade)
        rgb.putalpha(flat.getchannel("A"))
        flat = rgb
    fw, fh = flat.size
    coeffs = perspective_coeffs(spec.quad, ((0, 0), (fw, 0), (fw, fh), (0, fh)))
    warped = flat.transform(bg.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    out = bg.convert("RGBA")
    out.alpha_composite(warped)
    out = out.convert("RGB")
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=quality, progressive=True)
    return buf.getvalue()


# ---------------------------------------------------------------- the demo template


def write_default_template(templates_dir: Path, name: str = "poster") -> Path:
    """A demo template: a framed print on a wall (frontal) and a print lying on a table (with
    perspective), backgrounds drawn from scikit-image's photos. Idempotent."""
    from skimage import data

    folder = Path(templates_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    wall = (
        Image.fromarray(data.brick()).convert("RGB").resize((1000, 800), Image.Resampling.BICUBIC)
    )
    wall = ImageEnhance.Brightness(wall).enhance(1.4).filter(ImageFilter.GaussianBlur(1.5))
    draw = ImageDraw.Draw(wall)
    draw.rectangle((300, 140, 700, 640), fill=(40, 30, 25))  # frame
    draw.rectangle((318, 158, 682, 622), fill=(250, 250, 248))  # mat
    wall.save(folder / "wall.jpg", quality=90)
    table = (
        Image.fromarray(data.coffee()).convert("RGB").resize((1000, 667), Image.Resampling.BICUBIC)
    )
    quad_table = [[430, 120], [820, 170], [760, 560], [330, 470]]
    ImageDraw.Draw(table).polygon([tuple(p) for p in quad_table], fill=(245, 245, 240))
    table.save(folder / "table.jpg", quality=90)
    cfg = {
        "name": name,
        "title": "Art print",
        "listing": {
            "price": 18.0,
            "quantity": 25,
            "taxonomy_id": 2078,
            "who_made": "i_did",
            "when_made": "made_to_order",
            "title": "{colours} Abstract {product}, {orientation} Wall Art",
            "description": (
                "{title}.\n\nA {colours} abstract design, printed to order on {paper}. "
                "Frame not included. Colours may vary slightly between screens."
            ),
            "tags": ["art print", "poster", "wall art", "{colour} wall art", "abstract art",
                     "{orientation} print"],
        },
        "output": {"max_side": 1200, "quality": 85},
        "mockups": [
            {"name": "wall", "background": "wall.jpg", "quad": [[330, 170], [670, 170], [670, 610], [330, 610]], "fit": "contain", "padding": 0.03},
            {"name": "table", "background": "table.jpg", "quad": quad_table, "fit": "contain", "padding": 0.05, "shade": 0.05},
        ],
    }  # fmt: skip
    (folder / "template.json").write_text(json.dumps(cfg, indent=2))
    return folder
