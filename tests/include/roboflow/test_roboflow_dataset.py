"""Scanning a Roboflow/YOLO dataset: pairing, per-file errors, determinism; planning batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.roboflow.batching import image_key, plan_batches
from include.roboflow.dataset import (
    DatasetError,
    IssueKind,
    load_labelmap,
    parse_label,
    scan_dataset,
)
from include.roboflow.samples import generate_dataset, generate_demo


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return generate_dataset(tmp_path_factory.mktemp("rf") / "ds")


def test_sample_scan_reports_every_bad_file_and_keeps_the_rest(sample: dict) -> None:
    scan = scan_dataset(sample["dataset_dir"])
    got = {i.rel_path: i.kind for i in scan.issues}
    assert got == sample["bad"]
    assert scan.by_split() == {**sample["images"], "neither": sample["neither"]}
    assert scan.labelmap == {0: "coral", 1: "fish"}
    for it in scan.items:
        assert Path(it.path).is_file()
        if it.split == "neither":
            assert it.label_path is None
        else:
            assert it.label_path and Path(it.label_path).stem == Path(it.path).stem
            assert it.n_objects >= 1
    assert len({it.sha256 for it in scan.items}) == len(scan.items)
    reasons = {i.rel_path: i.reason for i in scan.issues}
    assert "no label file" in reasons["train/images/no_label_0000.jpg"]
    assert "no image named orphan_0000" in reasons["train/labels/orphan_0000.txt"]
    assert "line 1" in reasons["valid/labels/bad_label_0000.txt"]
    assert "truncated" in reasons["test/images/corrupt_0000.jpg"]


def test_scan_is_deterministic_and_generation_idempotent(sample: dict) -> None:
    a = scan_dataset(sample["dataset_dir"])
    again = generate_dataset(sample["dataset_dir"])
    b = scan_dataset(again["dataset_dir"])
    assert [(i.rel_path, i.sha256) for i in a.items] == [(i.rel_path, i.sha256) for i in b.items]
    assert a.issues == b.issues


@pytest.mark.parametrize(
    ("text", "n", "fragment"),
    [
        ("0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.05 0.05\n", 2, None),
        ("", 0, None),
        ("\n\n", 0, None),
        ("1 0.1 0.1 0.5 0.1 0.5 0.5\n", 1, None),  # polygon
        ("cat 0.5 0.5 0.2 0.2", 0, "not an integer"),
        ("0 0.5 0.5 0.2", 0, "expected 4 box values"),
        ("0 0.5 0.5 0.2 0.2 0.3", 0, "expected 4 box values"),
        ("0 0.5 0.5 x 0.2", 0, "must be numbers"),
        ("0 1.5 0.5 0.2 0.2", 0, "[0, 1]"),
        ("0 0.5 0.5 0 0.2", 0, "> 0"),
        ("2 0.5 0.5 0.2 0.2", 0, "not in the label map"),
        ("-1 0.5 0.5 0.2 0.2", 0, "not in the label map"),
    ],
)
def test_parse_label(text: str, n: int, fragment: str | None) -> None:
    count, reason = parse_label(text, n_classes=2)
    assert count == n
    if fragment is None:
        assert reason is None
    else:
        assert reason is not None and fragment in reason


def test_missing_or_empty_dataset_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")
    (tmp_path / "random").mkdir()
    with pytest.raises(DatasetError, match="has none of the folders"):
        scan_dataset(tmp_path)


def test_val_alias_duplicates_unsupported_and_ambiguous_files(tmp_path: Path) -> None:
    info = generate_dataset(
        tmp_path / "src", n_train=2, n_valid=1, n_test=0, n_neither=1, bad=False
    )
    src = Path(info["dataset_dir"])
    root = tmp_path / "ds"
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "labels").mkdir(parents=True)
    img0 = (src / "train/images/train_0000.jpg").read_bytes()
    lab0 = (src / "train/labels/train_0000.txt").read_bytes()
    (root / "train/images/a.jpg").write_bytes(img0)
    (root / "train/labels/a.txt").write_bytes(lab0)
    (root / "val/images/copy.jpg").write_bytes(img0)  # same content as train/a.jpg
    (root / "val/labels/copy.txt").write_bytes(lab0)
    (root / "train/images/b.jpg").write_bytes((src / "train/images/train_0001.jpg").read_bytes())
    (root / "train/images/b.png").write_bytes((src / "valid/images/valid_0000.jpg").read_bytes())
    (root / "train/labels/b.txt").write_bytes(lab0)
    (root / "train/images/notes.pdf").write_bytes(b"%PDF-1.4")
    (root / "data.yaml").write_text("names: {0: coral, 1: fish}\n")
    scan = scan_dataset(root)
    kinds = {i.rel_path: i.kind for i in scan.issues}
    assert kinds["val/images/copy.jpg"] == IssueKind.DUPLICATE_CONTENT
    assert kinds["train/images/notes.pdf"] == IssueKind.UNSUPPORTED_FILE
    assert kinds["train/images/b.png"] == IssueKind.UNSUPPORTED_FILE  # same stem as b.jpg
    assert [(i.split, i.rel_path) for i in scan.items] == [
        ("train", "train/images/a.jpg"),
        ("train", "train/images/b.jpg"),
    ]


def test_labelmap_variants(tmp_path: Path) -> None:
    assert load_labelmap(tmp_path) == (None, None)
    (tmp_path / "data.yaml").write_text("names: [a, b, c]\n")
    assert load_labelmap(tmp_path) == ({0: "a", 1: "b", 2: "c"}, None)
    (tmp_path / "data.yaml").write_text("names: [a, b\n")
    lm, err = load_labelmap(tmp_path)
    assert lm is None and err and err.startswith("data.yaml")
    (tmp_path / "data.yaml").write_text("nc: 3\n")
    assert load_labelmap(tmp_path) == (None, "data.yaml: no 'names' list")


def test_bad_labelmap_is_reported_and_labels_still_checked(tmp_path: Path) -> None:
    info = generate_dataset(tmp_path / "ds", n_train=2, n_valid=0, n_test=0, n_neither=0, bad=False)
    Path(info["dataset_dir"], "data.yaml").write_text(":\n  - [")
    scan = scan_dataset(info["dataset_dir"])
    assert [i.kind for i in scan.issues] == [IssueKind.BAD_LABELMAP]
    assert len(scan.items) == 2


def test_plan_batches_per_split_deterministic_and_neither_routing(sample: dict) -> None:
    scan = scan_dataset(sample["dataset_dir"])
    plans = plan_batches(
        scan.items, batch_size=5, dataset_name="ds", project="main", neither_project="other"
    )
    assert [(p.batch_key, p.project, p.upload_split, p.size) for p in plans] == [
        ("ds-train-0000", "main", "train", 5),
        ("ds-train-0001", "main", "train", 5),
        ("ds-train-0002", "main", "train", 2),
        ("ds-valid-0000", "main", "valid", 4),
        ("ds-test-0000", "main", "test", 4),
        ("ds-neither-0000", "other", "train", 3),
    ]
    assert plans == plan_batches(
        list(reversed(scan.items)),
        batch_size=5,
        dataset_name="ds",
        project="main",
        neither_project="other",
    )
    keys = [image_key("ds", it) for p in plans for it in p.items]
    assert len(keys) == len(set(keys)) == len(scan.items)
    without = plan_batches(scan.items, batch_size=100, dataset_name="ds", project="main")
    assert [p.batch_key for p in without] == ["ds-train-0000", "ds-valid-0000", "ds-test-0000"]
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(scan.items, batch_size=0, dataset_name="ds", project="main")


def test_generate_demo_conf(tmp_path: Path) -> None:
    out = generate_demo(tmp_path)
    conf = out["roboflow_upload"]
    assert set(conf) == {
        "dataset_dir",
        "project",
        "neither_project",
        "batch_size",
        "retry_failed_only",
    }
    assert scan_dataset(conf["dataset_dir"]).items
