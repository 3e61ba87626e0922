"""Benchmark: uploading a stitched dataset of many small chunk files to the Hypha artifact manager
(real Hypha server + real rclone S3 server on loopback).

baseline: one file at a time, as a plain loop does it (``put_file`` RPC for a presigned URL, then
the PUT, then the next file). ours: ``HyphaArtifactHook.upload_files`` (presigned URLs fetched in
batches, up to 25 PUTs in flight). Both into their own staged dataset, same files, same run; both
datasets are committed and their listings checked (not timed). Target: ratio >= 3.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins"):
    sys.path.insert(0, str(p))

N_FILES = int(os.environ.get("REEF_BENCH_UPLOAD_FILES", "48"))
FILE_SIZE = 64 * 1024


def main() -> None:

    import httpx

    from include.common.local_services import HyphaServer, S3Server
    from include.reef.upload import UploadFile

    tmp = Path(tempfile.mkdtemp(prefix="reef-bench-upload-"))
    s3 = S3Server(tmp / "s3").start()
    hypha = HyphaServer(tmp / "hypha", s3).start()
    try:
        conn = hypha.airflow_connection(workspace="reef-bench")
        os.environ["AIRFLOW_CONN_IMAGING_HYPHA"] = json.dumps(conn)
        from imaging.hooks.hypha import HyphaArtifactHook

        src = tmp / "chunks"
        files = []
        rng = __import__("random").Random(0)
        for i in range(N_FILES):
            p = src / f"ch{i % 3}" / "0" / f"c.{i // 8}.{i % 8}"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(rng.randbytes(FILE_SIZE))
            files.append(UploadFile(str(p), p.relative_to(src).as_posix(), FILE_SIZE))
        expected = {f.remote: f.size for f in files}

        with HyphaArtifactHook() as hook:
            coll = hook.ensure_collection("bench", {"name": "bench"})
            hook.ensure_staged_dataset("one-at-a-time", coll, {"name": "baseline"})
            hook.ensure_staged_dataset("ours", coll, {"name": "ours"})
            aid = hook.artifact_id("one-at-a-time")

            async def sequential() -> None:
                am = await hook._aget_am()
                async with httpx.AsyncClient() as client:
                    for f in files:
                        url = await am.put_file(aid, file_path=f.remote)
                        with open(f.local, "rb") as fh:
                            r = await client.put(url, content=fh.read(), timeout=60)
                        r.raise_for_status()

            t = time.perf_counter()
            hook._run(sequential())
            baseline = time.perf_counter() - t

            t = time.perf_counter()
            hook.upload_files("ours", files)
            ours = time.perf_counter() - t

            ok = True
            for ds in ("one-at-a-time", "ours"):
                hook.commit(ds, expected=expected)
                ok = ok and hook.list_files(ds) == expected
        print(
            json.dumps(
                {
                    "name": "reef_upload",
                    "baseline_s": round(baseline, 3),
                    "ours_s": round(ours, 3),
                    "ratio": round(baseline / ours, 3),
                    "files": N_FILES,
                    "file_size": FILE_SIZE,
                    "listings_match": ok,
                    "target": "ratio >= 3",
                }
            )
        )
    finally:
        hypha.stop()
        s3.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
