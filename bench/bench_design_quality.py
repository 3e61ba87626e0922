"""Duplicate decisions a shop owner agrees with: precision and recall of the duplicate rules on the
TUNE, HELD-OUT and FRESH sets of :mod:`include.design.evalset` (real photos from scikit-image and flat
designs, most with transparency; near-duplicates: re-encodes, resizes, format swaps, crops,
brightness, small watermarks; hard negatives: recolours, mirrored copies, the other half of a
photo).

Protocol: each set's originals are the stored catalogue (in a :class:`DupIndex`, the pipeline's
lookup); every variant and hard negative is looked up. A reported match is a true positive when it
is the variant's original, otherwise a false positive. precision = TP / (TP + FP); recall =
variants whose original was found / variants.

Rules measured, all in the same run: the default (``hashing.DEFAULT``, the pipeline's decision),
every other preset of ``hashing.PRESETS``, and the design document's rule (pHash 16, Hamming <= 5,
transparency ignored: ``hashing.SEED``), and ``default_crop_alias``: the default with each
stored original also indexed by its crop alias (:func:`include.design.hashing.crop_alias`, the
second, crop-robust stage; the pipeline applies it within a run and, against the library, on the
upload's side only). ``tune_wide`` is a tuning set too
(TUNE's sources, wider crops and watermarks). The default's thresholds were chosen on the TUNE set; the
HELD-OUT set (other photos, other designs, wider variant ranges, other seeds) played no part in any
choice, but its errors were looked at (and the one-way crop rule taken from them); the FRESH set
(new seed and designs, generated after that) was looked at too; FRESH2 (seed 753807, designs
3000-3023, made after the crop alias was chosen on the tune sets) and FRESH3 (below) are the ones to
quote. A default run keeps every photo
and variant kind but only the first designs of TUNE and HELD_OUT (:data:`DESIGNS`, ~2 minutes);
``--full`` runs them whole. ``margins`` give, per kind, the index-key distance of
the variants to their original (largest) and of the hard negatives to their source (smallest) —
the default rule accepts key distances <= ``key_max``.

``best_copy_facts``: the group-relative facts of the best-copy order (a crop, a watermark:
:mod:`include.design.copies`) on each set, every original with its variants as one group —
recall of the crop / watermark variants and the members flagged wrongly.

``format_swaps``: lossless format swaps of the JPEG originals recognised as re-saved JPEGs
(:func:`include.design.quality.jpeg_history`) and ranked no higher than the original; lossless files
flagged wrongly.

``baseline_s``/``ours_s``: hashing + lookup time of the design document's rule and of the default
on the fresh set.

Measured (default run, 2026-12-06, after the second look of the duplicate rule and the joined
watermark patch of :mod:`include.design.copies`; the pipeline's rule = ``default_crop_alias``):

=========  =========  ======  ===============  ==========  ==========================
set        precision  recall  watermark recall crop recall best-copy watermark flag
=========  =========  ======  ===============  ==========  ==========================
tune       1.0        1.0     19/19            19/19       1.0, 0 false flags
tune_wide  1.0        1.0     19/19 (18 first) 19/19       1.0, 0 false flags
fresh2     0.9899     0.9949  33/33            32/33       30/33 (was 28/33), 4 false (was 3)
fresh3     1.0        0.9797  41/41            36/41       30/41, 9 false flags
=========  =========  ======  ===============  ==========  ==========================

FRESH3 (seed 991030000, designs 4000-4031, wider ranges) was generated and scored once, after
every choice; it meets the target (P >= 0.99, R >= 0.95). FRESH2 misses the precision target by
one match in a hundred: its 2 false matches are recolours that swap two channels of a design whose
changed colour is dark (dark colours have small Cb/Cr, so the 6x6 chroma signature moves ~14-16,
under ``colour_max`` 30; the tune sets' extra draws show the same with design 23) — a limit of the
signature, not of the second look (``first_look_crop_alias`` has the same 2). On FRESH/FRESH2/
FRESH3 the second look changed recall only on FRESH (watermarks 33/34 -> 34/34); on TUNE_WIDE it
found the brick watermark (key 13 bits away). The best-copy watermark flag found more watermarks
on FRESH (0.76 -> 0.79) and FRESH2 but also flagged one more unmarked copy on each; on FRESH3 it
flags 9 of 287 members wrongly.

Usage: ``python bench/bench_design_quality.py [--keep DIR] [--full]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.design import evalset, hashing  # noqa: E402
from include.design.dupindex import DupIndex  # noqa: E402

#: Designs per set in a default run (every photo, half, variant and hard-negative kind stays; the
#: fresh set whole); ``--full`` takes every design of every set.
DESIGNS: dict[str, int | None] = {
    "tune": 6,
    "tune_wide": 6,
    "held_out": 6,
    "fresh": None,
    "fresh2": None,
    "fresh3": None,
}


#: The default without its second look (:attr:`hashing.DupConfig.wide_key_max`): the rule before
#: the second look was added, measured beside it.
FIRST_LOOK = replace(hashing.DEFAULT, wide_key_max=None)


def evaluate(
    manifest: dict[str, Any], config: hashing.DupConfig, alias: bool = False
) -> dict[str, Any]:
    """Score ``config`` on ``manifest``; ``alias``: each stored original is also indexed by its
    crop alias (:func:`include.design.hashing.crop_alias`)."""
    t0 = time.perf_counter()
    index = DupIndex(config)
    stored: dict[str, hashing.Hashes] = {}
    for s in manifest["stored"]:
        if alias:
            stored[s["id"]], crop = hashing.hash_file_with_alias(s["path"], config)
        else:
            stored[s["id"]], crop = hashing.hash_file(s["path"], config), None
        index.add(s["id"], stored[s["id"]], crop)
    tp = fp = found = n_var = 0
    misses: Counter[str] = Counter()
    false_pos: Counter[str] = Counter()
    key_dist: dict[str, list[int]] = defaultdict(list)
    missed: list[str] = []
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # kind -> [found, variants]
    for q in manifest["queries"]:
        h = hashing.hash_file(q["path"], config)
        refs = {hit.ref for hit in index.query(h)}
        source = q["expect"] or q.get("source")
        if source in stored:
            key_dist[q["kind"]].append(hashing.compare(h, stored[source]).key_distance)
        if q["expect"] is not None:
            n_var += 1
            per_kind[q["kind"]][1] += 1
            if q["expect"] in refs:
                found += 1
                per_kind[q["kind"]][0] += 1
            else:
                misses[q["kind"]] += 1
                missed.append(Path(q["path"]).name)
        for r in refs:
            if r == q["expect"]:
                tp += 1
            else:
                fp += 1
                false_pos[q["kind"]] += 1
    elapsed = time.perf_counter() - t0
    negative_kinds = {q["kind"] for q in manifest["queries"] if q["expect"] is None}
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(found / n_var, 4) if n_var else 0.0,
        "tp": tp,
        "fp": fp,
        "variants": n_var,
        "negatives": len(manifest["queries"]) - n_var,
        "misses_by_kind": dict(misses),
        "recall_by_kind": {k: f"{f}/{n}" for k, (f, n) in sorted(per_kind.items())},
        "false_positives_by_kind": dict(false_pos),
        "missed": missed[:20],
        "margins": {
            k: (min(v) if k in negative_kinds else max(v)) for k, v in sorted(key_dist.items())
        },
        "seconds": elapsed,
    }


def evaluate_group_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The best-copy facts measured against a group (:mod:`include.design.copies`): each original
    with its variants is one group; ``cropped`` should be set on the crop variant only and
    ``watermark`` on the watermark variant only."""
    from include.design import copies

    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s in manifest["stored"]:
        groups[s["id"]].append(("original", s["path"]))
    for q in manifest["queries"]:
        if q["expect"] is not None:
            groups[q["expect"]].append((q["kind"], q["path"]))
    out: dict[str, Any] = {}
    counts = {f: Counter() for f in ("cropped", "watermark")}
    wrong: list[str] = []
    t0 = time.perf_counter()
    for members in groups.values():
        facts = copies.relative_facts([p for _, p in members])
        for (kind, path), f in zip(members, facts, strict=True):
            for fact, truth in (("cropped", kind == "crop"), ("watermark", kind == "watermark")):
                got = bool(f[fact])
                counts[fact][
                    "tp" if got and truth else "fp" if got else "fn" if truth else "tn"
                ] += 1
                if got != truth:
                    wrong.append(f"{Path(path).name}: {fact}={got}")
    for fact, c in counts.items():
        out[fact] = {
            "recall": round(c["tp"] / (c["tp"] + c["fn"]), 4) if c["tp"] + c["fn"] else 1.0,
            "false_flags": c["fp"],
            "members": sum(c.values()),
        }
    out["groups"] = len(groups)
    out["wrong"] = wrong[:20]
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _may_have_history(path: str) -> bool:
    """Only opaque true-colour lossless files are measured for JPEG history (a JPEG by its
    header; transparency and palettes rule it out): the others need no decode here."""
    from PIL import Image

    if path.endswith(".jpg"):
        return False
    with Image.open(path) as im:
        if im.mode in ("P", "PA", "1", "LA"):
            return False
        return im.mode != "RGBA" or im.getchannel("A").getextrema()[0] == 255


def evaluate_jpeg_history(manifest: dict[str, Any]) -> dict[str, Any]:
    """Format swaps (:func:`include.design.quality.jpeg_history`): the lossless format swaps of
    JPEG originals should be recognised as JPEGs (and ranked below their original); no other
    lossless file should be. ``controls`` are the never-compressed sources of the JPEG originals
    saved as PNG: scikit-image's photos themselves may have been JPEGs once (reported apart)."""
    from include.design import quality

    jpeg_orig = {s["id"]: s["path"] for s in manifest["stored"] if s["path"].endswith(".jpg")}
    t0 = time.perf_counter()
    swaps = found = ranked_below = 0
    false_flags: list[str] = []
    lossless = 0  # opaque true-colour lossless files, not swaps of a JPEG (could be flagged)
    for q in manifest["queries"]:
        if not _may_have_history(q["path"]):
            continue
        fq = quality.of_file(q["path"])
        truth = q["kind"] == "swapformat" and q["expect"] in jpeg_orig
        if truth and (fq["lossless"] or fq.get("jpeg_history")):
            swaps += 1
            if fq.get("jpeg_history"):
                found += 1
            orig = quality.of_file(jpeg_orig[q["expect"]])
            ranked_below += not quality.better(fq, orig)
        elif not truth:
            lossless += bool(fq["lossless"] or fq.get("jpeg_history"))
            if fq.get("jpeg_history"):
                false_flags.append(f"{Path(q['path']).name} (q{fq['jpeg_quality']})")
    for st in manifest["stored"]:
        if not _may_have_history(st["path"]):
            continue
        fq = quality.of_file(st["path"])
        lossless += bool(fq["lossless"] or fq.get("jpeg_history"))
        if fq.get("jpeg_history"):
            false_flags.append(f"{Path(st['path']).name} (q{fq['jpeg_quality']})")
    controls = {"photos": [], "designs": []}
    for c in manifest.get("controls", []):
        fq = quality.of_file(c["path"])
        kind = "photos" if c["source"].startswith(("photo_", "half_")) else "designs"
        controls[kind].append(fq["jpeg_quality"] if fq.get("jpeg_history") else None)
    return {
        "lossless_swaps_of_jpegs": swaps,
        "recognised": found,
        "ranked_not_above_original": ranked_below,
        "other_opaque_lossless_files": lossless,
        "false_flags": false_flags[:20],
        "controls_flagged": {
            k: f"{sum(v is not None for v in vals)}/{len(vals)}"
            + (f" (q{sorted(v for v in vals if v is not None)})" if any(vals) else "")
            for k, vals in controls.items()
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _public(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "seconds"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="write the generated sets here and keep them")
    ap.add_argument(
        "--full", action="store_true", help="every design of each set (default: DESIGNS per set)"
    )
    args = ap.parse_args(argv)
    caps = dict.fromkeys(DESIGNS) if args.full else DESIGNS
    rules = {"default": hashing.DEFAULT, "design_doc_phash5": hashing.SEED}
    rules.update(
        {f"preset_{n}": c for n, c in hashing.PRESETS.items() if c not in (hashing.DEFAULT,)}
    )
    rules = {k: v for k, v in rules.items() if not (k.startswith("preset_") and v is hashing.SEED)}
    with tempfile.TemporaryDirectory(prefix="bench-design-quality-") as tmp:
        dest = Path(args.keep or tmp)
        sets = {
            name: evalset.generate(spec, dest / name, max_designs=caps.get(name))
            for name, spec in evalset.SETS.items()
        }
        res = {
            set_name: {rule: evaluate(m, cfg) for rule, cfg in rules.items()}
            for set_name, m in sets.items()
        }
        for set_name, m in sets.items():
            res[set_name]["default_crop_alias"] = evaluate(m, hashing.DEFAULT, alias=True)
            res[set_name]["first_look_crop_alias"] = evaluate(m, FIRST_LOOK, alias=True)
        group_facts = {name: evaluate_group_facts(m) for name, m in sets.items()}
        history = {name: evaluate_jpeg_history(m) for name, m in sets.items()}
    held, tune, fresh = res["held_out"], res["tune"], res["fresh"]
    out = {
        "name": "design_quality",
        "baseline_s": round(fresh["design_doc_phash5"]["seconds"], 3),
        "ours_s": round(fresh["default"]["seconds"], 3),
        "ratio": round(fresh["design_doc_phash5"]["seconds"] / fresh["default"]["seconds"], 3),
        "designs_per_set": "all" if args.full else DESIGNS,
        "default_config": hashing.DEFAULT.to_dict(),
        "other_presets": sorted(k for k in rules if k.startswith("preset_")),
        "fresh_precision": fresh["default"]["precision"],
        "fresh_recall": fresh["default"]["recall"],
        "fresh_design_doc_precision": fresh["design_doc_phash5"]["precision"],
        "fresh_design_doc_recall": fresh["design_doc_phash5"]["recall"],
        "fresh2_precision": res["fresh2"]["default"]["precision"],
        "fresh2_recall": res["fresh2"]["default"]["recall"],
        "fresh2_crop_alias_precision": res["fresh2"]["default_crop_alias"]["precision"],
        "fresh2_crop_alias_recall": res["fresh2"]["default_crop_alias"]["recall"],
        "fresh2_design_doc_precision": res["fresh2"]["design_doc_phash5"]["precision"],
        "fresh2_design_doc_recall": res["fresh2"]["design_doc_phash5"]["recall"],
        "fresh3_precision": res["fresh3"]["default"]["precision"],
        "fresh3_recall": res["fresh3"]["default"]["recall"],
        "fresh3_crop_alias_precision": res["fresh3"]["default_crop_alias"]["precision"],
        "fresh3_crop_alias_recall": res["fresh3"]["default_crop_alias"]["recall"],
        "held_out_precision": held["default"]["precision"],
        "held_out_recall": held["default"]["recall"],
        "held_out_design_doc_precision": held["design_doc_phash5"]["precision"],
        "held_out_design_doc_recall": held["design_doc_phash5"]["recall"],
        "tune_precision": tune["default"]["precision"],
        "tune_recall": tune["default"]["recall"],
        "tune_design_doc_precision": tune["design_doc_phash5"]["precision"],
        "tune_design_doc_recall": tune["design_doc_phash5"]["recall"],
        "sets": {
            n: {"stored": len(m["stored"]), "queries": len(m["queries"])} for n, m in sets.items()
        },
        "fresh": {rule: _public(r) for rule, r in fresh.items()},
        "held_out": {rule: _public(r) for rule, r in held.items()},
        "tune": {rule: _public(r) for rule, r in tune.items()},
        "tune_wide": {rule: _public(r) for rule, r in res["tune_wide"].items()},
        "fresh2": {rule: _public(r) for rule, r in res["fresh2"].items()},
        "fresh3": {rule: _public(r) for rule, r in res["fresh3"].items()},
        "best_copy_facts": group_facts,
        "format_swaps": history,
        "target": {"precision": 0.99, "recall": 0.95, "on": "fresh"},
        "meets_target": (
            fresh["default"]["precision"] >= 0.99 and fresh["default"]["recall"] >= 0.95
        ),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
