"""Aggregate results per photo and per upload session, and draw the annotated image.

Quality score (0..1) of a photo = average detection confidence x detection coverage (detected /
(detected + estimated)) x (1 - 0.1 per warning state). Bands: ``high`` >= 0.75, ``medium`` >=
0.5, ``low`` > 0, ``none`` when nothing was found. Partial results are allowed: a photo in a
warning state still has its counts.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from PIL import Image, ImageDraw

from include.photos.analyze import PhotoAnalysis
from include.photos.models import Warning_


def quality(
    avg_confidence: float | None, detected: int, estimated: int, warnings: int
) -> tuple[float, str]:
    if detected + estimated == 0:
        return 0.0, "none"
    conf = float(avg_confidence or 0.0)
    coverage = detected / (detected + estimated)
    score = max(0.0, conf * coverage * (1.0 - 0.1 * warnings))
    band = "high" if score >= 0.75 else "medium" if score >= 0.5 else "low"
    return round(score, 4), band


def photo_summary(a: PhotoAnalysis, warnings: Mapping[str, str]) -> dict[str, Any]:
    """The per-photo aggregate written to ``photo_processing_sessions``."""
    detected, estimated = a.total_detected, a.total_estimated
    score, band = quality(a.avg_confidence, detected, estimated, len(warnings))
    sizes = a.size_classes()
    categories = {
        "plant": detected + estimated,
        "detected": detected,
        "estimated": estimated,
        "empty": a.total_empty,
        **{f"size_{k}": v for k, v in sizes.items()},
    }
    return {
        "total_detected": detected,
        "total_estimated": estimated,
        "total_empty_containers": a.total_empty,
        "avg_confidence": round(a.avg_confidence, 4) if a.avg_confidence is not None else None,
        "category_counts": categories,
        "quality_score": score,
        "quality_band": band,
        "detector_backend": a.backend,
        "regions": [
            {
                **r.region.to_dict(a.scale),
                "tiled": r.tiled,
                "detected": len(r.detections),
                "estimate": r.estimate.to_dict(a.scale),
                "containers": r.containers,
                "empty": r.empty,
            }
            for r in a.regions
        ],
    }


def annotate(a: PhotoAnalysis, warnings: Mapping[str, str], quality_line: str = "") -> bytes:
    """The annotated JPEG (work resolution): region outlines, detection masks and boxes,
    estimated patches, and a header with the counts and warnings."""
    import numpy as np

    base = a.image.convert("RGB")
    arr = np.asarray(base).copy()
    # detection masks: tint in yellow-green
    for d in a.detections:
        if d.mask is None:
            continue
        x0, y0 = int(d.x0), int(d.y0)
        h, w = d.mask.shape
        sub = arr[y0 : y0 + h, x0 : x0 + w]
        m = d.mask[: sub.shape[0], : sub.shape[1]]
        sub[m] = (0.55 * sub[m] + 0.45 * np.array([255, 230, 0])).astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    for r in a.regions:
        reg = r.region
        draw.rectangle([reg.x0, reg.y0, reg.x1 - 1, reg.y1 - 1], outline=(40, 120, 255), width=2)
        for d in r.detections:
            color = (0, 255, 0) if d.score >= 0.7 else (255, 165, 0)
            draw.rectangle([d.x0, d.y0, d.x1, d.y1], outline=color, width=2)
        for x0, y0, x1, y1 in r.estimate.patch_boxes:
            draw.rectangle([x0, y0, x1, y1], outline=(255, 0, 255), width=3)
            draw.text((x0 + 3, y0 + 3), "est", fill=(255, 0, 255))
    header = (
        f"detected {a.total_detected}  estimated {a.total_estimated}  empty {a.total_empty}"
        f"  backend {a.backend}  {quality_line}"
    )
    if warnings:
        header += "  WARN: " + ", ".join(sorted(warnings))
    draw.rectangle([0, 0, img.width, 18], fill=(0, 0, 0))
    draw.text((4, 3), header, fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def session_summary(jobs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate of an upload session from its jobs (``status`` and ``result`` of each)."""
    jobs = list(jobs)
    by_status = Counter(j["status"] for j in jobs)
    totals = Counter()
    confs: list[float] = []
    categories: Counter[str] = Counter()
    bands: Counter[str] = Counter()
    for j in jobs:
        res = j.get("result") or {}
        for k in ("total_detected", "total_estimated", "total_empty_containers"):
            totals[k] += int(res.get(k) or 0)
        if res.get("avg_confidence") is not None and res.get("total_detected"):
            confs.extend([float(res["avg_confidence"])] * int(res["total_detected"]))
        categories.update({k: int(v) for k, v in (res.get("category_counts") or {}).items()})
        if res.get("quality_band"):
            bands[res["quality_band"]] += 1
    total = len(jobs)
    return {
        "total_jobs": total,
        "by_status": dict(sorted(by_status.items())),
        "completed": by_status.get("completed", 0),
        "failed": by_status.get("failed", 0),
        "warnings": sum(by_status.get(w, 0) for w in Warning_.ALL),
        "pending": by_status.get("pending", 0) + by_status.get("processing", 0),
        **dict(totals),
        "avg_confidence": round(sum(confs) / len(confs), 4) if confs else None,
        "category_counts": dict(sorted(categories.items())),
        "quality_bands": dict(sorted(bands.items())),
    }


def upload_status(summary: Mapping[str, Any]) -> str:
    """The upload session's status from its summary (see ``UploadStatus``)."""
    total, failed = summary["total_jobs"], summary["failed"]
    if summary.get("pending"):
        return "processing"
    if total and failed == total:
        return "failed"
    if failed:
        return "partial"
    if summary["warnings"]:
        return "completed_with_warnings"
    return "completed"
