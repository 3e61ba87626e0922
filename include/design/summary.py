"""The run summary of ``design_upload`` (:class:`include.common.results.RunSummary`): every input
file's outcome, each listing previewed (title, tags, price, outbox folder or Etsy listing id) with
a mockup thumbnail, duplicates with the copy that was kept, better copies and their answers, and
the connections that were missing (named, never a silent fallback). Airflow-free: pictures are
published through the ``publish(local_path, name) -> url`` callable the caller passes in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.common.results import ItemError, Picture, RunSummary, Section

DAG_ID = "design_upload"


@dataclass(frozen=True)
class Connections:
    """Which external systems the run actually used."""

    nas_fallback: str | None = None  # the local folder used because nas_default is missing
    etsy_outbox: str | None = None  # the outbox used because etsy_default is missing


def warnings_for(conns: Connections, listings_to_outbox: int) -> list[str]:
    out = []
    if conns.nas_fallback:
        out.append(
            "no NAS connection (nas_default): designs and mockups were stored in the local "
            f"folder {conns.nas_fallback} of the worker, not on the NAS"
        )
    if conns.etsy_outbox:
        out.append(
            f"no Etsy connection (etsy_default): {listings_to_outbox} listing(s) went to the "
            f"outbox {conns.etsy_outbox}, nothing was sent to Etsy"
        )
    return out


def build_summary(
    items: Iterable[dict[str, Any]],
    *,
    run_id: str,
    shop: str,
    conns: Connections,
    replacements: Sequence[dict[str, Any]] = (),
    publish: Callable[[str, str], str | None] = lambda path, name: None,
) -> RunSummary:
    items = sorted(items, key=lambda i: i["key"])
    uploads = [i for i in items if not i.get("backlog")]
    new = [i for i in items if i.get("decision") == "new" and i.get("design_image_id")]
    dups = [i for i in uploads if i.get("decision") == "duplicate"]
    better = [i for i in uploads if i.get("decision") == "better_copy"]
    skipped = [i for i in uploads if i.get("status") == "skipped"]
    errors = [
        ItemError(i["key"], i.get("error") or "failed", i.get("code") or "")
        for i in uploads
        if i.get("status") == "error"
    ]
    errors += [
        ItemError(i["key"], i["mockup_error"], "mockups") for i in items if i.get("mockup_error")
    ]
    errors += [
        ItemError(i["key"], i["listing"].get("error") or "listing failed", "etsy")
        for i in items
        if (i.get("listing") or {}).get("state") == "failed"
    ]
    outbox = sum(1 for i in items if (i.get("listing") or {}).get("state") == "outbox")
    rows = []
    for i in new:
        lst = i.get("listing") or {}
        prev = i.get("preview") or {}
        thumb = None
        mocks = i.get("mockups") or []
        if mocks and mocks[0].get("local") and Path(mocks[0]["local"]).is_file():
            url = publish(mocks[0]["local"], f"mockups/{Path(mocks[0]['local']).name}")
            thumb = Picture(url, mocks[0].get("mockup", "")) if url else None
        where = (
            f"Etsy listing {lst['listing_id']}"
            if lst.get("listing_id")
            else (f"outbox {lst['outbox']}" if lst.get("outbox") else lst.get("state", "—"))
        )
        rows.append(
            {
                "mockup": thumb,
                "file": i.get("source_key", i["key"]),
                "title": prev.get("title", ""),
                "tags": ", ".join(prev.get("tags", [])),
                "price": prev.get("price", ""),
                "listing": where,
                "NAS": i.get("nas_path") or "",
            }
        )
    sections = []
    if rows:
        sections.append(
            Section(
                "New designs and their listings",
                "Each listing as it was sent to Etsy (or written to the outbox).",
                columns=["mockup", "file", "title", "tags", "price", "listing", "NAS"],
                rows=rows,
            )
        )
    if dups:
        sections.append(
            Section(
                "Duplicates (not stored)",
                "Each upload that is a near-duplicate, with the copy that was kept.",
                columns=["file", "kept copy", "where", "note"],
                rows=[
                    {
                        "file": i["key"],
                        "kept copy": i.get("matched_name") or i.get("matched_ref", ""),
                        "where": {
                            "run": "this upload",
                            "database": "stored design",
                            "nas": "NAS",
                        }.get(i.get("matched_kind", ""), ""),  # fmt: skip
                        "note": i.get("kept_stored")
                        or (
                            f"removed from the NAS: {i['removed_from_nas']} (another run stored "
                            "it first)"
                            if i.get("removed_from_nas")
                            else ""
                        ),
                    }
                    for i in dups
                ],
            )
        )
    if better or replacements:
        answered = {(r["design_image_id"], r["candidate_sha256"]): r for r in replacements}
        sections.append(
            Section(
                "Better copies of stored designs",
                "A human decides in the approval task whether the stored design is replaced.",
                columns=["file", "stored design", "why better", "answer"],
                rows=[
                    {
                        "file": i["key"],
                        "stored design": i.get("matched_name", ""),
                        "why better": i.get("better_reason", ""),
                        "answer": _answer(answered.get((i["design_image_id"], i["sha256"]))),
                    }
                    for i in better
                ],
            )
        )
    if skipped:
        sections.append(
            Section(
                "Files not processed",
                columns=["file", "why"],
                rows=[{"file": i["key"], "why": i.get("error", "")} for i in skipped],
            )
        )
    counts: dict[str, int | float | str] = {
        "files": len(uploads),
        "new designs": len([i for i in new if not i.get("backlog")]),
        "duplicates": len(dups),
        "better copies": len(better),
        "not processed": len(skipped),
        "errors": len([i for i in uploads if i.get("status") == "error"]),
        "listings": sum(1 for i in items if (i.get("listing") or {}).get("state") == "complete"),
        "in outbox": outbox,
    }
    headline = (
        f"{counts['new designs']} new, {len(dups)} duplicates, {len(better)} better copies, "
        f"{len(skipped)} not processed of {len(uploads)} files (shop {shop})"
    )
    return RunSummary(
        dag_id=DAG_ID,
        run_id=run_id,
        title=f"Design upload · {shop}",
        headline=headline,
        counts=counts,
        errors=errors,
        warnings=warnings_for(conns, outbox),
        sections=sections,
        total_items=len(uploads),
    )


def _answer(r: dict[str, Any] | None) -> str:
    if not r:
        return "waiting for an answer"
    by = f" by {r['answered_by']}" if r.get("answered_by") else ""
    return {"replaced": f"replaced{by}", "keep": f"kept the stored design{by}"}.get(
        r.get("state", ""), r.get("answer") or r.get("state", "")
    )
