"""Plan upload batches: deterministic, per split, at most ``batch_size`` images each.

A batch key is ``<dataset name>-<split>-<NNNN>`` (also used as the Roboflow batch name, so the
images of one planned batch land in one Roboflow batch); the same dataset and batch size always give
the same plan, which makes reruns and ``retry_failed_only`` find the same batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from include.roboflow.dataset import NEITHER, SPLITS, ImageItem

_ORDER = {s: i for i, s in enumerate((*SPLITS, NEITHER))}


@dataclass(frozen=True)
class BatchPlan:
    batch_key: str
    project: str
    split: str  # train / valid / test / neither
    upload_split: str  # the split sent to the API ("neither" images go in as "train")
    items: tuple[ImageItem, ...] = field(default_factory=tuple)

    @property
    def size(self) -> int:
        return len(self.items)


def image_key(dataset_name: str, item: ImageItem) -> str:
    return f"{dataset_name}/{item.rel_path}"


def plan_batches(
    items: Iterable[ImageItem],
    *,
    batch_size: int,
    dataset_name: str,
    project: str,
    neither_project: str | None = None,
) -> list[BatchPlan]:
    """Group ``items`` into batches. "neither" images go to ``neither_project`` (and are left out
    when it is not set); the other splits go to ``project``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    by_split: dict[str, list[ImageItem]] = {}
    for it in items:
        by_split.setdefault(it.split, []).append(it)
    plans: list[BatchPlan] = []
    for split in sorted(by_split, key=lambda s: _ORDER.get(s, 99)):
        if split == NEITHER and not neither_project:
            continue
        target = neither_project if split == NEITHER else project
        assert target is not None
        group = sorted(by_split[split], key=lambda i: i.rel_path)
        for n, start in enumerate(range(0, len(group), batch_size)):
            plans.append(
                BatchPlan(
                    batch_key=f"{dataset_name}-{split}-{n:04d}",
                    project=target,
                    split=split,
                    upload_split="train" if split == NEITHER else split,
                    items=tuple(group[start : start + batch_size]),
                )
            )
    return plans
