"""``photo_ingest``'s steps run in-process, in the DAG's order (register, then stage + ML per
chunk, then aggregate): for the domain tests that need a processed session without a DAG run."""

from __future__ import annotations

from typing import Any

from include.photos import pipeline as P

RUN_DATE = "2026-11-21"


def run_ingest(
    engine: Any, s3: Any, *, run_id: str = "manual__1", bucket: str = "imaging", **prepare: Any
) -> dict[str, Any]:
    """``prepare_upload(**prepare)``, every chunk staged and processed, ``finish_upload``.
    Returns ``prepare_upload``'s answer with ``"summary"`` (``finish_upload``'s) added.
    A web session (``upload_session_id=``) is read from S3 with ``s3``/``bucket``."""
    if prepare.get("upload_session_id"):
        prepare = {"s3_client": s3, "bucket": bucket, **prepare}
    prep = P.prepare_upload(engine, run_id=run_id, **prepare)
    for chunk in prep["chunks"]:
        st = P.stage_chunk(engine, s3, bucket, chunk, run_date=RUN_DATE)
        P.process_chunk(engine, s3, bucket, st["staged"], run_id=run_id)
    return {**prep, "summary": P.finish_upload(engine, prep["upload_session_id"])}
