"""The per-file work of the pipeline, run in worker processes: validate, hash (the single decode
path), resize/encode. Kept free of database and Airflow imports so a worker pool starts fast (the
pool's forkserver preloads only this module)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from include.common.files import sha256_file
from include.design import hashing, imaging, quality
from include.design.hashing import DupConfig, Hashes

log = logging.getLogger(__name__)

OK, ERROR, SKIPPED = "ok", "error", "skipped"


def _existing_prepared(stem: Path) -> Path | None:
    for ext in ("png", "jpg"):
        p = stem.with_name(f"{stem.name}.{ext}")
        if p.exists():
            return p
    return None


def process_file(
    key: str,
    local_path: str,
    prepared_dir: str,
    config: dict[str, Any] | None = None,
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Validate, hash and prepare one file. Never raises for bad input: returns an error item."""
    cfg = DupConfig.from_dict(config)
    item: dict[str, Any] = {"key": key, "name": PurePosixPath(key).name, "location": local_path}
    try:
        item["size"] = os.path.getsize(local_path)
        item["sha256"] = sha256_file(local_path)
        h, alias = hashing.hash_file_with_alias(local_path, cfg, max_pixels=max_pixels)
        facts = quality.of_file(local_path, max_pixels=max_pixels)
        stem = Path(prepared_dir) / item["sha256"][:24]
        done = _existing_prepared(stem)
        if done is not None:  # a retry: the output of this exact content is already there
            with imaging.Image.open(done) as im:
                prepared = {
                    "path": str(done),
                    "format": im.format,
                    "width": im.width,
                    "height": im.height,
                }
        else:
            out = imaging.prepare_output(local_path, stem, max_pixels=max_pixels)
            prepared = {
                "path": out.path,
                "format": out.format,
                "width": out.width,
                "height": out.height,
            }
    except imaging.ImageRejected as exc:
        return {**item, "status": ERROR, "code": exc.code, "error": exc.reason}
    except OSError as exc:
        return {
            **item,
            "status": ERROR,
            "code": "unreadable",
            "error": f"cannot read the file: {exc}",
        }
    except Exception as exc:  # an image library failure on hostile input: still per file
        log.exception("unexpected error on %s", key)
        return {**item, "status": ERROR, "code": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {
        **item,
        "status": OK,
        "hashes": h.to_dict(),
        "crop_alias": alias.to_dict(),
        "quality": dict(facts),
        "prepared": prepared["path"],
        "format": prepared["format"],
        "width": prepared["width"],
        "height": prepared["height"],
    }


def _process_star(args: tuple[Any, ...]) -> dict[str, Any]:
    return process_file(*args)


_NOTHING = object()


@contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers start light.

    forkserver, because the task process has threads (Airflow's) and forking it directly is
    unsafe. multiprocessing makes every new worker re-import the parent's ``__main__`` (the Airflow
    task runner, pytest, a benchmark script: seconds of imports on a busy machine, measured 2.5 s per
    pool); the workers only need this module, so ``__main__``'s file and spec are hidden while the
    pool lives and restored afterwards."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["include.design.workers"])
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k, _NOTHING) for k in ("__file__", "__spec__")}
    try:
        if main is not None:
            if saved["__file__"] is not _NOTHING:
                del main.__file__
            main.__spec__ = None
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            yield pool
    finally:
        if main is not None:
            for k, v in saved.items():
                if v is _NOTHING:
                    if hasattr(main, k) and k == "__spec__":
                        del main.__spec__
                else:
                    setattr(main, k, v)


def process_batch(
    files: Sequence[dict[str, Any]],
    prepared_dir: str | os.PathLike[str],
    config: dict[str, Any] | None = None,
    workers: int | None = None,
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
) -> list[dict[str, Any]]:
    """``files``: ``{"key", "path"}`` dicts (local files), optionally with ``"skip"``: the reason
    a file is not processed (hidden file, symlink...), which becomes its outcome. Results in the
    same order: every file gets one."""
    Path(prepared_dir).mkdir(parents=True, exist_ok=True)
    todo = [f for f in files if not f.get("skip")]
    args = [(f["key"], f["path"], str(prepared_dir), config, max_pixels) for f in todo]
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(args) <= 1:
        done = [_process_star(a) for a in args]
    else:
        with _pool(min(workers, len(args))) as pool:
            chunks = max(1, len(args) // (workers * 4))
            done = list(pool.map(_process_star, args, chunksize=chunks))
    results = iter(done)
    return [
        skipped_item(f["key"], f["path"], f["skip"]) if f.get("skip") else next(results)
        for f in files
    ]


def skipped_item(key: str, location: str, reason: str) -> dict[str, Any]:
    """The outcome of a file that is listed but deliberately not processed."""
    return {
        "key": key,
        "name": PurePosixPath(key).name,
        "location": location,
        "status": SKIPPED,
        "code": "skipped",
        "error": reason,
    }


MIN_POOL = 32  # hashing takes ~5 ms a file: fewer files do not pay for a pool's start


def hash_files(
    paths: Sequence[str],
    config: dict[str, Any] | None = None,
    workers: int | None = None,
    min_pool: int = MIN_POOL,
) -> list[Hashes]:
    """Hashes of many files through the single decode path, in a process pool (benchmarks, bulk
    backfills). Bad files raise :class:`~include.design.imaging.ImageRejected`."""
    workers = workers or os.cpu_count() or 1
    args = [(p, config) for p in paths]
    if workers <= 1 or len(args) < max(2, min_pool):
        return [_hash_star(a) for a in args]
    with _pool(min(workers, len(args))) as pool:
        return list(pool.map(_hash_star, args, chunksize=max(1, len(args) // (workers * 4))))


def _hash_star(args: tuple[str, dict[str, Any] | None]) -> Hashes:
    return hashing.hash_file(args[0], DupConfig.from_dict(args[1]))


def _hash_safe(args: tuple[str, dict[str, Any] | None]) -> dict[str, Any]:
    try:
        h, alias = hashing.hash_file_with_alias(args[0], DupConfig.from_dict(args[1]))
        return {"hashes": h.to_dict(), "crop_alias": alias.to_dict()}
    except imaging.ImageRejected as exc:
        return {"error": exc.reason}
    except OSError as exc:
        return {"error": f"cannot read the file: {exc}"}


def hash_files_safe(
    paths: Sequence[str],
    config: dict[str, Any] | None = None,
    workers: int | None = None,
    min_pool: int = MIN_POOL,
) -> list[dict[str, Any]]:
    """Like :func:`hash_files` with a per-file result: ``{"hashes": {...}, "crop_alias": {...}}``
    (one decode) or ``{"error": ...}``."""
    workers = workers or os.cpu_count() or 1
    args = [(p, config) for p in paths]
    if workers <= 1 or len(args) < max(2, min_pool):
        return [_hash_safe(a) for a in args]
    with _pool(min(workers, len(args))) as pool:
        return list(pool.map(_hash_safe, args, chunksize=max(1, len(args) // (workers * 4))))
