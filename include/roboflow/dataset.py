"""Scan a Roboflow / YOLO dataset folder and pair images with their label files.

Layout (a Roboflow "YOLO" export)::

    <dataset>/data.yaml              optional: ``names`` (list or {id: name}) = the label map
    <dataset>/train/images/*.jpg     ``valid/`` (or ``val/``) and ``test/`` alike
    <dataset>/train/labels/*.txt     one YOLO label file per image (same stem; empty = no objects)
    <dataset>/neither/[images/]*.jpg optional: images with no class, no labels needed

Every problem is reported per file (:class:`FileIssue`) and the file is left out; the rest of the
dataset goes on: images without a label file, label files without an image, malformed label files
(bad numbers, coordinates out of [0, 1], unknown class ids), unreadable images, files that are
neither, and images whose content duplicates another image (the API would deduplicate them, which
would make the uploaded count disagree with what was sent).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "valid", "test")
NEITHER = "neither"
SPLIT_ALIASES = {"val": "valid"}
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
LABEL_EXT = ".txt"


class IssueKind:
    NO_ANNOTATION = "image_without_annotation"
    ORPHAN_ANNOTATION = "annotation_without_image"
    MALFORMED_LABEL = "malformed_label"
    UNREADABLE_IMAGE = "unreadable_image"
    UNSUPPORTED_FILE = "unsupported_file"
    DUPLICATE_CONTENT = "duplicate_content"
    BAD_LABELMAP = "bad_labelmap"


@dataclass(frozen=True)
class FileIssue:
    rel_path: str
    kind: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ImageItem:
    split: str  # train / valid / test / neither
    rel_path: str  # posix path relative to the dataset root
    path: str  # absolute
    label_path: str | None  # absolute; None for "neither" images
    sha256: str
    size: int
    n_objects: int = 0


@dataclass
class DatasetScan:
    root: str
    name: str
    labelmap: dict[int, str] | None
    items: list[ImageItem] = field(default_factory=list)
    issues: list[FileIssue] = field(default_factory=list)

    def by_split(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it.split] = out.get(it.split, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for iss in self.issues:
            kinds[iss.kind] = kinds.get(iss.kind, 0) + 1
        return {
            "dataset": self.name,
            "images": len(self.items),
            "by_split": self.by_split(),
            "issues": kinds,
        }


class DatasetError(ValueError):
    """The folder is not a dataset at all (missing, or no split folders)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_image(path: Path) -> str | None:
    """``None`` when Pillow can fully decode the image, else the reason."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:  # verify() does not decode pixels: a truncated file passes it
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"cannot decode image: {exc}"
    return None


def parse_label(text: str, n_classes: int | None) -> tuple[int, str | None]:
    """Validate a YOLO label file (boxes ``c x y w h`` or polygons ``c x1 y1 x2 y2 x3 y3 ...``).

    Returns ``(number of objects, None)`` or ``(0, reason)``.
    """
    n = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
        except ValueError:
            return 0, f"line {lineno}: class id {parts[0]!r} is not an integer"
        if cls < 0 or (n_classes is not None and cls >= n_classes):
            return (
                0,
                f"line {lineno}: class id {cls} is not in the label map (0..{(n_classes or 0) - 1})",
            )
        coords_txt = parts[1:]
        if len(coords_txt) != 4 and (len(coords_txt) < 6 or len(coords_txt) % 2):
            return (
                0,
                f"line {lineno}: expected 4 box values or an even number (>= 6) of polygon values, got {len(coords_txt)}",
            )
        try:
            coords = [float(v) for v in coords_txt]
        except ValueError:
            return 0, f"line {lineno}: coordinates must be numbers"
        if any(not (0.0 <= v <= 1.0) for v in coords):
            return 0, f"line {lineno}: coordinates must be normalised to [0, 1]"
        if len(coords) == 4 and (coords[2] <= 0 or coords[3] <= 0):
            return 0, f"line {lineno}: box width and height must be > 0"
        n += 1
    return n, None


def load_labelmap(root: Path) -> tuple[dict[int, str] | None, str | None]:
    """The ``names`` of ``data.yaml`` as ``{id: name}``; ``(None, reason)`` when it is unusable."""
    for fname in ("data.yaml", "data.yml"):
        p = root / fname
        if not p.exists():
            continue
        import yaml

        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, dict):
                return {int(k): str(v) for k, v in names.items()}, None
            if isinstance(names, list):
                return {i: str(v) for i, v in enumerate(names)}, None
            return None, f"{fname}: no 'names' list"
        except (yaml.YAMLError, ValueError, TypeError, OSError, UnicodeDecodeError) as exc:
            return None, f"{fname}: {exc}"
    return None, None


def _split_dirs(root: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        split = SPLIT_ALIASES.get(child.name, child.name)
        if split in SPLITS or split == NEITHER:
            found.append((split, child))
    return found


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))


def scan_dataset(root: str | Path, *, check_images: bool = True) -> DatasetScan:
    """Scan ``root``; see the module docstring. Deterministic: items sorted by split then path."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    splits = _split_dirs(root)
    if not splits:
        raise DatasetError(f"{root} has none of the folders {', '.join(SPLITS)} or {NEITHER}/")
    labelmap, lm_error = load_labelmap(root)
    scan = DatasetScan(root=str(root.resolve()), name=root.resolve().name, labelmap=labelmap)
    if lm_error:
        scan.issues.append(FileIssue("data.yaml", IssueKind.BAD_LABELMAP, lm_error))
    n_classes = len(labelmap) if labelmap else None
    if labelmap and sorted(labelmap) != list(range(len(labelmap))):
        n_classes = max(labelmap) + 1

    seen_hash: dict[str, str] = {}
    order = {s: i for i, s in enumerate((*SPLITS, NEITHER))}
    for split, sdir in sorted(splits, key=lambda t: order[t[0]]):
        images: dict[str, Path] = {}
        labels: dict[str, Path] = {}
        for f in _files(sdir):
            rel = f.relative_to(root).as_posix()
            ext = f.suffix.lower()
            if ext in IMAGE_EXTS:
                key = f.stem if split != NEITHER else rel
                if key in images:
                    other = images[key].relative_to(root).as_posix()
                    scan.issues.append(
                        FileIssue(
                            rel,
                            IssueKind.UNSUPPORTED_FILE,
                            f"another image ({other}) has the same name stem: which label belongs to which is ambiguous",
                        )
                    )
                    continue
                images[key] = f
            elif ext == LABEL_EXT and split != NEITHER:
                labels[f.stem] = f
            else:
                scan.issues.append(
                    FileIssue(
                        rel,
                        IssueKind.UNSUPPORTED_FILE,
                        f"not an image or a YOLO .txt label ({f.suffix or 'no extension'})",
                    )
                )
        if split != NEITHER:
            for stem in sorted(set(labels) - set(images)):
                scan.issues.append(
                    FileIssue(
                        labels[stem].relative_to(root).as_posix(),
                        IssueKind.ORPHAN_ANNOTATION,
                        f"no image named {stem}.* in {split}/",
                    )
                )
        for key in sorted(images):
            img = images[key]
            rel = img.relative_to(root).as_posix()
            label = labels.get(key) if split != NEITHER else None
            n_objects = 0
            if split != NEITHER:
                if label is None:
                    scan.issues.append(
                        FileIssue(
                            rel,
                            IssueKind.NO_ANNOTATION,
                            f"no label file {img.stem}{LABEL_EXT} in {split}/labels",
                        )
                    )
                    continue
                try:
                    text = label.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    scan.issues.append(
                        FileIssue(
                            label.relative_to(root).as_posix(),
                            IssueKind.MALFORMED_LABEL,
                            f"unreadable: {exc}",
                        )
                    )
                    continue
                n_objects, reason = parse_label(text, n_classes)
                if reason:
                    scan.issues.append(
                        FileIssue(
                            label.relative_to(root).as_posix(), IssueKind.MALFORMED_LABEL, reason
                        )
                    )
                    continue
            if check_images:
                reason = check_image(img)
                if reason:
                    scan.issues.append(FileIssue(rel, IssueKind.UNREADABLE_IMAGE, reason))
                    continue
            digest = _sha256(img)
            if digest in seen_hash:
                scan.issues.append(
                    FileIssue(
                        rel,
                        IssueKind.DUPLICATE_CONTENT,
                        f"same content as {seen_hash[digest]}; the API would store it once",
                    )
                )
                continue
            seen_hash[digest] = rel
            scan.items.append(
                ImageItem(
                    split=split,
                    rel_path=rel,
                    path=str(img.resolve()),
                    label_path=str(label.resolve()) if label else None,
                    sha256=digest,
                    size=img.stat().st_size,
                    n_objects=n_objects,
                )
            )
    return scan
