"""The reef pipelines' steps as plain functions (the DAGs only wire them).

Every step is idempotent: the app database ledger (``item_records``) says which folders are done,
uploads compare the artifact's listing with what should be there and send only what is missing,
commits are verified by listing, and a folder is recorded ``done`` only after its commit is
verified. Bad input (missing parameters/coordinates, absent or corrupt tiles, a channel without
tiles, an unreadable folder) marks that folder ``failed`` with the reason and never raises, so
the other folders go on. Source folders are only read.

``hook`` is a :class:`imaging.hooks.hypha.HyphaArtifactHook` (duck-typed: no Airflow import here).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from include.common.db import session_scope
from include.common.items import get_item, keys_with_status, record_item
from include.common.models import ItemStatus
from include.reef.acquisition import AcquisitionError, check_folder
from include.reef.folders import list_timelapse_folders, select_folders
from include.reef.upload import (
    UploadFile,
    artifact_alias,
    diff_listing,
)

log = logging.getLogger(__name__)

TREATMENT = "reef_treatment_upload"
STITCH = "reef_stitch_upload"
KIND_FOLDER = "folder"
KIND_STITCH = "stitch"


def folder_key(experiment_id: str, folder: str) -> str:
    return f"{experiment_id}/{folder}"


def collection_alias(experiment_id: str) -> str:
    return f"{artifact_alias(experiment_id)}-gallery"


def treatment_dataset_alias(experiment_id: str) -> str:
    return f"{artifact_alias(experiment_id)}-treatment"


def stitch_dataset_alias(experiment_id: str, taken_at: str) -> str:
    stamp = datetime.fromisoformat(taken_at).strftime("%Y-%m-%d_%H-%M-%S")
    return artifact_alias(experiment_id, stamp)


def _record(engine: Engine, pipeline: str, kind: str, key: str, status: str, **kw: Any) -> None:
    with session_scope(engine) as s:
        record_item(s, pipeline=pipeline, kind=kind, key=key, status=status, **kw)


# --------------------------------------------------------------------------- selection
def select_for_run(
    engine: Engine,
    pipeline: str,
    *,
    base_dir: str,
    experiment_id: str,
    start_folder: str | None = None,
    end_folder: str | None = None,
    reference_time: float | None = None,
    settle_seconds: float = 300.0,
    redo: bool = False,
    base_dir_named: bool = True,
) -> dict[str, Any]:
    """The folders this run processes (as dicts), plus what was skipped or rejected and why.

    A base dir that does not exist is an error when the user named it (``base_dir_named``); the
    installation's default folder not existing yet just means nothing to do (a quiet note)."""
    if not experiment_id:
        raise ValueError("experiment_id is required")
    if not base_dir_named and not Path(base_dir).is_dir():
        note = f"base dir {base_dir} does not exist yet: nothing to do"
        log.info(note)
        return {
            "selected": [],
            "skipped": {},
            "start": None,
            "end": None,
            "rejected": {},
            "note": note,
        }
    listing = list_timelapse_folders(base_dir, experiment_id)
    with session_scope(engine) as s:
        done = keys_with_status(s, pipeline, KIND_FOLDER)
    prefix = f"{experiment_id}/"
    processed = {k[len(prefix) :] for k in done if k.startswith(prefix)}
    sel = select_folders(
        listing.folders,
        processed,
        start_folder=start_folder or None,
        end_folder=end_folder or None,
        reference_time=reference_time,
        settle_seconds=settle_seconds,
        redo=redo,
    )
    out = sel.as_dict()
    out["rejected"] = listing.rejected
    for name, why in {**sel.skipped, **listing.rejected}.items():
        log.info("not processing %s: %s", name, why)
    return out


# --------------------------------------------------------------------------- treatment
def treatment_upload_folder(
    engine: Engine,
    hook: Any,
    folder: dict[str, str],
    *,
    experiment_id: str,
    work_dir: str | Path,
    run_id: str | None = None,
    redo: bool = False,
) -> dict[str, Any]:
    """Check the folder's tiles (missing or corrupt ones are warnings: the folder is archived as
    it is), zip it, stage the experiment's treatment dataset, upload, commit, verify, record."""
    from include.reef.zipstream import UnsafeEntryError, zip_folder

    name, key = folder["name"], folder_key(experiment_id, folder["name"])
    with session_scope(engine) as s:
        rec = get_item(s, TREATMENT, KIND_FOLDER, key)
        if rec is not None and rec.status == ItemStatus.DONE and not redo:
            return {"folder": name, "status": "already_done"}
    _record(engine, TREATMENT, KIND_FOLDER, key, ItemStatus.PROCESSING, run_id=run_id)
    warnings = check_folder(folder["path"])
    for w in warnings:
        log.warning("folder %s: %s (archived as it is)", name, w)
    zip_path = Path(work_dir) / experiment_id / f"{name}.zip"
    try:
        z = zip_folder(folder["path"], zip_path)
    except (OSError, UnsafeEntryError) as exc:
        reason = f"cannot archive folder: {exc}"
        log.error("folder %s failed: %s", name, reason)
        _record(engine, TREATMENT, KIND_FOLDER, key, ItemStatus.FAILED, error=reason, run_id=run_id)
        zip_path.unlink(missing_ok=True)
        return {"folder": name, "status": "failed", "reason": reason}
    remote = f"{name}.zip"
    coll = hook.ensure_collection(
        collection_alias(experiment_id),
        {
            "name": f"Reef imaging {experiment_id}",
            "description": f"Timelapse data of {experiment_id}",
        },
    )
    ds_alias = treatment_dataset_alias(experiment_id)
    committed = hook.read(ds_alias, stage=True)
    if committed and committed.get("versions") and committed.get("staging") is None:
        sums = ((committed.get("manifest") or {}).get("sha256")) or {}
        listing = hook.list_files(ds_alias)
        if listing.get(remote) == z.size and sums.get(remote) == z.sha256:
            log.info("%s already committed with the same content: recording only", remote)
            return _treatment_done(engine, key, name, z, hook, ds_alias, run_id, zip_path, warnings)
    art = hook.ensure_staged_dataset(
        ds_alias,
        coll,
        {
            "name": f"{experiment_id} treatment",
            "description": f"Zipped timelapse folders of {experiment_id}",
        },
    )
    hook.upload_files(ds_alias, [UploadFile(str(zip_path), remote, z.size)])
    # the archive's checksum goes into the manifest with the commit: a later size-equal archive
    # with other content is not mistaken for this one
    manifest = dict((art or {}).get("manifest") or {})
    manifest["sha256"] = {**(manifest.get("sha256") or {}), remote: z.sha256}
    hook.call("edit", hook.artifact_id(ds_alias), manifest=manifest, stage=True)
    hook.commit(ds_alias, expected={remote: z.size})
    return _treatment_done(engine, key, name, z, hook, ds_alias, run_id, zip_path, warnings)


def _treatment_done(
    engine: Engine,
    key: str,
    name: str,
    z: Any,
    hook: Any,
    ds: str,
    run_id: str | None,
    zip_path: Path,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    remote = f"{name}.zip"
    listing = hook.list_files(ds)
    if listing.get(remote) != z.size:
        raise RuntimeError(
            f"after commit {remote} is listed with size {listing.get(remote)}, expected {z.size}"
        )
    _record(
        engine,
        TREATMENT,
        KIND_FOLDER,
        key,
        ItemStatus.DONE,
        checksum=z.sha256,
        run_id=run_id,
        detail={
            "artifact": hook.artifact_id(ds),
            "file": remote,
            "size": z.size,
            "entries": z.entries,
            "skipped": z.skipped,
            "warnings": warnings or [],
        },
    )
    zip_path.unlink(missing_ok=True)  # our own temp archive; the source folder is untouched
    return {
        "folder": name,
        "status": "done",
        "file": remote,
        "size": z.size,
        "warnings": warnings or [],
    }


# --------------------------------------------------------------------------- stitch
def stitch_one(
    engine: Engine,
    folder: dict[str, str],
    *,
    experiment_id: str,
    stitched_dir: str | Path,
    channels: list[str] | None = None,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    redo: bool = False,
) -> dict[str, Any]:
    """Stitch one folder (or reuse a finished stitch made with the same options from the same
    files), validate it (ome-zarr-models + ome-zarr's reader) and draw its preview pictures."""
    from include.reef.pictures import write_previews
    from include.reef.stitch import StitchOptions, stitch_folder, validate_zarr

    name, key = folder["name"], folder_key(experiment_id, folder["name"])
    base = {"folder": name, "taken_at": folder["taken_at"]}
    with session_scope(engine) as s:
        rec = get_item(s, STITCH, KIND_FOLDER, key)
        if rec is not None and rec.status == ItemStatus.DONE and not redo:
            return {**base, "status": "already_done"}
    zarr_path = Path(stitched_dir) / experiment_id / f"{name}.zarr"
    marker = zarr_path / "stitch_result.json"
    before = marker.stat().st_mtime_ns if marker.exists() else None
    try:
        opts = StitchOptions.from_dict(options)
        res = stitch_folder(
            folder["path"], zarr_path, channels=channels or None, options=opts, force=redo
        )
        report = validate_zarr(zarr_path, res)
        previews = write_previews(zarr_path, res, preview_dir(stitched_dir, experiment_id, name))
    except (AcquisitionError, ValueError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("folder %s failed: %s", name, reason)
        _record(engine, STITCH, KIND_FOLDER, key, ItemStatus.FAILED, error=reason, run_id=run_id)
        return {**base, "status": "failed", "reason": reason}
    reused = before is not None and marker.stat().st_mtime_ns == before
    reg = {k: v for k, v in res.registration.items() if k != "positions"}
    _record(
        engine,
        STITCH,
        KIND_STITCH,
        key,
        ItemStatus.DONE,
        run_id=run_id,
        checksum=stitch_id(res),
        detail={
            "zarr_path": str(zarr_path),
            "validation": report,
            "shape": list(res.shape),
            "registration": reg,
        },
    )
    return {
        **base,
        "status": "stitched",
        "reused": reused,
        "zarr_path": str(zarr_path),
        "channels": [c.name for c in res.channels],
        "stitch_id": stitch_id(res),
        "shape": list(res.shape),
        "registration": reg,
        "previews": previews,
        "dataset": stitch_dataset_alias(experiment_id, folder["taken_at"]),
    }


def stitch_id(res: Any) -> str:
    """Identifies a stitch's bytes: same source files + same options give the same output."""
    import hashlib

    meta = json.loads(Path(res.zarr_path, "stitch_result.json").read_text())
    text = json.dumps(
        {"source": meta.get("source"), "options": meta.get("options")}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def preview_dir(stitched_dir: str | Path, experiment_id: str, folder: str) -> Path:
    """Kept after the zarr is removed: the experiment's timelapse is built from these."""
    return Path(stitched_dir) / experiment_id / "previews" / folder


_SHARD = re.compile(r"^c\.(?P<c>\d+)\.(?P<row>\d+)\.\d+$")


def row_zip_dir(zarr_path: str | Path) -> Path:
    z = Path(zarr_path)
    return z.with_name(f"{z.name}.rowzips")


def _shards_of(zarr_path: Path, channel_index: int) -> list[UploadFile]:
    out = []
    for lvl in sorted(
        (p for p in zarr_path.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    ):
        for f in sorted(lvl.iterdir()):
            m = _SHARD.match(f.name)
            if m and int(m["c"]) == channel_index:
                out.append(UploadFile(str(f), f"{lvl.name}/{f.name}", f.stat().st_size))
    return out


def channel_files(
    zarr_path: str | Path, channel_index: int, zip_rows: bool = False
) -> list[UploadFile]:
    """The shard files of one channel (``<level>/c.<channel>.<row>.<col>``) as uploaded: as they
    are, or (``zip_rows``) each level's shards of one chunk row packed into
    ``<level>/c.<channel>.<row>.zip`` (stored, deterministic), as the original uploader did for
    Hypha's zip streaming."""
    files = _shards_of(Path(zarr_path), channel_index)
    if not zip_rows:
        return files
    from include.reef.zipstream import zip_files

    out: list[UploadFile] = []
    rows: dict[tuple[str, str], list[UploadFile]] = {}
    for f in files:
        parent, _, name = f.remote.rpartition("/")
        m = _SHARD.match(name)
        rows.setdefault((parent, m["row"] if m else ""), []).append(f)
    for (parent, row), members in sorted(rows.items()):
        remote = f"{parent}/c.{channel_index}.{row}.zip"
        dest = row_zip_dir(zarr_path) / remote
        z = zip_files([(Path(f.local), f.remote.rpartition("/")[2]) for f in members], dest)
        out.append(UploadFile(str(dest), remote, z.size))
    return sorted(out, key=lambda f: f.remote)


def metadata_files(
    zarr_path: str | Path, previews: dict[str, str] | None = None
) -> list[UploadFile]:
    """The image's metadata (root and level ``zarr.json``, ``stitch_result.json``) and pictures."""
    z = Path(zarr_path)
    files = [
        UploadFile(str(z / n), n, (z / n).stat().st_size)
        for n in ("zarr.json", "stitch_result.json")
    ]
    for lvl in sorted(
        (p for p in z.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    ):
        m = lvl / "zarr.json"
        files.append(UploadFile(str(m), f"{lvl.name}/zarr.json", m.stat().st_size))
    for _label, path in sorted((previews or {}).items()):
        p = Path(path)
        if p.is_file():
            files.append(UploadFile(str(p), f"previews/{p.name}", p.stat().st_size))
    return files


def expected_files(
    zarr_path: str | Path,
    channels: list[str],
    zip_rows: bool = False,
    previews: dict[str, str] | None = None,
) -> list[UploadFile]:
    """Everything the dataset must hold: every channel's shards plus metadata and pictures."""
    files = metadata_files(zarr_path, previews)
    for ci in range(len(channels)):
        files += channel_files(zarr_path, ci, zip_rows)
    return files


def prepare_stitch_datasets(
    hook: Any, stitched: list[dict[str, Any]], *, experiment_id: str, zip_rows: bool = False
) -> dict[str, Any]:
    """Stage one dataset per stitched folder; fan out one upload item per (folder, channel).

    Staged files are skipped by size only when the dataset already holds this very stitch
    (``stitch_id`` in its manifest, set at commit): after a re-stitch (other options, other
    source files, ``redo``) every file is sent again, whatever its size."""
    ready = [s for s in stitched if s and s.get("status") == "stitched"]
    if not ready:
        return {"channels": [], "folders": []}
    coll = hook.ensure_collection(
        collection_alias(experiment_id),
        {
            "name": f"Reef imaging {experiment_id}",
            "description": f"Timelapse data of {experiment_id}",
        },
    )
    channels, folders = [], []
    for s in ready:
        art = hook.ensure_staged_dataset(
            s["dataset"],
            coll,
            {
                "name": f"Image map {s['folder']}",
                "description": f"Stitched OME-Zarr of {s['folder']}",
                "channels": s["channels"],
            },
        )
        same = ((art or {}).get("manifest") or {}).get("stitch_id") == s["stitch_id"]
        folders.append({**s, "zip_rows": zip_rows})
        channels += [
            {
                "folder": s["folder"],
                "dataset": s["dataset"],
                "zarr_path": s["zarr_path"],
                "channel": c,
                "channel_index": ci,
                "zip_rows": zip_rows,
                "skip_same_size": same,
            }
            for ci, c in enumerate(s["channels"])
        ]
    return {"channels": channels, "folders": folders}


def _upload_missing(
    hook: Any, dataset: str, files: list[UploadFile], skip_same_size: bool = True
) -> dict[str, int]:
    staged = {}
    if skip_same_size:
        staged = hook.list_files(dataset, stage=True)
    todo = [f for f in files if staged.get(f.remote) != f.size]
    if todo:
        hook.upload_files(dataset, todo)
    return {"uploaded": len(todo), "already_there": len(files) - len(todo)}


def upload_channel(hook: Any, item: dict[str, Any]) -> dict[str, Any]:
    """Upload one channel's shards into the staged dataset (only what is not there yet, when the
    dataset holds the same stitch)."""
    files = channel_files(item["zarr_path"], int(item["channel_index"]), bool(item.get("zip_rows")))
    counts = _upload_missing(hook, item["dataset"], files, bool(item.get("skip_same_size")))
    return {**item, **counts, "files": len(files), "bytes": sum(f.size for f in files)}


def commit_stitched(
    engine: Engine,
    hook: Any,
    folder: dict[str, Any],
    *,
    experiment_id: str,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Upload the metadata and pictures, set the manifest's ``stitch_id``, commit once all
    channels are in, verify the listing, then remove the local zarr and record the folder."""
    key = folder_key(experiment_id, folder["folder"])
    previews = folder.get("previews") or {}
    files = expected_files(
        folder["zarr_path"], folder["channels"], bool(folder.get("zip_rows")), previews
    )
    expected = {f.remote: f.size for f in files}
    art = hook.read(folder["dataset"], stage=True)
    if art is None or art.get("staging") is not None or not art.get("versions"):
        hook.upload_files(folder["dataset"], metadata_files(folder["zarr_path"], previews))
        manifest = dict((art or {}).get("manifest") or {})
        manifest.update(
            {
                "name": manifest.get("name") or f"Image map {folder['folder']}",
                "channels": folder["channels"],
                "stitch_id": folder["stitch_id"],
                "shape": folder.get("shape"),
                "registration": folder.get("registration") or {},
            }
        )
        hook.call("edit", hook.artifact_id(folder["dataset"]), manifest=manifest, stage=True)
        hook.commit(folder["dataset"], expected=expected)
    listing = hook.list_files(folder["dataset"])
    diff = diff_listing(expected, listing)
    if not diff.ok:
        raise RuntimeError(
            f"committed dataset {folder['dataset']} does not match: {diff.describe()}"
        )
    _record(
        engine,
        STITCH,
        KIND_FOLDER,
        key,
        ItemStatus.DONE,
        run_id=run_id,
        detail={
            "artifact": hook.artifact_id(folder["dataset"]),
            "files": len(expected),
            "bytes": sum(expected.values()),
            "channels": folder["channels"],
            "previews": previews,
        },
    )
    # derived output, verified remotely: the zarr and its row zips go (previews stay)
    shutil.rmtree(folder["zarr_path"], ignore_errors=True)
    shutil.rmtree(row_zip_dir(folder["zarr_path"]), ignore_errors=True)
    return {
        "folder": folder["folder"],
        "status": "done",
        "files": len(expected),
        "dataset": folder["dataset"],
        "artifact": hook.artifact_id(folder["dataset"]),
        "previews": previews,
        "taken_at": folder.get("taken_at"),
    }


def as_list(pulled: Any) -> list[dict[str, Any]]:
    """XCom pulled from a mapped task: one dict (a single map index), a sequence, or None."""
    if pulled is None:
        return []
    if isinstance(pulled, dict):
        return [pulled]
    return [r for r in pulled if isinstance(r, dict)]


def summarize(results: list[dict[str, Any]], selection: dict[str, Any]) -> dict[str, Any]:
    results = [r for r in results if r]
    failed = {r["folder"]: r.get("reason", "") for r in results if r.get("status") == "failed"}
    return {
        "done": sorted(r["folder"] for r in results if r.get("status") == "done"),
        "already_done": sorted(r["folder"] for r in results if r.get("status") == "already_done"),
        "failed": failed,
        "skipped": selection.get("skipped", {}),
        "rejected": selection.get("rejected", {}),
    }


# --------------------------------------------------------------------------- timelapse
def timelapse_dataset_alias(experiment_id: str) -> str:
    return f"{artifact_alias(experiment_id)}-timelapse"


def build_timelapse(
    hook: Any | None,
    *,
    experiment_id: str,
    stitched_dir: str | Path,
    committed: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """The experiment's timelapse (composite of every timepoint with previews, oldest first),
    rebuilt when this run committed a timepoint and uploaded (``hook``) to the dataset
    ``<experiment>-timelapse`` in the gallery. None when there is nothing new."""
    from include.reef.folders import parse_folder_time
    from include.reef.pictures import COMPOSITE, write_timelapse

    if not any(r and r.get("status") == "done" for r in committed):
        return None
    root = Path(stitched_dir) / experiment_id / "previews"
    frames = []
    for d in root.iterdir() if root.is_dir() else []:
        taken = parse_folder_time(d.name, experiment_id)
        if taken is not None and (d / f"{COMPOSITE}.png").is_file():
            frames.append((taken, d / f"{COMPOSITE}.png"))
    frames.sort()
    path = write_timelapse([p for _, p in frames], Path(stitched_dir) / experiment_id / "timelapse")
    if path is None:
        return None
    out: dict[str, Any] = {"path": str(path), "frames": len(frames)}
    if hook is not None:
        alias = timelapse_dataset_alias(experiment_id)
        coll = hook.ensure_collection(
            collection_alias(experiment_id),
            {
                "name": f"Reef imaging {experiment_id}",
                "description": f"Timelapse data of {experiment_id}",
            },
        )
        hook.ensure_staged_dataset(
            alias,
            coll,
            {"name": f"{experiment_id} timelapse", "description": "Composite of every timepoint"},
        )
        f = UploadFile(str(path), path.name, path.stat().st_size)
        hook.upload_files(alias, [f])
        hook.commit(alias, expected={f.remote: f.size})
        out["dataset"] = alias
        out["artifact"] = hook.artifact_id(alias)
    return out
