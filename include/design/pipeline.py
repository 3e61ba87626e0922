"""The steps of the ``design_upload`` DAG as plain functions (no Airflow): each takes and returns
per-file dicts of references and hashes (never pixels; the DAG hands them from step to step as
JSON files), isolates errors per file, and is safe to rerun.

1. :func:`process_batch` — per batch, in a process pool: validate, hash (the single decode path),
   resize/encode the output;
2. :func:`backfill_nas` — hash NAS files not seen before (once; rehash when size/mtime change);
3. :func:`check_duplicates` — the index (:class:`~include.design.dupindex.DupIndex`) holds the shop's
   database designs and NAS files; items are checked in key order and added as they are accepted,
   so duplicates within a batch and across batches of the run are found too;
4. :func:`upload_to_nas`, 5. :func:`record_designs`, 6. :func:`make_mockups`,
7. :func:`publish_listings`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Engine, select, update

from include.common.db import session_scope, upsert
from include.common.files import atomic_write_bytes, safe_name, sha256_file
from include.design import etsy as etsy_logic
from include.design import hashing, nas
from include.design import workers as workers_mod
from include.design.dupindex import DupIndex
from include.design.hashing import DupConfig, Hashes
from include.design.models import (
    DesignDuplicate,
    DesignImage,
    DesignListing,
    DesignMockup,
    DesignNasFile,
)

log = logging.getLogger(__name__)

OK, ERROR, NEW, DUPLICATE = "ok", "error", "new", "duplicate"


# ---------------------------------------------------------------- 1. process

process_batch = workers_mod.process_batch
process_file = workers_mod.process_file
hash_files = workers_mod.hash_files


# ---------------------------------------------------------------- 2. NAS backfill


def backfill_nas(
    engine: Engine,
    backend: nas.NasBackend,
    shop: str,
    config: DupConfig = hashing.DEFAULT,
    work_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    chunk: int = 256,
) -> dict[str, int]:
    """Hash the shop's NAS files that are neither our own uploads nor hashed before (same size and
    mtime), ``chunk`` files at a time in a process pool, committing each chunk (a crash loses at
    most one chunk of work). Unreadable files are stored with their error so they are not retried
    every run."""
    shop_dir = safe_name(shop)
    with session_scope(engine) as s:
        ours = set(s.scalars(select(DesignImage.nas_path).where(DesignImage.shop == shop)))
        seen = {
            r.path: (r.size, r.mtime_ns)
            for r in s.execute(
                select(DesignNasFile.path, DesignNasFile.size, DesignNasFile.mtime_ns).where(
                    DesignNasFile.shop == shop
                )
            )
        }
    counts = {"seen": 0, "hashed": 0, "errors": 0, "skipped": 0}
    todo: list[nas.RemoteFile] = []
    for f in backend.walk(shop_dir):
        if not nas.is_design_file(f.path):
            continue
        counts["seen"] += 1
        if f.path in ours or seen.get(f.path) == (f.size, f.mtime_ns):
            counts["skipped"] += 1
        else:
            todo.append(f)
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            locals_: list[str | None] = []
            fetch_errors: dict[int, str] = {}
            for n, f in enumerate(part):
                try:
                    if isinstance(backend, nas.MountedNas):
                        locals_.append(str(backend.open_path(f.path)))
                    else:
                        local = Path(tmp) / f"{n:05d}{PurePosixPath(f.path).suffix}"
                        backend.fetch(f.path, local)
                        locals_.append(str(local))
                except OSError as exc:
                    locals_.append(None)
                    fetch_errors[n] = f"cannot fetch from the NAS: {exc}"
            paths = [p for p in locals_ if p is not None]
            results = iter(workers_mod.hash_files_safe(paths, config.to_dict(), workers))
            rows = []
            for n, f in enumerate(part):
                row: dict[str, Any] = {
                    "shop": shop,
                    "path": f.path,
                    "size": f.size,
                    "mtime_ns": f.mtime_ns,
                }
                res = {"error": fetch_errors[n]} if n in fetch_errors else next(results)
                if "error" in res:
                    row.update(phash=None, dhash=None, colour=None, error=res["error"])
                    counts["errors"] += 1
                    log.warning("NAS file %s cannot be hashed: %s", f.path, res["error"])
                else:
                    row.update(res["hashes"], error=None)
                    counts["hashed"] += 1
                rows.append(row)
        with session_scope(engine) as s:
            upsert(s, DesignNasFile, rows, conflict_cols=("path",))
    return counts


# ---------------------------------------------------------------- 3. duplicates


def check_duplicates(
    engine: Engine,
    items: Iterable[dict[str, Any]],
    *,
    shop: str,
    run_id: str,
    config: DupConfig = hashing.DEFAULT,
) -> list[dict[str, Any]]:
    """Decide new / duplicate for every processed item and record the duplicates."""
    with session_scope(engine) as s:
        db_rows = s.execute(
            select(
                DesignImage.id,
                DesignImage.phash,
                DesignImage.dhash,
                DesignImage.colour,
                DesignImage.source_sha256,
                DesignImage.source_name,
                DesignImage.run_id,
                DesignImage.nas_path,
            ).where(DesignImage.shop == shop)
        ).all()
        nas_rows = s.execute(
            select(
                DesignNasFile.path, DesignNasFile.phash, DesignNasFile.dhash, DesignNasFile.colour
            ).where(DesignNasFile.shop == shop, DesignNasFile.phash.is_not(None))
        ).all()
    index = DupIndex(config)
    mine = {(r.source_name, r.source_sha256): r.id for r in db_rows if r.run_id == run_id}
    others = [r for r in db_rows if r.run_id != run_id]
    index.add_hex(
        [f"db:{r.id}" for r in others],
        [r.phash for r in others],
        [r.dhash for r in others],
        [r.colour for r in others],
    )
    ours = {r.nas_path for r in db_rows}
    nas_keep = [r for r in nas_rows if r.path not in ours]
    index.add_hex(
        [f"nas:{r.path}" for r in nas_keep],
        [r.phash for r in nas_keep],
        [r.dhash for r in nas_keep],
        [r.colour for r in nas_keep],
    )
    index.rebuild()

    decisions: list[dict[str, Any]] = []
    dup_rows: list[dict[str, Any]] = []
    for item in sorted(items, key=lambda i: i["key"]):
        if item["status"] != OK:
            decisions.append(item)
            continue
        h = Hashes.from_dict(item["hashes"])
        own_id = mine.get((item["key"], item["sha256"]))
        hit = None if own_id is not None else index.nearest(h)
        if hit is None:
            decisions.append({**item, "decision": NEW, "design_image_id": own_id})
            index.add(f"run:{item['key']}", h)
            continue
        kind, _, ref = hit.ref.partition(":")
        kind = {"db": "database", "nas": "nas", "run": "run"}[kind]
        dup = {
            "decision": DUPLICATE,
            "matched_kind": kind,
            "matched_ref": ref,
            "design_image_id": int(ref) if kind == "database" else None,
            **hit.match.to_dict(),
        }
        decisions.append({**item, **dup})
        dup_rows.append(
            {
                "run_id": run_id,
                "shop": shop,
                "source_name": item["key"],
                "source_sha256": item["sha256"],
                "matched_kind": kind,
                "matched_ref": ref,
                "design_image_id": dup["design_image_id"],
                **hit.match.to_dict(),
            }
        )
        log.warning(
            "duplicate: %s is a near-duplicate of %s %s (%s)", item["key"], kind, ref, hit.match
        )
    if dup_rows:
        with session_scope(engine) as s:
            upsert(s, DesignDuplicate, dup_rows, conflict_cols=("run_id", "source_name"))
    return decisions


# ---------------------------------------------------------------- 4. NAS upload


def upload_to_nas(
    backend: nas.NasBackend,
    decisions: Iterable[dict[str, Any]],
    *,
    shop: str,
    template: str,
    when: datetime,
) -> list[dict[str, Any]]:
    out = []
    for item in decisions:
        if item.get("decision") != NEW:
            out.append(item)
            continue
        ext = "png" if item["format"] == "PNG" else "jpg"
        fname = nas.nas_filename(PurePosixPath(item["key"]).stem, ext, when, item["sha256"], shop)
        rel = nas.design_relpath(shop, template, fname)
        try:
            result = backend.put(item["prepared"], rel)
        except Exception as exc:  # per file: the others go on; the item is not recorded
            log.error("NAS upload of %s failed: %s", item["key"], exc)
            out.append(
                {
                    **item,
                    "status": ERROR,
                    "decision": None,
                    "code": "nas",
                    "error": f"NAS upload failed: {exc}",
                }
            )
            continue
        out.append({**item, "nas_path": rel, "nas_result": result})
    return out


# ---------------------------------------------------------------- 5. database


def record_designs(
    engine: Engine,
    items: Iterable[dict[str, Any]],
    *,
    shop: str,
    template: str,
    user_id: str | None,
    run_id: str,
) -> list[dict[str, Any]]:
    """``INSERT ... ON CONFLICT (shop, phash, dhash) DO NOTHING``; an item whose hashes were stored
    meanwhile by another run becomes a duplicate of that row."""
    items = list(items)
    new = [i for i in items if i.get("decision") == NEW and i.get("nas_path")]
    rows = [
        {
            "shop": shop,
            "template": template,
            "user_id": user_id,
            "source_name": i["key"],
            "source_sha256": i["sha256"],
            "phash": i["hashes"]["phash"],
            "dhash": i["hashes"]["dhash"],
            "colour": i["hashes"]["colour"],
            "nas_path": i["nas_path"],
            "format": i["format"],
            "width": i["width"],
            "height": i["height"],
            "run_id": run_id,
        }
        for i in new
    ]
    ids: dict[str, int] = {}
    with session_scope(engine) as s:
        upsert(s, DesignImage, rows, conflict_cols=("shop", "phash", "dhash"), update_cols=[])
        for i in new:
            row = s.execute(
                select(DesignImage.id, DesignImage.source_sha256, DesignImage.run_id).where(
                    DesignImage.shop == shop,
                    DesignImage.phash == i["hashes"]["phash"],
                    DesignImage.dhash == i["hashes"]["dhash"],
                )
            ).one()
            if row.source_sha256 == i["sha256"] and row.run_id == run_id:
                ids[i["key"]] = row.id
            else:  # lost a race with another run (or an identical image is stored already)
                ids[i["key"]] = -row.id
                upsert(
                    s,
                    DesignDuplicate,
                    {
                        "run_id": run_id,
                        "shop": shop,
                        "source_name": i["key"],
                        "source_sha256": i["sha256"],
                        "matched_kind": "database",
                        "matched_ref": str(row.id),
                        "design_image_id": row.id,
                        "key_distance": 0,
                        "phash_distance": 0,
                        "dhash_distance": 0,
                        "colour_distance": 0.0,
                    },
                    conflict_cols=("run_id", "source_name"),
                )
        # within-run duplicates now point at the design they duplicate
        for i in items:
            if (
                i.get("decision") == DUPLICATE
                and i.get("matched_kind") == "run"
                and ids.get(i["matched_ref"], 0) > 0
            ):
                s.execute(
                    update(DesignDuplicate)
                    .where(
                        DesignDuplicate.run_id == run_id, DesignDuplicate.source_name == i["key"]
                    )
                    .values(design_image_id=ids[i["matched_ref"]])
                )
    out = []
    for i in items:
        if i["key"] in ids:
            did = ids[i["key"]]
            if did > 0:
                out.append({**i, "design_image_id": did})
            else:
                out.append(
                    {
                        **i,
                        "decision": DUPLICATE,
                        "matched_kind": "database",
                        "matched_ref": str(-did),
                        "design_image_id": -did,
                    }
                )
        else:
            out.append(i)
    return out


# ---------------------------------------------------------------- 6. mockups


def make_mockups(
    engine: Engine,
    backend: nas.NasBackend,
    items: Iterable[dict[str, Any]],
    *,
    templates_dir: str | os.PathLike[str],
    template: str,
    shop: str,
    work_dir: str | os.PathLike[str],
) -> list[dict[str, Any]]:
    from include.design import mockups

    items = list(items)
    new = {i["key"] for i in items if i.get("decision") == NEW and i.get("design_image_id")}
    if not new:
        return items
    try:
        tpl = mockups.load_template(templates_dir, template)
    except mockups.TemplateError as exc:
        log.error("no mockups: %s", exc)
        return [{**i, "mockup_error": str(exc)} if i["key"] in new else i for i in items]
    out_dir = Path(work_dir) / "mockups"
    out = []
    for i in items:
        if i["key"] not in new:
            out.append(i)
            continue
        made: list[dict[str, str]] = []
        try:
            src = Path(i["prepared"])
            if not src.exists():  # another worker's staging: take the stored design from the NAS
                src = out_dir / f"src_{PurePosixPath(i['nas_path']).name}"
                backend.fetch(i["nas_path"], src)
            for spec in tpl.mockups:
                rel = nas.mockup_relpath(
                    shop, template, PurePosixPath(i["nas_path"]).name, spec.name
                )
                local = out_dir / PurePosixPath(rel).name
                if not local.exists():
                    atomic_write_bytes(local, mockups.render(src, spec, tpl.max_side, tpl.quality))
                backend.put(local, rel)
                made.append({"mockup": spec.name, "nas_path": rel, "local": str(local)})
            with session_scope(engine) as s:
                upsert(
                    s,
                    DesignMockup,
                    [
                        {
                            "design_image_id": i["design_image_id"],
                            "template": template,
                            "mockup": m["mockup"],
                            "path": m["nas_path"],
                            "sha256": sha256_file(m["local"]),
                        }
                        for m in made
                    ],
                    conflict_cols=("design_image_id", "template", "mockup"),
                )
            out.append({**i, "mockups": made})
        except Exception as exc:  # per design
            log.error("mockups for %s failed: %s", i["key"], exc)
            out.append({**i, "mockups": made, "mockup_error": f"{type(exc).__name__}: {exc}"})
    return out


# ---------------------------------------------------------------- 7. Etsy


def publish_listings(
    engine: Engine,
    client: etsy_logic.EtsyClient | None,
    items: Iterable[dict[str, Any]],
    *,
    templates_dir: str | os.PathLike[str],
    template: str,
    shop: str,
    outbox_root: str | os.PathLike[str],
) -> list[dict[str, Any]]:
    """One draft listing per new design (or an outbox folder when ``client`` is None)."""
    from include.design import mockups

    items = list(items)
    try:
        tpl = mockups.load_template(templates_dir, template)
        title, listing_cfg = tpl.title, tpl.listing
    except mockups.TemplateError:
        title, listing_cfg = template, {}
    if client is None:
        log.warning(
            "No Etsy connection configured: listings are written to the outbox %s", outbox_root
        )
    out = []
    stop: str | None = None
    for i in items:
        if i.get("decision") != NEW or not i.get("design_image_id") or not i.get("mockups"):
            out.append(i)
            continue
        did = int(i["design_image_id"])
        tag = etsy_logic.idempotency_tag(shop, i["sha256"])
        payload = etsy_logic.listing_payload(
            title=title,
            stem=PurePosixPath(i.get("source_key", i["key"])).stem,
            listing=listing_cfg,
            tag=tag,
        )
        images = [m["local"] for m in i["mockups"]]
        with session_scope(engine) as s:
            upsert(
                s,
                DesignListing,
                {"design_image_id": did, "shop": shop, "idempotency_tag": tag, "state": "pending"},
                conflict_cols=("design_image_id",),
                update_cols=[],
            )
            row = s.scalars(select(DesignListing).where(DesignListing.design_image_id == did)).one()
            state, known = row.state, row.listing_id
        if state in ("complete", "outbox"):
            out.append({**i, "listing": {"state": state, "listing_id": known}})
            continue
        if stop:
            _set_listing(engine, did, state="failed", error=stop)
            out.append({**i, "listing": {"state": "failed", "error": stop}})
            continue
        try:
            if client is None:
                folder = etsy_logic.write_outbox(
                    outbox_root,
                    shop=shop,
                    tag=tag,
                    payload=payload,
                    images=images,
                    design_ref=i["nas_path"],
                )
                _set_listing(engine, did, state="outbox", outbox_path=str(folder), error=None)
                out.append({**i, "listing": {"state": "outbox", "outbox": str(folder)}})
                continue

            def record(listing_id: int, _did: int = did) -> None:
                _set_listing(engine, _did, state="created", listing_id=listing_id)

            res = etsy_logic.publish(
                client,
                payload=payload,
                tag=tag,
                images=images,
                known_listing_id=known,
                on_listing=record,
                alt_text=payload["title"],
            )
            _set_listing(
                engine,
                did,
                state="complete",
                listing_id=res.listing_id,
                images=res.image_ids,
                error=None,
            )
            out.append(
                {
                    **i,
                    "listing": {
                        "state": "complete",
                        "listing_id": res.listing_id,
                        "created": res.created,
                    },
                }
            )
        except (etsy_logic.EtsyQuotaExhausted, etsy_logic.EtsyAuthError) as exc:
            stop = str(exc)  # no point in trying the others now
            _set_listing(engine, did, state="failed", error=stop)
            out.append({**i, "listing": {"state": "failed", "error": stop}})
        except etsy_logic.EtsyError as exc:
            _set_listing(engine, did, state="failed", error=str(exc))
            out.append({**i, "listing": {"state": "failed", "error": str(exc)}})
    return out


def listing_backlog(
    engine: Engine,
    backend: nas.NasBackend,
    *,
    shop: str,
    exclude: Iterable[int],
    work_dir: str | os.PathLike[str],
) -> list[dict[str, Any]]:
    """Designs of the shop from earlier runs whose listing is not finished (e.g. the daily quota
    ran out): items for :func:`publish_listings`, their mockups fetched back from the NAS."""
    skip = set(exclude)
    out: list[dict[str, Any]] = []
    with session_scope(engine) as s:
        rows = s.execute(
            select(DesignImage, DesignListing.state)
            .join(DesignListing, DesignListing.design_image_id == DesignImage.id)
            .where(
                DesignImage.shop == shop, DesignListing.state.in_(("pending", "created", "failed"))
            )
            .order_by(DesignImage.id)
        ).all()
        mocks = {
            r.id: s.scalars(
                select(DesignMockup)
                .where(DesignMockup.design_image_id == r.id)
                .order_by(DesignMockup.id)
            ).all()
            for r, _state in rows
        }
    for img, _state in rows:
        if img.id in skip or not mocks.get(img.id):
            continue
        made = []
        for m in mocks[img.id]:
            local = Path(work_dir) / "backlog" / PurePosixPath(m.path).name
            if not (local.exists() and sha256_file(local) == m.sha256):
                local.unlink(missing_ok=True)
                backend.fetch(m.path, local)
            made.append({"mockup": m.mockup, "nas_path": m.path, "local": str(local)})
        out.append(
            {
                "key": f"backlog:{img.source_name}",
                "source_key": img.source_name,
                "status": OK,
                "decision": NEW,
                "design_image_id": img.id,
                "sha256": img.source_sha256,
                "nas_path": img.nas_path,
                "mockups": made,
                "backlog": True,
            }
        )
    return out


def _set_listing(engine: Engine, design_image_id: int, **values: Any) -> None:
    with session_scope(engine) as s:
        s.execute(
            update(DesignListing)
            .where(DesignListing.design_image_id == design_image_id)
            .values(**values)
        )


# ---------------------------------------------------------------- report


def summarise(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    items = list(items)
    errors = {
        i["key"]: {"code": i.get("code"), "error": i.get("error")}
        for i in items
        if i["status"] == ERROR
    }
    dups = {
        i["key"]: f"{i['matched_kind']}:{i['matched_ref']}"
        for i in items
        if i.get("decision") == DUPLICATE
    }
    new = sorted(
        i["key"]
        for i in items
        if i.get("decision") == NEW and i.get("design_image_id") and not i.get("backlog")
    )
    listings = {i["key"]: i["listing"] for i in items if i.get("listing")}
    mock_errors = {i["key"]: i["mockup_error"] for i in items if i.get("mockup_error")}
    return {
        "files": len(items),
        "new": new,
        "duplicates": dups,
        "errors": errors,
        "mockup_errors": mock_errors,
        "listings": listings,
    }
