"""Deterministic sample dataset in Roboflow's YOLO layout, with some bad files.

``generate_dataset(dest)`` writes ``data.yaml``, ``train/``, ``valid/``, ``test/`` (``images/`` +
``labels/``) and ``neither/`` with small synthetic JPEGs (coloured boxes whose YOLO labels match),
every image distinct. With ``bad=True`` it adds one file of each bad kind the scanner must report:
an image without a label, a label without an image, a malformed label and an unreadable (truncated)
image. ``generate_demo(dest)`` returns the demo's ``roboflow_upload`` conf.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from include.common.files import atomic_write_bytes
from include.roboflow.dataset import IssueKind

CLASSES = ("coral", "fish")
DEMO_PROJECT = "demo-dataset"
DEMO_NEITHER_PROJECT = "demo-neither"


def _write(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def _image(seed: int, size: int) -> tuple[bytes, str]:
    """A JPEG with 1-3 boxes and its YOLO label text (unique per seed)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    bg = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    im = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(im)
    lines = []
    for _ in range(rng.randint(1, 3)):
        w, h = rng.randint(size // 8, size // 2), rng.randint(size // 8, size // 2)
        x0, y0 = rng.randint(0, size - w), rng.randint(0, size - h)
        cls = rng.randrange(len(CLASSES))
        draw.rectangle(
            [x0, y0, x0 + w - 1, y0 + h - 1],
            fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)),
        )
        lines.append(
            f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}"
        )
    # a seed-specific pixel pattern makes every image's bytes unique even if the boxes coincide
    for i in range(8):
        im.putpixel((i, 0), (255, 255, 255) if (seed >> i) & 1 else (0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue(), "\n".join(lines) + "\n"


def generate_dataset(
    dest: str | Path,
    *,
    n_train: int = 12,
    n_valid: int = 4,
    n_test: int = 4,
    n_neither: int = 3,
    bad: bool = True,
    size: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the dataset under ``dest`` (idempotent) and describe it."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    names = "\n".join(f"  - {c}" for c in CLASSES)
    _write(root / "data.yaml", f"nc: {len(CLASSES)}\nnames:\n{names}\n".encode())
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    n = seed * 100_000
    for split, count in counts.items():
        for i in range(count):
            n += 1
            data, label = _image(n, size)
            _write(root / split / "images" / f"{split}_{i:04d}.jpg", data)
            _write(root / split / "labels" / f"{split}_{i:04d}.txt", label.encode())
    for i in range(n_neither):
        n += 1
        data, _label = _image(n, size)
        _write(root / "neither" / f"neither_{i:04d}.jpg", data)
    bad_files: dict[str, str] = {}
    if bad:
        n += 1
        data, _ = _image(n, size)
        _write(root / "train" / "images" / "no_label_0000.jpg", data)
        bad_files["train/images/no_label_0000.jpg"] = IssueKind.NO_ANNOTATION
        _write(root / "train" / "labels" / "orphan_0000.txt", b"0 0.5 0.5 0.2 0.2\n")
        bad_files["train/labels/orphan_0000.txt"] = IssueKind.ORPHAN_ANNOTATION
        n += 1
        data, _ = _image(n, size)
        _write(root / "valid" / "images" / "bad_label_0000.jpg", data)
        _write(
            root / "valid" / "labels" / "bad_label_0000.txt",
            b"0 0.5 0.5 0.2\nfish 0.1 0.1 0.1 0.1\n",
        )
        bad_files["valid/labels/bad_label_0000.txt"] = IssueKind.MALFORMED_LABEL
        n += 1
        data, label = _image(n, size)
        _write(root / "test" / "images" / "corrupt_0000.jpg", data[: len(data) // 2])
        _write(root / "test" / "labels" / "corrupt_0000.txt", label.encode())
        bad_files["test/images/corrupt_0000.jpg"] = IssueKind.UNREADABLE_IMAGE
    return {
        "dataset_dir": str(root.resolve()),
        "images": counts,
        "neither": n_neither,
        "good": sum(counts.values()),
        "bad": bad_files,
    }


def generate_demo(dest: str | Path) -> dict[str, Any]:
    """The demo dataset and the ``roboflow_upload`` conf that uploads it to the fake server."""
    info = generate_dataset(Path(dest) / "dataset")
    return {
        "roboflow_upload": {
            "dataset_dir": info["dataset_dir"],
            "project": DEMO_PROJECT,
            "neither_project": DEMO_NEITHER_PROJECT,
            "batch_size": 5,
            "retry_failed_only": False,
        }
    }
