"""Deterministic sample data for the design pipeline: real photos (shipped inside scikit-image)
and generated flat designs (most with transparency), their near-duplicate variants and hard
negatives, plus bad files. Used by the demo, the tests and the benchmarks.

Variants (a shop owner calls these duplicates): JPEG re-encode, 50 % resize, PNG<->JPEG, 2 %
border crop, brightness +10 %, small watermark.
Hard negatives (different products): the same design recoloured, the design mirrored, the other
half of a photo.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

PALETTE = [
    (230, 57, 70),
    (241, 250, 238),
    (168, 218, 220),
    (69, 123, 157),
    (29, 53, 87),
    (255, 183, 3),
    (251, 133, 0),
    (2, 48, 71),
    (142, 202, 230),
    (33, 158, 188),
    (106, 76, 147),
    (25, 130, 196),
    (138, 201, 38),
    (255, 202, 58),
    (255, 89, 94),
    (60, 60, 60),
]
WORDS = [
    "BLOOM", "WILD", "COFFEE", "MOON", "OCEAN", "HELLO", "TIGER", "RETRO", "SUNNY", "PIXEL",
    "CAMP", "FOREST", "DREAM", "MAMA", "SPACE", "TACO", "YOGA", "BEACH", "PUNK", "LOVE",
    "NORTH", "ROSE", "GAME", "CHILL",
]  # fmt: skip

# Photos from skimage.data: (name, loader name, crop) — crop "left"/"right" are halves of one
# photo; the right half is used only as a hard negative of the left half.
PHOTOS: list[tuple[str, str, str | None]] = [
    ("astronaut", "astronaut", None),
    ("chelsea", "chelsea", None),
    ("rocket", "rocket", None),
    ("ihc", "immunohistochemistry", None),
    ("camera", "camera", None),
    ("coins", "coins", None),
    ("moon", "moon", None),
    ("brick", "brick", None),
    ("grass", "grass", None),
    ("gravel", "gravel", None),
    ("coffee_left", "coffee", "left"),
    ("hubble_left", "hubble_deep_field", "left"),
    ("retina_left", "retina", "left"),
]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def load_photo(loader: str, crop: str | None = None) -> Image.Image:
    from skimage import data

    arr = getattr(data, loader)()
    if arr.dtype == bool:
        arr = (arr * 255).astype(np.uint8)
    im = Image.fromarray(arr).convert("RGB")
    w, h = im.size
    if crop == "left":
        im = im.crop((0, 0, w // 2, h))
    elif crop == "right":
        im = im.crop((w - w // 2, 0, w, h))
    return im


def make_design(
    index: int, size: tuple[int, int] = (800, 800), transparent: bool = True
) -> Image.Image:
    """A flat design: shapes and a word; transparent background (RGB 0 under alpha 0, as many
    tools store it) or a solid one."""
    rng = random.Random(1000 + index)
    w, h = size
    if transparent:
        im = Image.new("RGBA", size, (0, 0, 0, 0))
    else:
        im = Image.new("RGBA", size, (*rng.choice(PALETTE), 255))
    draw = ImageDraw.Draw(im)
    colours = rng.sample(PALETTE, 5)
    for k in range(rng.randint(3, 6)):
        c = (*colours[k % len(colours)], 255)
        x0, y0 = rng.randint(0, w * 2 // 3), rng.randint(0, h * 2 // 3)
        x1, y1 = x0 + rng.randint(w // 8, w // 2), y0 + rng.randint(h // 8, h // 2)
        kind = rng.choice(["ellipse", "rect", "poly", "line"])
        if kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=c)
        elif kind == "rect":
            draw.rounded_rectangle((x0, y0, x1, y1), radius=rng.randint(0, 40), fill=c)
        elif kind == "poly":
            pts = [(rng.randint(0, w), rng.randint(0, h)) for _ in range(rng.randint(3, 5))]
            draw.polygon(pts, fill=c)
        else:
            draw.line((x0, y0, x1, y1), fill=c, width=rng.randint(10, 40))
    word = WORDS[index % len(WORDS)]
    font = _font(rng.randint(h // 8, h // 5))
    tx, ty = rng.randint(w // 20, w // 3), rng.randint(h // 3, h * 2 // 3)
    draw.text((tx, ty), word, font=font, fill=(*colours[-1], 255))
    return im


# ---------------------------------------------------------------- variants


def flatten_white(im: Image.Image) -> Image.Image:
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def _save(im: Image.Image, path: Path, fmt: str, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "JPEG":
        im = flatten_white(im)
    im.save(path, fmt, **kw)
    return path


def _native_fmt(im: Image.Image) -> tuple[str, str]:
    return ("PNG", "png") if im.mode == "RGBA" else ("JPEG", "jpg")


def v_reencode(im: Image.Image) -> tuple[Image.Image, str, dict[str, Any]]:
    fmt, _ = _native_fmt(im)
    if fmt == "PNG":  # a re-saved PNG through a lossy pipeline: quantised palette
        return im.quantize(colors=64, method=Image.Quantize.FASTOCTREE), "PNG", {}
    return im, "JPEG", {"quality": 70}


def v_resize50(im: Image.Image) -> tuple[Image.Image, str, dict[str, Any]]:
    fmt, _ = _native_fmt(im)
    return im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR), fmt, {}


def v_swap_format(im: Image.Image) -> tuple[Image.Image, str, dict[str, Any]]:
    fmt, _ = _native_fmt(im)
    if fmt == "PNG":
        return flatten_white(im), "JPEG", {"quality": 90}
    return im, "PNG", {}


def v_crop2(im: Image.Image) -> tuple[Image.Image, str, dict[str, Any]]:
    fmt, _ = _native_fmt(im)
    dx, dy = round(im.width * 0.02), round(im.height * 0.02)
    return im.crop((dx, dy, im.width - dx, im.height - dy)), fmt, {"quality": 90}


def v_bright10(im: Image.Image) -> tuple[Image.Image, str, dict[str, Any]]:
    fmt, _ = _native_fmt(im)
    if im.mode == "RGBA":
        rgb = ImageEnhance.Brightness(im.convert("RGB")).enhance(1.1)
        rgb.putalpha(im.getchannel("A"))
        return rgb, fmt, {}
    return ImageEnhance.Brightness(im).enhance(1.1), fmt, {"quality": 90}


def v_watermark(im: Image.Image) -> tuple[Image.Image, str, dict[str, Any]]:
    fmt, _ = _native_fmt(im)
    out = im.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(10, out.height // 24)
    x, y = out.width - size * 6, out.height - size * 2
    draw.text((x, y), "(c) shop", font=_font(size), fill=(255, 255, 255, 150))
    draw.text((x + 1, y + 1), "(c) shop", font=_font(size), fill=(0, 0, 0, 90))
    out = Image.alpha_composite(out, layer)
    if im.mode != "RGBA":
        out = out.convert("RGB")
    return out, fmt, {"quality": 90}


VARIANTS: dict[str, Callable[[Image.Image], tuple[Image.Image, str, dict[str, Any]]]] = {
    "reencode": v_reencode,
    "resize50": v_resize50,
    "swapformat": v_swap_format,
    "crop2": v_crop2,
    "bright10": v_bright10,
    "watermark": v_watermark,
}


def recolour(im: Image.Image) -> Image.Image:
    """The same design in another colourway (channels rotated R->G->B->R)."""
    r, g, b, *a = im.split()
    out = Image.merge("RGB", (b, r, g))
    if a:
        out.putalpha(a[0])
    return out


def mirror(im: Image.Image) -> Image.Image:
    return ImageOps.mirror(im)


# ---------------------------------------------------------------- sets


def _write_base(im: Image.Image, path_stem: Path) -> Path:
    fmt, ext = _native_fmt(im)
    return _save(
        im, path_stem.with_suffix(f".{ext}"), fmt, **({"quality": 92} if fmt == "JPEG" else {})
    )


def generate_quality_set(
    dest: str | Path,
    n_designs: int = 24,
    photo_side: int = 640,
    design_side: int = 640,
    first_design: int = 0,
) -> dict[str, Any]:
    """The duplicate-quality set: stored originals, variant queries (each expects its original)
    and hard-negative queries (expect nothing). Returns the manifest (also written as JSON).
    ``first_design`` picks another series of generated designs (a held-out set)."""
    dest = Path(dest)
    stored: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []

    def add_variants(base_id: str, im: Image.Image) -> None:
        for vname, fn in VARIANTS.items():
            vim, fmt, kw = fn(im)
            ext = "png" if fmt == "PNG" else "jpg"
            p = _save(vim, dest / "queries" / f"{base_id}__{vname}.{ext}", fmt, **kw)
            queries.append({"path": str(p), "expect": base_id, "kind": vname})

    for name, loader, crop in PHOTOS:
        im = load_photo(loader, crop)
        im.thumbnail((photo_side, photo_side), Image.Resampling.LANCZOS)
        base_id = f"photo_{name}"
        stored.append({"id": base_id, "path": str(_write_base(im, dest / "stored" / base_id))})
        add_variants(base_id, im)
        if crop == "left":
            other = load_photo(loader, "right")
            other.thumbnail((photo_side, photo_side), Image.Resampling.LANCZOS)
            p = _write_base(other, dest / "queries" / f"{base_id}__otherhalf")
            queries.append({"path": str(p), "expect": None, "kind": "otherhalf"})

    for i in range(first_design, first_design + n_designs):
        im = make_design(i, (design_side, design_side), transparent=(i % 4 != 3))
        base_id = f"design_{i:02d}"
        stored.append({"id": base_id, "path": str(_write_base(im, dest / "stored" / base_id))})
        add_variants(base_id, im)
        for kind, fn in (("recolour", recolour), ("mirror", mirror)):
            p = _write_base(fn(im), dest / "queries" / f"{base_id}__{kind}")
            queries.append({"path": str(p), "expect": None, "kind": kind})

    manifest = {"stored": stored, "queries": queries}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def generate_hash_bench_set(dest: str | Path, n_bases: int = 12, copies: int = 4) -> list[str]:
    """2000x1500 JPEGs (q90): ``n_bases`` distinct photos/designs, each with ``copies - 1``
    near-duplicates (re-encode, brightness, watermark)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out: list[str] = []
    sources: list[Image.Image] = [load_photo(loader, crop) for _, loader, crop in PHOTOS]
    i = 0
    while len(sources) < n_bases:
        sources.append(flatten_white(make_design(i, (800, 600))))
        i += 1
    fns = [v_reencode, v_bright10, v_watermark]
    for b, src in enumerate(sources[:n_bases]):
        im = flatten_white(src).resize((2000, 1500), Image.Resampling.BICUBIC)
        p = dest / f"b{b:03d}_0.jpg"
        im.save(p, "JPEG", quality=90)
        out.append(str(p))
        for c in range(1, copies):
            vim, _fmt, _kw = fns[(c - 1) % len(fns)](im)
            p = dest / f"b{b:03d}_{c}.jpg"
            flatten_white(vim).save(p, "JPEG", quality=80 + c)
            out.append(str(p))
    return out


# ---------------------------------------------------------------- bad input


def write_bad_files(dest: str | Path) -> dict[str, str]:
    """One file per kind of bad input, named by the reason code the pipeline must report."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    p = dest / "notes.txt"
    p.write_text("not an image\n")
    files["not_image"] = str(p)
    good = make_design(99, (200, 200), transparent=False).convert("RGB")
    buf = dest / "corrupt.jpg"
    good.save(buf, "JPEG")
    data = buf.read_bytes()
    buf.write_bytes(data[: len(data) // 3])
    files["corrupt"] = str(buf)
    p = dest / "tiny.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(p)
    files["too_small"] = str(p)
    p = dest / "animated.gif"
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    for k, f in enumerate(frames):
        ImageDraw.Draw(f).rectangle(
            (k * 10, k * 10, k * 10 + 20, k * 10 + 20), fill=(255, 255, 255)
        )
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["animated"] = str(p)
    p = dest / "print_cmyk.jpg"
    good.convert("CMYK").save(p, "JPEG")
    files["cmyk"] = str(p)
    p = dest / "deep16.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(p)
    files["16bit"] = str(p)
    p = dest / "huge.png"  # header says 20000x20000: over a 100 MP limit without decoding
    Image.new("1", (20000, 20000)).save(p, optimize=False)
    files["too_large"] = str(p)
    return files


# ---------------------------------------------------------------- demo


def write_template(dest: str | Path, name: str = "poster") -> Path:
    """A mockup template: config JSON plus two background photos (a wall frame and a mug-ish
    label with perspective)."""
    from include.design.mockups import write_default_template

    return write_default_template(Path(dest), name)


def build_demo(dest: str | Path, n_designs: int = 6, shop: str = "demo-shop") -> dict[str, Any]:
    """A demo upload folder with designs, near-duplicate variants, photos and bad files; a mockup
    template folder; and a NAS folder that already holds one of the designs (legacy file).

    Returns ``{"source_dir", "templates_dir", "template", "shop", "nas_root", "expected": {...}}``.
    """
    dest = Path(dest)
    src = dest / "uploads"
    src.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Any] = {"new": [], "duplicates": {}, "errors": {}}
    for i in range(n_designs):
        im = make_design(i, (900, 900), transparent=(i % 3 != 2))
        p = _write_base(im, src / f"design_{i:02d}")
        expected["new"].append(p.name)
    # near-duplicates of design 0 and 1 in the same upload
    for i, vname in ((0, "swapformat"), (1, "watermark")):
        vim, fmt, kw = VARIANTS[vname](make_design(i, (900, 900), transparent=(i % 3 != 2)))
        ext = "png" if fmt == "PNG" else "jpg"
        p = _save(vim, src / f"design_{i:02d}_copy_{vname}.{ext}", fmt, **kw)
        expected["duplicates"][p.name] = f"design_{i:02d}"
    # hard negative: a recolour of design 2 is a new design
    p = _write_base(
        recolour(make_design(2, (900, 900), transparent=False)), src / "design_02_recolour"
    )
    expected["new"].append(p.name)
    # one real photo, and a design that is already on the NAS from before
    photo = load_photo("astronaut")
    p = _write_base(photo, src / "astronaut")
    expected["new"].append(p.name)
    nas_root = dest / "nas"
    legacy = make_design(50, (900, 900), transparent=True)
    _write_base(legacy, nas_root / shop / "poster" / "legacy_design")
    vim, fmt, kw = v_bright10(legacy)
    p = _save(vim, src / "legacy_again.png", fmt, **kw)
    expected["duplicates"][p.name] = "nas:legacy_design"
    bad = write_bad_files(dest / "bad")
    for code, path in bad.items():
        if code == "too_large":
            continue  # 20000^2 px: keep the demo light; tested on its own
        target = src / Path(path).name
        target.write_bytes(Path(path).read_bytes())
        expected["errors"][target.name] = code
    templates = dest / "templates"
    write_template(templates, "poster")
    return {
        "source_dir": str(src),
        "templates_dir": str(templates),
        "template": "poster",
        "shop": shop,
        "nas_root": str(nas_root),
        "expected": expected,
    }


def generate_demo(dest: str | Path) -> dict[str, Any]:
    """The demo's trigger conf: ``{"design_upload": conf}`` (see :func:`build_demo`). To see NAS
    duplicates in the demo, point ``nas_default`` at ``<dest>/nas`` (a mounted-path connection)."""
    info = build_demo(dest)
    return {
        "design_upload": {
            "source_dir": info["source_dir"],
            "shop": info["shop"],
            "template": info["template"],
            "user_id": "demo",
            "batch_mb": 1,
        }
    }
