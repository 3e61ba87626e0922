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
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Engine, select, update

from include.common.db import session_scope, upsert
from include.common.files import atomic_write_bytes, safe_name, sha256_file
from include.design import etsy as etsy_logic
from include.design import hashing, nas, quality
from include.design import workers as workers_mod
from include.design.dupindex import DupIndex
from include.design.hashing import DupConfig, Hashes
from include.design.models import (
    DesignDuplicate,
    DesignImage,
    DesignListing,
    DesignMockup,
    DesignNasFile,
    DesignReplacement,
    DesignShopLock,
)

log = logging.getLogger(__name__)

OK, ERROR, SKIPPED = "ok", "error", "skipped"
NEW, DUPLICATE, BETTER = "new", "duplicate", "better_copy"
PENDING, KEEP, REPLACE, REPLACED = "pending", "keep", "replace", "replaced"


# ---------------------------------------------------------------- 1. process

process_batch = workers_mod.process_batch
process_file = workers_mod.process_file
hash_files = workers_mod.hash_files


# ---------------------------------------------------------------- 2. NAS backfill


def _hash_remote(
    backend: nas.NasBackend,
    paths: Sequence[str],
    config: DupConfig,
    work_dir: str | os.PathLike[str] | None,
    workers: int | None,
) -> list[dict[str, Any]]:
    """Per NAS path ``{"hashes", "crop_alias"}`` (one decode) or ``{"error"}``: a mounted NAS is
    read in place, another is fetched to a temporary folder first."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        locals_: list[str | None] = []
        fetch_errors: dict[int, str] = {}
        for n, path in enumerate(paths):
            try:
                if isinstance(backend, nas.MountedNas):
                    locals_.append(str(backend.open_path(path)))
                else:
                    local = Path(tmp) / f"{n:05d}{PurePosixPath(path).suffix}"
                    backend.fetch(path, local)
                    locals_.append(str(local))
            except OSError as exc:
                locals_.append(None)
                fetch_errors[n] = f"cannot fetch from the NAS: {exc}"
        results = iter(
            workers_mod.hash_files_safe([p for p in locals_ if p], config.to_dict(), workers)
        )
        return [
            {"error": fetch_errors[n]} if n in fetch_errors else next(results)
            for n in range(len(paths))
        ]


def backfill_nas(
    engine: Engine,
    backend: nas.NasBackend,
    shop: str,
    config: DupConfig = hashing.DEFAULT,
    work_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    chunk: int = 256,
) -> dict[str, Any]:
    """Hash the shop's NAS files that are neither our own uploads nor hashed before (same size and
    mtime, crop alias known), ``chunk`` files at a time in a process pool, committing each chunk (a
    crash loses at most one chunk of work). Unreadable files are stored with their error so they
    are not retried every run. Then :func:`backfill_design_aliases` (stored designs without a
    crop alias: rows from before migration 0008)."""
    shop_dir = safe_name(shop)
    with session_scope(engine) as s:
        ours = set(s.scalars(select(DesignImage.nas_path).where(DesignImage.shop == shop)))
        seen = {
            r.path: (r.size, r.mtime_ns)
            for r in s.execute(
                select(DesignNasFile.path, DesignNasFile.size, DesignNasFile.mtime_ns).where(
                    DesignNasFile.shop == shop,
                    # hashed with its alias, or unreadable (an error row): not again
                    (DesignNasFile.alias_phash.is_not(None)) | (DesignNasFile.phash.is_(None)),
                )
            )
        }
    counts: dict[str, Any] = {"seen": 0, "hashed": 0, "errors": 0, "skipped": 0}
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
        rows = []
        for f, res in zip(
            part,
            _hash_remote(backend, [f.path for f in part], config, work_dir, workers),
            strict=True,
        ):
            row: dict[str, Any] = {
                "shop": shop,
                "path": f.path,
                "size": f.size,
                "mtime_ns": f.mtime_ns,
            }
            if "error" in res:
                row.update(phash=None, dhash=None, colour=None, error=res["error"])
                row.update(alias_phash=None, alias_dhash=None)
                counts["errors"] += 1
                log.warning("NAS file %s cannot be hashed: %s", f.path, res["error"])
            else:
                alias = res["crop_alias"]
                row.update(res["hashes"], error=None)
                row.update(alias_phash=alias["phash"], alias_dhash=alias["dhash"])
                counts["hashed"] += 1
            rows.append(row)
        with session_scope(engine) as s:
            upsert(s, DesignNasFile, rows, conflict_cols=("path",))
    aliases = backfill_design_aliases(
        engine, backend, shop, config, work_dir=work_dir, workers=workers, chunk=chunk
    )
    counts["aliases_added"] = sum(1 for o in aliases if o["outcome"] == OK)
    counts["alias_errors"] = [o for o in aliases if o["outcome"] == ERROR]
    return counts


def backfill_design_aliases(
    engine: Engine,
    backend: nas.NasBackend,
    shop: str,
    config: DupConfig = hashing.DEFAULT,
    work_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    chunk: int = 256,
) -> list[dict[str, Any]]:
    """Fill the crop alias (``alias_phash``/``alias_dhash``) of the shop's stored designs that
    have none — rows stored before migration 0008 — from their file on the NAS, ``chunk`` rows a
    commit. Returns one outcome per row (``ok``, or ``error`` with the reason). Safe to rerun:
    only rows still without an alias are read; a row whose file cannot be read keeps none (its
    whole-image hashes still apply) and is tried again on the next run. The alias is that of the
    stored (prepared) copy, the file the design is kept as."""
    with session_scope(engine) as s:
        todo = s.execute(
            select(DesignImage.id, DesignImage.nas_path)
            .where(DesignImage.shop == shop, DesignImage.alias_phash.is_(None))
            .order_by(DesignImage.id)
        ).all()
    out: list[dict[str, Any]] = []
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        results = _hash_remote(backend, [r.nas_path for r in part], config, work_dir, workers)
        with session_scope(engine) as s:
            for r, res in zip(part, results, strict=True):
                if "error" in res:
                    log.warning(
                        "no crop alias for design %s (%s): %s", r.id, r.nas_path, res["error"]
                    )
                    out.append(
                        {
                            "id": r.id,
                            "nas_path": r.nas_path,
                            "outcome": ERROR,
                            "error": res["error"],
                        }
                    )
                    continue
                alias = res["crop_alias"]
                s.execute(
                    update(DesignImage)
                    .where(DesignImage.id == r.id, DesignImage.alias_phash.is_(None))
                    .values(alias_phash=alias["phash"], alias_dhash=alias["dhash"])
                )
                out.append({"id": r.id, "nas_path": r.nas_path, "outcome": OK})
    return out


# ---------------------------------------------------------------- 3. duplicates


def _ok_in_rank_order(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The processed items, best copy first (:func:`include.design.quality.rank`)."""
    ok = [i for i in items if i["status"] == OK]
    return sorted(ok, key=lambda i: quality.rank(i.get("quality"), i["key"]), reverse=True)


def _alias(item: dict[str, Any]) -> Hashes | None:
    """The item's crop alias (:func:`include.design.hashing.crop_alias`), when it was hashed."""
    d = item.get("crop_alias")
    return Hashes.from_dict(d) if d else None


def _alias_columns(item: dict[str, Any]) -> dict[str, str | None]:
    """The item's crop alias as stored (``alias_phash``/``alias_dhash`` hex; None if not hashed:
    backfilled from the NAS on a later run)."""
    d = item.get("crop_alias") or {}
    return {"alias_phash": d.get("phash"), "alias_dhash": d.get("dhash")}


def _nearest(index: DupIndex, h: Hashes, alias: Hashes | None) -> Any:
    """The nearest stored match of ``h``; else of its crop alias (a stored copy cut by a few % per
    side: the upload's centre is that copy)."""
    hit = index.nearest(h)
    return hit if hit is not None or alias is None else index.nearest(alias)


#: Largest near-duplicate group whose members are compared pixel to pixel (the best by the
#: per-file facts; the others keep their per-file facts only).
MAX_GROUP_COMPARED = 16


def with_group_facts(
    items: Sequence[dict[str, Any]], config: DupConfig = hashing.DEFAULT
) -> list[dict[str, Any]]:
    """``items`` with ``quality.cropped`` / ``quality.watermark`` set on the members of each
    near-duplicate group of the upload (:func:`include.design.copies.relative_facts` on their
    prepared files): a crop or a watermarked copy then ranks below the full, clean copy."""
    from include.design import copies

    ok = [i for i in _ok_in_rank_order(items) if i.get("quality") and i.get("prepared")]
    parent = list(range(len(ok)))

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    # whole images in one index, crop aliases in another: a later crop finds an earlier
    # original's alias, a later original's alias finds an earlier crop
    index, aliases = DupIndex(config), DupIndex(config)
    for n, item in enumerate(ok):
        h, alias = Hashes.from_dict(item["hashes"]), _alias(item)
        hits = index.query(h) + aliases.query(h) + (index.query(alias) if alias else [])
        for hit in hits:
            parent[root(int(hit.ref))] = root(n)
        index.add(str(n), h)
        if alias is not None:
            aliases.add(str(n), alias)
    groups: dict[int, list[int]] = {}
    for n in range(len(ok)):
        groups.setdefault(root(n), []).append(n)
    facts: dict[str, dict[str, Any]] = {}
    for members in groups.values():
        members = members[:MAX_GROUP_COMPARED]
        if len(members) < 2:
            continue
        try:
            rel = copies.relative_facts([ok[m]["prepared"] for m in members])
        except (OSError, ValueError) as exc:  # a prepared file gone: per-file facts only
            log.warning("cannot compare the copies %s: %s", [ok[m]["key"] for m in members], exc)
            continue
        for m, r in zip(members, rel, strict=True):
            facts[ok[m]["key"]] = dict(r)
    return [
        {**i, "quality": {**i["quality"], **facts[i["key"]]}} if i["key"] in facts else i
        for i in items
    ]


def _library_index(
    config: DupConfig, rows: Sequence[tuple[str, Any, Any]], extra: int = 0
) -> DupIndex:
    """The index of stored rows (``(kind, id, row)``; a row has ``phash``, ``dhash``, ``colour``,
    ``alias_phash``, ``alias_dhash``): each row by its hashes and, when known, its crop alias
    (:func:`include.design.hashing.crop_alias`), so a crop of a stored design arriving later is
    found as well as an original arriving after its stored crop. ``extra``: room for the run's
    items (added with their aliases as they are accepted). Past
    :data:`include.design.dupindex.SPILL_ROWS` rows its verification records are in temporary
    files: the caller closes it."""
    index = DupIndex(config, capacity=len(rows) + extra, alias_capacity=len(rows) + extra)
    index.add_hex(
        [f"{kind}:{key}" for kind, key, _r in rows],
        [r.phash for _k, _key, r in rows],
        [r.dhash for _k, _key, r in rows],
        [r.colour for _k, _key, r in rows],
        [r.alias_phash for _k, _key, r in rows],
        [r.alias_dhash for _k, _key, r in rows],
    )
    index.rebuild()
    return index


def check_duplicates(
    engine: Engine,
    items: Iterable[dict[str, Any]],
    *,
    shop: str,
    run_id: str,
    config: DupConfig = hashing.DEFAULT,
    backend: Any = None,
) -> list[dict[str, Any]]:
    """Decide new / duplicate / better copy for every processed item and record the duplicates.

    Items are checked best copy first (:mod:`include.design.quality`; a crop or a watermarked
    copy measured against its group by :func:`with_group_facts`), so of each near-duplicate
    group within the upload the best member is the one kept and the others are its duplicates.
    An item that duplicates a stored design but is a better copy of it becomes a ``better_copy``:
    it is not stored, and a :class:`DesignReplacement` row asks a human whether to replace the
    stored design (unless an earlier answer exists: that answer applies, nobody is asked again).
    With ``backend`` (the NAS) the stored file is fetched and compared with the upload for crops
    and watermarks (:func:`include.design.copies.relative_facts`) before "better" is decided.
    """
    items = list(items)
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
                DesignImage.quality,
                DesignImage.alias_phash,
                DesignImage.alias_dhash,
            ).where(DesignImage.shop == shop)
        ).all()
        nas_rows = s.execute(
            select(
                DesignNasFile.path,
                DesignNasFile.phash,
                DesignNasFile.dhash,
                DesignNasFile.colour,
                DesignNasFile.alias_phash,
                DesignNasFile.alias_dhash,
            ).where(DesignNasFile.shop == shop, DesignNasFile.phash.is_not(None))
        ).all()
        answers = {
            (r.design_image_id, r.candidate_sha256): r
            for r in s.scalars(select(DesignReplacement).where(DesignReplacement.shop == shop))
        }
    db_max_id = max((r.id for r in db_rows), default=0)
    stored = {r.id: r for r in db_rows}
    mine = {(r.source_name, r.source_sha256): r.id for r in db_rows if r.run_id == run_id}
    others = [r for r in db_rows if r.run_id != run_id]
    ours = {r.nas_path for r in db_rows}
    nas_keep = [r for r in nas_rows if r.path not in ours]
    # the library both ways: each stored design also by its crop alias (a later crop finds it)
    library = [("db", r.id, r) for r in others] + [("nas", r.path, r) for r in nas_keep]
    index = _library_index(config, library, extra=len(items))

    decided: dict[str, dict[str, Any]] = {}
    dup_rows: list[dict[str, Any]] = []
    asks: list[dict[str, Any]] = []
    items = with_group_facts(items, config)
    for item in _ok_in_rank_order(items):
        item = {**item, "db_max_id": db_max_id}
        h = Hashes.from_dict(item["hashes"])
        own_id = mine.get((item["key"], item["sha256"]))
        hit = None if own_id is not None else _nearest(index, h, _alias(item))
        if hit is None:
            decided[item["key"]] = {**item, "decision": NEW, "design_image_id": own_id}
            index.add(f"run:{item['key']}", h, _alias(item))
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
        if kind == "database":
            row = stored[int(ref)]
            dup["matched_name"] = row.source_name
            dup["matched_nas_path"] = row.nas_path
            item, stored_q = _compared_with_stored(backend, item, row)
            better = _better_copy(
                item, row, answers, shop=shop, run_id=run_id, stored_quality=stored_q
            )
            if better is not None:
                ask = better.pop("ask", None)
                dup.update(better)
                if ask:
                    asks.append(ask)
        elif kind == "run":
            dup["matched_name"] = ref
        else:
            dup["matched_nas_path"] = ref
        decided[item["key"]] = {**item, **dup}
        if dup["decision"] == DUPLICATE:
            dup_rows.append(
                _dup_row(run_id, shop, item, kind, ref, dup["design_image_id"], hit.match)
            )
        log.warning(
            "%s: %s is a near-duplicate of %s %s (%s)",
            dup["decision"], item["key"], kind, ref, hit.match,
        )  # fmt: skip
    index.close()  # its verification records' files (a large library spills them to disk)
    with session_scope(engine) as s:
        if dup_rows:
            upsert(s, DesignDuplicate, dup_rows, conflict_cols=("run_id", "source_name"))
        if asks:
            upsert(
                s,
                DesignReplacement,
                asks,
                conflict_cols=("shop", "design_image_id", "candidate_sha256"),
                update_cols=[],
            )
    return [decided.get(i["key"], i) for i in sorted(items, key=lambda i: i["key"])]


def _dup_row(
    run_id: str, shop: str, item: dict[str, Any], kind: str, ref: str, did: int | None, m: Any
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "shop": shop,
        "source_name": item["key"],
        "source_sha256": item["sha256"],
        "matched_kind": kind,
        "matched_ref": ref,
        "design_image_id": did,
        **m.to_dict(),
    }


def _compared_with_stored(
    backend: Any, item: dict[str, Any], row: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``item`` and the stored ``row``'s quality facts with crop/watermark measured against each
    other (the stored file fetched from the NAS); the per-file facts when that is not possible
    (no backend, no facts recorded, the same file, the stored file unreadable)."""
    stored_q = row.quality
    if (
        backend is None
        or not row.quality
        or not item.get("quality")
        or not item.get("prepared")
        or item["sha256"] == row.source_sha256
    ):
        return item, stored_q
    rel = _relative_to_stored(backend, item, row.nas_path)
    if rel is None:
        return item, stored_q
    mine_q = item["quality"]
    item = {**item, "quality": {
        **mine_q, **{k: bool(mine_q.get(k)) or v for k, v in rel[0].items()}
    }}  # fmt: skip
    return item, {**row.quality, **rel[1]}


def _relative_to_stored(backend: Any, item: dict[str, Any], nas_path: str) -> list[Any] | None:
    """Crop/watermark facts of the upload and the stored file, measured against each other."""
    from include.design import copies

    with tempfile.TemporaryDirectory(prefix="design-stored-") as tmp:
        local = Path(tmp) / f"stored{PurePosixPath(nas_path).suffix}"
        try:
            backend.fetch(nas_path, local)
            return list(copies.relative_facts([item["prepared"], str(local)]))
        except (OSError, ValueError) as exc:  # the stored file unreadable: per-file facts only
            log.warning("cannot compare %s with the stored %s: %s", item["key"], nas_path, exc)
            return None


def _better_copy(
    item: dict[str, Any],
    row: Any,
    answers: dict[Any, Any],
    *,
    shop: str,
    run_id: str,
    stored_quality: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """``None`` when ``item`` is no better than the stored ``row``; else the decision fields.
    ``stored_quality``: the row's facts with those measured against ``item`` (crop, watermark)."""
    stored_q = row.quality if stored_quality is None else stored_quality
    if not quality.better(item.get("quality"), stored_q):
        return None
    why = quality.reasons(item.get("quality"), stored_q)
    answer = answers.get((row.id, item["sha256"]))
    if answer is not None and answer.state == KEEP:
        return {"kept_stored": f"better copy ({why}), but {answer.answered_by or 'a human'} "
                "chose to keep the stored design"}  # fmt: skip
    out: dict[str, Any] = {"decision": BETTER, "better_reason": why}
    if answer is None:
        out["ask"] = {
            "shop": shop,
            "design_image_id": row.id,
            "candidate_sha256": item["sha256"],
            "candidate_name": item["key"],
            "run_id": run_id,
            "candidate": {
                k: item.get(k)
                for k in (
                    "key",
                    "sha256",
                    "hashes",
                    "crop_alias",
                    "quality",
                    "prepared",
                    "format",
                    "width",
                    "height",
                    "location",
                )
            },  # fmt: skip
            "reason": why,
            "state": PENDING,
        }
    else:
        out["replacement_state"] = answer.state
    return out


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


def lock_shop(session: Any, shop: str, holder: str) -> None:
    """Serialize the duplicate check + insert of ``shop`` until the transaction ends.

    One portable statement, ``INSERT INTO design_shop_locks ... ON CONFLICT (shop) DO UPDATE``:
    on PostgreSQL the upsert takes the shop's row lock (a second run's upsert waits for the first
    transaction to commit, other shops are not blocked); on SQLite any write takes the database
    write lock (the second writer waits, ``busy_timeout`` 30 s), so the check that follows always
    reads the other run's committed rows."""
    upsert(
        session,
        DesignShopLock,
        {"shop": shop, "holder": holder, "taken": 1},
        conflict_cols=("shop",),
        update_cols=["holder"],
    )
    session.execute(
        update(DesignShopLock)
        .where(DesignShopLock.shop == shop)
        .values(taken=DesignShopLock.taken + 1)
    )


def record_designs(
    engine: Engine,
    items: Iterable[dict[str, Any]],
    *,
    shop: str,
    template: str,
    user_id: str | None,
    run_id: str,
    backend: nas.NasBackend | None = None,
    config: DupConfig = hashing.DEFAULT,
) -> list[dict[str, Any]]:
    """Insert the new designs, serialized per shop (:func:`lock_shop`): under the lock the items
    are checked again against the designs other runs stored since :func:`check_duplicates` read
    the database, so two simultaneous runs never store two copies of one design. An item that
    lost such a race becomes a duplicate (or a better copy) of the winner's row, and its NAS file
    is removed after the commit (``backend``), so no NAS file is left without a row."""
    items = list(items)
    new = [i for i in _ok_in_rank_order(items) if i.get("decision") == NEW and i.get("nas_path")]
    since = min((int(i.get("db_max_id", 0)) for i in new), default=0)
    ids: dict[str, int] = {}
    lost: dict[str, dict[str, Any]] = {}
    losers: list[str] = []
    with session_scope(engine) as s:
        lock_shop(s, shop, run_id)
        rows = s.execute(
            select(
                DesignImage.id,
                DesignImage.phash,
                DesignImage.dhash,
                DesignImage.colour,
                DesignImage.source_name,
                DesignImage.source_sha256,
                DesignImage.run_id,
                DesignImage.nas_path,
                DesignImage.quality,
                DesignImage.alias_phash,
                DesignImage.alias_dhash,
            ).where(DesignImage.shop == shop, DesignImage.id > since)
        ).all()
        mine = {(r.source_name, r.source_sha256): r.id for r in rows if r.run_id == run_id}
        others = [r for r in rows if r.run_id != run_id]
        index = _library_index(config, [("db", r.id, r) for r in others], extra=len(new))
        by_id = {r.id: r for r in others}
        answers = {
            (r.design_image_id, r.candidate_sha256): r
            for r in s.scalars(select(DesignReplacement).where(DesignReplacement.shop == shop))
        }
        for i in new:
            own = mine.get((i["key"], i["sha256"]))
            if own is not None:  # this run stored it before (a retry)
                ids[i["key"]] = own
                continue
            h = Hashes.from_dict(i["hashes"])
            hit = _nearest(index, h, _alias(i))
            if hit is not None:  # another run stored a near-duplicate meanwhile
                row = by_id[int(hit.ref.partition(":")[2])]
                lost[i["key"]] = _lost_race(
                    s, i, row, hit.match, answers, shop=shop, run_id=run_id, backend=backend
                )
                losers.append(i["nas_path"])
                continue
            upsert(
                s,
                DesignImage,
                _design_row(i, shop=shop, template=template, user_id=user_id, run_id=run_id),
                conflict_cols=("shop", "phash", "dhash"),
                update_cols=[],
            )
            row = s.execute(
                select(DesignImage).where(
                    DesignImage.shop == shop,
                    DesignImage.phash == i["hashes"]["phash"],
                    DesignImage.dhash == i["hashes"]["dhash"],
                )
            ).scalar_one()
            if row.source_sha256 == i["sha256"] and row.run_id == run_id:
                ids[i["key"]] = row.id
                index.add(f"db:{row.id}", h, _alias(i))
            else:  # bit-identical hashes stored already (before this run's snapshot)
                lost[i["key"]] = _lost_race(
                    s, i, row, hashing.compare(h, h), answers, shop=shop, run_id=run_id,
                    backend=backend,
                )  # fmt: skip
                losers.append(i["nas_path"])
        # within-run duplicates now point at the design they duplicate
        for i in items:
            if (
                i.get("decision") == DUPLICATE
                and i.get("matched_kind") == "run"
                and ids.get(i["matched_ref"])
            ):
                s.execute(
                    update(DesignDuplicate)
                    .where(
                        DesignDuplicate.run_id == run_id, DesignDuplicate.source_name == i["key"]
                    )
                    .values(design_image_id=ids[i["matched_ref"]])
                )
    index.close()
    for rel in losers:  # after the commit: the rows that point at NAS files are final
        if backend is not None and rel not in {r.nas_path for r in rows if r.run_id != run_id}:
            try:
                backend.delete(rel)
            except Exception as exc:  # the run's outcome still says what happened
                log.error("could not remove %s from the NAS: %s", rel, exc)
    out = []
    for i in items:
        if i["key"] in ids:
            out.append({**i, "design_image_id": ids[i["key"]]})
        elif i["key"] in lost:
            out.append(lost[i["key"]])
        else:
            out.append(i)
    return out


def _design_row(
    i: dict[str, Any], *, shop: str, template: str, user_id: str | None, run_id: str
) -> dict[str, Any]:
    return {
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
        "quality": i.get("quality"),
        **_alias_columns(i),  # the crop alias from the same decode (workers.process_file)
    }


def _lost_race(
    s: Any,
    i: dict[str, Any],
    row: Any,
    match: Any,
    answers: dict[Any, Any],
    *,
    shop: str,
    run_id: str,
    backend: Any = None,
) -> dict[str, Any]:
    """``i`` lost the race to ``row``: a duplicate (recorded) or a better copy (asked about).
    Decided as :func:`check_duplicates` decides against a stored design: crop and watermark
    measured against the winner's file on the NAS (``backend``), per-file facts without it."""
    i, stored_q = _compared_with_stored(backend, i, row)
    out = {
        **i,
        "decision": DUPLICATE,
        "matched_kind": "database",
        "matched_ref": str(row.id),
        "matched_name": row.source_name,
        "matched_nas_path": row.nas_path,
        "design_image_id": row.id,
        "nas_path": None,
        "removed_from_nas": i["nas_path"],
        **match.to_dict(),
    }
    better = _better_copy(i, row, answers, shop=shop, run_id=run_id, stored_quality=stored_q)
    if better is not None:
        ask = better.pop("ask", None)
        out.update(better)
        if ask:
            upsert(
                s,
                DesignReplacement,
                ask,
                conflict_cols=("shop", "design_image_id", "candidate_sha256"),
                update_cols=[],
            )
    if out["decision"] == DUPLICATE:
        upsert(
            s,
            DesignDuplicate,
            _dup_row(run_id, shop, i, "database", str(row.id), row.id, match),
            conflict_cols=("run_id", "source_name"),
        )
    log.warning("%s lost the race to design %s (%s)", i["key"], row.id, row.source_name)
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
        title = tpl.title
        listing_cfg = etsy_logic.shop_listing(tpl.listing, tpl.shops, shop)
    except mockups.TemplateError:
        title, listing_cfg = template, {}
    if client is None:
        log.warning(
            "No Etsy connection configured: listings are written to the outbox %s", outbox_root
        )
    out = []
    stop: str | None = None
    stop_kind = ""
    for i in items:
        if i.get("decision") != NEW or not i.get("design_image_id") or not i.get("mockups"):
            out.append(i)
            continue
        did = int(i["design_image_id"])
        tag = etsy_logic.idempotency_tag(shop, i["sha256"])
        q = i.get("quality") or {}
        payload = etsy_logic.listing_payload(
            title=title,
            listing=listing_cfg,
            tag=tag,
            facts=etsy_logic.listing_facts(
                product=title,
                shop=shop,
                colours=q.get("colours") or [],
                width=int(i.get("width") or 0),
                height=int(i.get("height") or 0),
            ),
        )
        preview = {
            "title": payload["title"],
            "tags": payload["tags"].split(","),
            "price": payload["price"],
        }
        i = {**i, "preview": preview}
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
            out.append({**i, "listing": {"state": "failed", "error": stop, "kind": stop_kind}})
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
            stop_kind = "quota" if isinstance(exc, etsy_logic.EtsyQuotaExhausted) else "auth"
            _set_listing(engine, did, state="failed", error=stop)
            out.append({**i, "listing": {"state": "failed", "error": stop, "kind": stop_kind}})
        except etsy_logic.EtsyError as exc:  # by type, never by message text
            kind = "transient" if exc.status >= 500 else "rejected"
            _set_listing(engine, did, state="failed", error=str(exc))
            out.append({**i, "listing": {"state": "failed", "error": str(exc), "kind": kind}})
    return out


# ---------------------------------------------------------------- 8. better copies (approval)

from include.design.approval import KEEP_OPTION, REPLACE_OPTION  # noqa: E402


def replacement_questions(
    engine: Engine,
    items: Iterable[dict[str, Any]],
    *,
    shop: str,
    picture: Callable[[str, str], str | None],
) -> list[dict[str, Any]]:
    """One approval question per better copy of this run still waiting for an answer (a
    ``pending`` :class:`DesignReplacement`), and the answers already given but not yet applied
    (``replace``: applied without asking). ``picture(nas_or_local_path, name)`` publishes a picture
    and returns its URL (or None). Questions carry ``subject``/``body`` (Markdown, for the HITL
    form) and the replacement's keys."""
    out = []
    cands = [i for i in items if i.get("decision") == BETTER]
    if not cands:
        return out
    with session_scope(engine) as s:
        rows = {
            (r.design_image_id, r.candidate_sha256): r
            for r in s.scalars(select(DesignReplacement).where(DesignReplacement.shop == shop))
        }
        designs = {
            r.id: r
            for r in s.scalars(
                select(DesignImage).where(
                    DesignImage.id.in_([int(i["design_image_id"]) for i in cands])
                )
            )
        }
    for i in cands:
        did = int(i["design_image_id"])
        rep = rows.get((did, i["sha256"]))
        if rep is None or rep.state not in (PENDING, REPLACE):
            continue
        stored = designs[did]
        new_url = picture(i["prepared"], f"better/{did}_candidate{Path(i['prepared']).suffix}")
        old_url = picture(
            f"nas:{stored.nas_path}", f"better/{did}_stored{Path(stored.nas_path).suffix}"
        )
        q_new, q_old = i.get("quality") or {}, stored.quality or {}
        subject = f"Replace stored design #{did} with the better copy {i['key']}?"
        body = "\n".join(
            [
                f"**{i['key']}** (this upload) is a near-duplicate of the stored design "
                f"**{stored.source_name}** (#{did}, `{stored.nas_path}`) and a better copy: "
                f"{rep.reason}.",
                "",
                f"- this upload: {_facts(q_new)}" + (f" — [picture]({new_url})" if new_url else ""),
                f"- stored: {_facts(q_old)}" + (f" — [picture]({old_url})" if old_url else ""),
                "",
                f"*{REPLACE_OPTION}*: the better file goes to the NAS, the design row points at "
                "it and its mockups are made again (the old file stays on the NAS; the Etsy "
                f"listing is not changed). *{KEEP_OPTION}*: nothing changes, and this file is "
                "not asked about again.",
            ]
        )
        out.append(
            {
                "subject": subject,
                "body": body,
                "design_image_id": did,
                "candidate_sha256": i["sha256"],
                "answered": rep.state == REPLACE,
            }
        )
    return out


def _facts(q: dict[str, Any]) -> str:
    if not q:
        return "no recorded facts"
    kind = "lossless" if q.get("lossless") else f"JPEG q{q.get('jpeg_quality')}"
    if q.get("jpeg_history"):
        kind += " (a lossless re-save of a JPEG)"
    alpha = ", transparent" if q.get("alpha") else ""
    return f"{q.get('pixels', 0) / 1e6:.2f} MP, {kind}{alpha}, {q.get('size', 0)} bytes"


def apply_replacements(
    engine: Engine,
    backend: nas.NasBackend,
    questions: Sequence[dict[str, Any]],
    answers: Sequence[dict[str, Any] | None],
    *,
    shop: str,
    template: str,
    when: datetime,
    run_id: str,
) -> list[dict[str, Any]]:
    """Record each human answer (the chosen option, who chose it) and apply *replace*.

    ``answers[n]`` is the approval task's output for ``questions[n]`` (``chosen_options``,
    ``responded_by_user``), or None for a question answered before (state ``replace``). An
    answer nobody gave (timeout, the default applied) leaves the question pending: it is asked
    again next time. *Replace*: the candidate file goes to the NAS under a new name (the old file
    is kept), the design row takes its hashes, quality and path, under the shop lock."""
    answers = list(answers)
    if len(answers) != len(questions):
        raise ValueError(f"{len(questions)} question(s), {len(answers)} answer(s)")
    out = []
    for q, ans in zip(questions, answers, strict=True):
        key = (q["design_image_id"], q["candidate_sha256"])
        with session_scope(engine) as s:
            rep = s.scalars(
                select(DesignReplacement).where(
                    DesignReplacement.shop == shop,
                    DesignReplacement.design_image_id == key[0],
                    DesignReplacement.candidate_sha256 == key[1],
                )
            ).one()
            state, by = rep.state, rep.answered_by
            if state == PENDING and ans is not None:
                chosen = (ans.get("chosen_options") or [KEEP_OPTION])[0]
                who = ans.get("responded_by_user")
                if who is None:  # the timeout's default: nobody decided, ask again next time
                    out.append({**q, "state": PENDING, "answer": "no answer (timeout)"})
                    continue
                by = who.get("name") or who.get("id") if isinstance(who, dict) else str(who)
                state = REPLACE if chosen == REPLACE_OPTION else KEEP
                rep.state, rep.answered_by = state, by
            cand = dict(rep.candidate)
        if state != REPLACE:
            out.append({**q, "state": state, "answered_by": by})
            continue
        ext = "png" if cand["format"] == "PNG" else "jpg"
        fname = nas.nas_filename(PurePosixPath(cand["key"]).stem, ext, when, cand["sha256"], shop)
        rel = nas.design_relpath(shop, template, fname)
        backend.put(cand["prepared"], rel)
        with session_scope(engine) as s:
            lock_shop(s, shop, run_id)
            img = s.get(DesignImage, key[0])
            rep = s.scalars(
                select(DesignReplacement).where(
                    DesignReplacement.design_image_id == key[0],
                    DesignReplacement.candidate_sha256 == key[1],
                )
            ).one()
            old = img.nas_path
            img.source_name, img.source_sha256 = cand["key"], cand["sha256"]
            img.phash, img.dhash = cand["hashes"]["phash"], cand["hashes"]["dhash"]
            img.colour, img.quality = cand["hashes"]["colour"], cand["quality"]
            for column, value in _alias_columns(cand).items():
                setattr(img, column, value)
            img.nas_path, img.format = rel, cand["format"]
            img.width, img.height = cand["width"], cand["height"]
            rep.state, rep.old_nas_path, rep.new_nas_path = REPLACED, old, rel
        out.append(
            {
                **q,
                "state": REPLACED,
                "answered_by": by,
                "old_nas_path": old,
                "new_nas_path": rel,
                # an item for make_mockups: the design's mockups are made again from the new file
                "item": {
                    "key": cand["key"],
                    "status": OK,
                    "decision": NEW,
                    "design_image_id": key[0],
                    "sha256": cand["sha256"],
                    "prepared": cand["prepared"],
                    "nas_path": rel,
                },
            }
        )
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


def record_outcomes(
    engine: Engine, items: Iterable[dict[str, Any]], *, shop: str, run_id: str, pipeline: str
) -> int:
    """Every file's outcome in the ``item_records`` ledger, one row per run and file
    (``<run_id>/<shop>/<key>``): a rerun adds its own rows and never rewrites an earlier run's."""
    from include.common.items import record_item
    from include.common.models import ItemStatus

    n = 0
    with session_scope(engine) as s:
        for i in items:
            if i.get("backlog"):
                continue
            if i["status"] == ERROR:
                status, detail = ItemStatus.FAILED, {"code": i.get("code")}
            elif i["status"] == SKIPPED or i.get("decision") in (DUPLICATE, BETTER):
                status = ItemStatus.SKIPPED
                detail = {
                    "decision": i.get("decision") or "not processed",
                    "kept": i.get("matched_name") or i.get("matched_ref"),
                    "reason": i.get("error") or i.get("better_reason"),
                }
            else:
                status = ItemStatus.DONE
                detail = {
                    "design_image_id": i.get("design_image_id"),
                    "nas_path": i.get("nas_path"),
                    "listing": i.get("listing"),
                }
            record_item(
                s, pipeline=pipeline, kind="file", key=f"{run_id}/{shop}/{i['key']}",
                status=status, checksum=i.get("sha256"), error=i.get("error"), detail=detail,
                run_id=run_id,
            )  # fmt: skip
            n += 1
    return n


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
