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
    shade: float = 0.0  # extra uniform darkening (0..1)
    multiply: float = 1.0  # how much of the scene's light and texture is multiplied in (0..1)
    shadow: tuple[float, float, float, float] | None = None  # dx, dy, blur, opacity


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
                    multiply=float(m.get("multiply", 1.0)),
                    shadow=_shadow(m.get("shadow")),
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


def _shadow(cfg: Any) -> tuple[float, float, float, float] | None:
    if not cfg:
        return None
    if not isinstance(cfg, dict):
        raise ValueError("shadow must be an object {offset: [dx, dy], blur, opacity}")
    dx, dy = (float(v) for v in cfg.get("offset", (6, 8)))
    blur, opacity = float(cfg.get("blur", 10)), float(cfg.get("opacity", 0.35))
    if not (0 <= opacity <= 1 and blur >= 0):
        raise ValueError("shadow opacity must be within 0..1 and blur >= 0")
    return dx, dy, blur, opacity


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


def _quad_mask(
    size: tuple[int, int], quad: tuple[Point, ...], dx: float = 0, dy: float = 0
) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon([(x + dx, y + dy) for x, y in quad], fill=255)
    return mask


def scene_shading(bg: Image.Image, quad: tuple[Point, ...], strength: float) -> np.ndarray:
    """Per-pixel factor (H x W) that carries the scene's light and texture onto the design: the
    background's luminance where the print lies, relative to its bright level there (the 95th
    percentile: the paper's white), so a lighting gradient, paper grain or a fold darkens the
    design exactly as it darkens the blank print in the photo. ``strength`` 0 turns it off."""
    lum = np.asarray(bg.convert("L"), dtype=np.float32) / 255.0
    inside = np.asarray(_quad_mask(bg.size, quad)) > 0
    ref = float(np.percentile(lum[inside], 95)) if inside.any() else 1.0
    rel = np.clip(lum / max(ref, 1.0 / 255), 0.0, 1.1)
    return 1.0 - strength * (1.0 - rel)


def render(
    design_path: str | os.PathLike[str], spec: MockupSpec, max_side: int, quality: int
) -> bytes:
    """The mockup JPEG bytes for one design and one scene: the design fitted to the print's quad,
    warped with the perspective of the quad, multiplied by the scene's shading (light, texture),
    over a soft shadow of the print on the scene."""
    with Image.open(spec.background) as bg_file:
        bg = bg_file.convert("RGB")
    with Image.open(design_path) as d:
        design = d.convert("RGBA")
    flat = _fit(design, _quad_size(spec.quad), spec.fit, spec.padding)
    fw, fh = flat.size
    coeffs = perspective_coeffs(spec.quad, ((0, 0), (fw, 0), (fw, fh), (0, fh)))
    warped = flat.transform(bg.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    w_arr = np.asarray(warped, dtype=np.float32)
    rgb, alpha = w_arr[..., :3], w_arr[..., 3:] / 255.0
    factor = scene_shading(bg, spec.quad, spec.multiply) * (1.0 - spec.shade)
    rgb = rgb * factor[..., None]
    base = np.asarray(bg, dtype=np.float32)
    if spec.shadow:
        dx, dy, blur, opacity = spec.shadow
        shadow = _quad_mask(bg.size, spec.quad, dx, dy).filter(ImageFilter.GaussianBlur(blur))
        sh = np.asarray(shadow, dtype=np.float32) / 255.0 * opacity
        sh *= 1.0 - np.asarray(_quad_mask(bg.size, spec.quad), dtype=np.float32) / 255.0
        base = base * (1.0 - sh[..., None])
    out_arr = base * (1.0 - alpha) + rgb * alpha
    out = Image.fromarray(np.clip(out_arr + 0.5, 0, 255).astype(np.uint8), "RGB")
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=quality, progressive=True)
    return buf.getvalue()


# ---------------------------------------------------------------- the demo template


def _noise(size: tuple[int, int], rng: np.random.Generator, blur: float, amp: float) -> np.ndarray:
    n = Image.fromarray((rng.random((size[1], size[0])) * 255).astype(np.uint8), "L")
    arr = np.asarray(n.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255.0
    return (arr - arr.mean()) * amp


def _light(size: tuple[int, int], centre: Point, falloff: float) -> np.ndarray:
    """A soft light pool: 1 at ``centre`` (fractions of the size), darker away from it."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot(xx / w - centre[0], yy / h - centre[1])
    return 1.0 - falloff * np.clip(d, 0, 1.5) ** 1.5


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _paper(bg: np.ndarray, quad: list[list[int]], rng: np.random.Generator, tone: float) -> None:
    """Paint a blank sheet (paper grain, the scene's light) into ``bg`` within ``quad``."""
    h, w = bg.shape[:2]
    mask = np.asarray(_quad_mask((w, h), tuple(map(tuple, quad)))) > 0  # type: ignore[arg-type]
    grain = 1.0 + _noise((w, h), rng, 0.7, 0.10) + _noise((w, h), rng, 6, 0.08)
    light = _light((w, h), (0.3, 0.2), 0.35)
    sheet = tone * grain * light
    bg[mask] = np.stack([sheet * 1.0, sheet * 0.995, sheet * 0.98], axis=-1)[mask]


def write_default_template(templates_dir: Path, name: str = "poster") -> Path:
    """The shipped demo template: three scenes drawn procedurally (deterministic) — a print in a
    frame on a brick wall, a print lying on a wooden table (perspective, soft shadow) and a framed
    print leaning on a shelf (perspective, soft shadow). Each blank sheet carries the scene's
    light and paper grain, which the renderer multiplies into the design. Idempotent."""
    from skimage import data

    folder = Path(templates_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(17)
    size = (1000, 750)
    w, h = size

    # 1. wall: brick, a dark frame with a baked shadow, a mat, the print inside the mat
    wall_img = Image.fromarray(data.brick()).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    wall_img = ImageEnhance.Brightness(wall_img).enhance(1.35).filter(ImageFilter.GaussianBlur(1.2))
    wall = np.asarray(wall_img, dtype=np.float32) * _light(size, (0.45, 0.15), 0.45)[..., None]
    frame = [[300, 110], [700, 110], [700, 640], [300, 640]]
    shadow = _quad_mask(size, tuple(map(tuple, frame)), 12, 16).filter(ImageFilter.GaussianBlur(14))  # type: ignore[arg-type]
    wall *= 1.0 - 0.45 * (np.asarray(shadow, dtype=np.float32) / 255.0)[..., None]
    wall_im = _to_image(wall)
    ImageDraw.Draw(wall_im).rectangle((300, 110, 700, 640), fill=(38, 30, 26))
    wall = np.asarray(wall_im, dtype=np.float32).copy()
    _paper(wall, [[320, 130], [680, 130], [680, 620], [320, 620]], rng, 246)
    _to_image(wall).save(folder / "wall.jpg", quality=90)

    # 2. table: wood grain in perspective, a sheet lying on it
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = 0.35 + 0.65 * yy / h  # rows further away are compressed
    grain = np.sin((xx - w / 2) / depth * 0.045 + 3.0 * _noise(size, rng, 18, 6.0)) * 0.5 + 0.5
    wood = 0.75 + 0.25 * grain + _noise(size, rng, 1.0, 0.08)
    wood *= _light(size, (0.35, 0.0), 0.5)
    table = np.stack([150 * wood, 100 * wood, 62 * wood], axis=-1)
    quad_table = [[380, 150], [700, 170], [740, 610], [300, 585]]
    _paper(table, quad_table, rng, 244)
    _to_image(table).save(folder / "table.jpg", quality=90)

    # 3. shelf: a plaster wall, a shelf, a framed print leaning back against the wall
    plaster = 214 * (1.0 + _noise(size, rng, 2.0, 0.05) + _noise(size, rng, 30, 0.06))
    plaster *= _light(size, (0.7, 0.1), 0.5)
    shelf = np.stack([plaster * 0.98, plaster * 0.96, plaster * 0.9], axis=-1)
    shelf_im = _to_image(shelf)
    d = ImageDraw.Draw(shelf_im)
    frame3 = [(345, 135), (655, 150), (675, 640), (325, 640)]
    sh3 = _quad_mask(size, tuple(frame3), 22, 6).filter(ImageFilter.GaussianBlur(18))  # type: ignore[arg-type]
    arr3 = np.asarray(shelf_im, dtype=np.float32) * (
        1.0 - 0.4 * (np.asarray(sh3, dtype=np.float32) / 255.0)[..., None]
    )
    shelf_im = _to_image(arr3)
    d = ImageDraw.Draw(shelf_im)
    d.rectangle((120, 640, 880, 668), fill=(112, 76, 48))  # shelf board
    d.rectangle((120, 668, 880, 676), fill=(70, 48, 30))  # its shadowed edge
    d.polygon(frame3, fill=(232, 228, 220))  # a light wooden frame
    shelf = np.asarray(shelf_im, dtype=np.float32).copy()
    quad_shelf = [[365, 158], [636, 171], [652, 620], [348, 620]]
    _paper(shelf, quad_shelf, rng, 240)
    _to_image(shelf).save(folder / "shelf.jpg", quality=90)

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
        "shops": {},
        "output": {"max_side": 1200, "quality": 85},
        "mockups": [
            {"name": "wall", "background": "wall.jpg", "quad": [[334, 146], [666, 146], [666, 604], [334, 604]], "fit": "contain", "padding": 0.0, "shadow": {"offset": [2, 3], "blur": 3, "opacity": 0.25}},
            {"name": "table", "background": "table.jpg", "quad": quad_table, "fit": "contain", "padding": 0.06, "shadow": {"offset": [10, 14], "blur": 12, "opacity": 0.5}},
            {"name": "shelf", "background": "shelf.jpg", "quad": quad_shelf, "fit": "contain", "padding": 0.05, "shadow": {"offset": [3, 4], "blur": 4, "opacity": 0.25}},
        ],
    }  # fmt: skip
    (folder / "template.json").write_text(json.dumps(cfg, indent=2))
    return folder
