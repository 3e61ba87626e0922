"""Duplicate decisions a shop owner agrees with: precision and recall of the duplicate rule on the
generated set of :func:`include.design.samples.generate_quality_set` (real photos from
scikit-image and flat designs, most with transparency; variants: JPEG re-encode, 50 % resize,
PNG<->JPEG, 2 % border crop, brightness +10 %, small watermark; hard negatives: recoloured,
mirrored, the other half of a photo).

Protocol: the originals are the stored catalogue (in a :class:`DupIndex`); every variant and hard
negative is looked up. A reported match is a true positive when it is the variant's original,
otherwise a false positive. precision = TP / (TP + FP); recall = variants whose original was found
/ variants. Both the tuned rule and the seed's rule (pHash 16, Hamming <= 5, transparency
ignored) are measured in the same run; ``baseline_s``/``ours_s`` are their hashing + lookup times.

The tuned thresholds were chosen from the distances measured on this set, so the benchmark also
reports a held-out set (other generated designs, same photos) that played no part in the choice.

Usage: ``python bench/bench_design_quality.py [--config seed|tuned] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.design import hashing, samples  # noqa: E402
from include.design.dupindex import DupIndex  # noqa: E402


def evaluate(manifest: dict[str, Any], config: hashing.DupConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    index = DupIndex(config)
    for s in manifest["stored"]:
        index.add(s["id"], hashing.hash_file(s["path"], config))
    tp = fp = found = n_var = 0
    misses: Counter[str] = Counter()
    false_pos: Counter[str] = Counter()
    for q in manifest["queries"]:
        hits = index.query(hashing.hash_file(q["path"], config))
        refs = {h.ref for h in hits}
        if q["expect"] is not None:
            n_var += 1
            if q["expect"] in refs:
                found += 1
            else:
                misses[q["kind"]] += 1
        for r in refs:
            if r == q["expect"]:
                tp += 1
            else:
                fp += 1
                false_pos[q["kind"]] += 1
    elapsed = time.perf_counter() - t0
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": found / n_var if n_var else 0.0,
        "tp": tp,
        "fp": fp,
        "variants": n_var,
        "misses_by_kind": dict(misses),
        "false_positives_by_kind": dict(false_pos),
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(hashing.PRESETS), default="tuned")
    ap.add_argument("--keep", help="write the generated set here and keep it")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-design-quality-") as tmp:
        dest = Path(args.keep or tmp)
        manifest = samples.generate_quality_set(dest / "main")
        seed = evaluate(manifest, hashing.SEED)
        ours = evaluate(manifest, hashing.PRESETS[args.config])
        held = samples.generate_quality_set(dest / "holdout", first_design=100)
        holdout = evaluate(held, hashing.PRESETS[args.config])
    out = {
        "name": "design_quality",
        "baseline_s": round(seed["seconds"], 3),
        "ours_s": round(ours["seconds"], 3),
        "ratio": round(seed["seconds"] / ours["seconds"], 3),
        "config": hashing.PRESETS[args.config].to_dict(),
        "precision": round(ours["precision"], 4),
        "recall": round(ours["recall"], 4),
        "seed_precision": round(seed["precision"], 4),
        "seed_recall": round(seed["recall"], 4),
        "holdout_precision": round(holdout["precision"], 4),
        "holdout_recall": round(holdout["recall"], 4),
        "stored": len(manifest["stored"]),
        "queries": len(manifest["queries"]),
        "ours": {k: v for k, v in ours.items() if k != "seconds"},
        "seed": {k: v for k, v in seed.items() if k != "seconds"},
        "holdout": {k: v for k, v in holdout.items() if k != "seconds"},
        "target": {"precision": 0.99, "recall": 0.9},
        "meets_target": ours["precision"] >= 0.99 and ours["recall"] >= 0.9,
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
