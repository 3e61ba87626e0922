"""
# design_upload

Design images of a print-on-demand shop: an upload folder (or S3 prefix) → batches → resize +
perceptual hashes → near-duplicate detection → NAS → database → product mockups → Etsy draft
listings. Triggered by hand or through the REST API (`POST /api/v2/dags/design_upload/dagRuns`
with `conf`), for 1 file or thousands.

Params: `source_dir` (a local folder or `s3://bucket/prefix` on the `imaging_s3` connection),
`shop`, `template` (a folder with `template.json` + mockup photos under `templates_dir`),
`user_id`, plus `batch_mb`, `max_workers`, `max_megapixels`, `duplicate_rule`,
`duplicate_overrides`.

One workflow for every upload size. The seed had a "comprehensive" multi-file workflow and an
"original" single-file one, with automatic fallback from the first to the second on any error.
Here the fallback is per-item error isolation instead: every file is validated, hashed and
stored on its own, so a bad file (not an image, corrupt, under 10 px, over the pixel limit,
animated, CMYK, 16-bit) is reported with its reason in the run's report and the other files go
on; a single file is simply a run with one batch.

1. **plan_batches** — lists the files (sorted) and packs them into batches of about `batch_mb`
   (100 MB; a larger file is its own batch).
2. **processing_and_formatting_images** (mapped, one per batch; a process pool inside) — validate,
   pHash + dHash (hash size 16) and a colour signature from one decode path (transparency
   composited on white), resize to fit 3000×3000 (downscale only, LANCZOS): PNG when the design has
   transparency, else progressive JPEG q85. Outputs go to the run's work folder.
3. **backfill_nas_hashes** — hashes files already on the NAS under `<shop>/` that were not hashed
   before (stored in `design_nas_files`; rehashed only when size or mtime change).
4. **checking_for_duplicates** — a multi-index-hashing index (sub-linear in the number of stored
   hashes) over the shop's database designs and NAS files; the run's images are checked in name
   order and added as they are accepted, so duplicates within a batch and across batches are found
   too; duplicates are looked for within the shop. Rule (`duplicate_rule=tuned`): low-frequency
   pHash key ≤ 10, pHash ≤ 80, dHash ≤ 64 of 256 bits and colour distance ≤ 30, chosen from
   measurements (`bench/bench_design_quality.py`: precision 1.0, recall 0.996 on photos + flat
   designs with variants and hard negatives; the seed's rule: 0.986 / 0.64). `seed` keeps the
   seed's rule (pHash ≤ 5, transparency ignored). Duplicates are recorded in `design_duplicates`
   with what they duplicate and skipped.
5. **upload_to_nas** — `NasHook` (`nas_default`: mounted path or SFTP; without it a local folder
   under `$IMAGING_DATA_DIR/design/nas`): `<shop>/<template>/<stem[:50]>_<run timestamp>_<uuid8>.<ext>`,
   temp name then rename, never overwriting a different file. Unlike the seed ("NAS upload fails →
   log a warning, continue with the database update"), a file whose upload fails is reported as an
   error and gets no database row, so no row ever points at a missing file.
6. **update_database** — `design_images` insert with `ON CONFLICT (shop, phash, dhash) DO NOTHING`
   (a real unique constraint); a run that loses a race records a duplicate instead.
7. **creating_product_mockups** — the design composited onto each mockup photo of the template
   (placement + perspective from `template.json`), stored on the NAS under `mockups/`, recorded in
   `design_mockups`.
8. **uploading_to_etsy_store** — `EtsyHook` (`etsy_default`): one draft listing per design with its
   mockups (10 requests/s, daily quota, 429 handling; idempotent via a listing tag — never two
   listings for one design). Without an Etsy connection the listing JSON + images go to the outbox
   folder `$IMAGING_DATA_DIR/design/etsy_outbox/`, said in the log. Listings of earlier runs that
   did not finish (daily quota, outage) are completed by the next run (their mockups are fetched
   back from the NAS).
9. **report** — per-file outcome (new / duplicate of what / error and why, listing state) in the
   log, in `<work>/report.json` and in the `item_records` ledger; runs after an Etsy failure too
   and then fails the run, naming the listings that are not done.

Between steps the per-file results travel as JSON files in the run's work folder
(`$IMAGING_DATA_DIR/design/runs/<run_id>/<step>.json`, next to the resized outputs and the
mockups); XCom carries only their paths, so a run of thousands of files keeps XCom small. With
workers on several hosts, `$IMAGING_DATA_DIR` must be storage they all share.

A failed Etsy listing fails `uploading_to_etsy_store` after the other designs are done: transient
errors (5xx, lost connections) are retried by Airflow and finished listings are skipped;
daily-quota and auth errors fail without retries (clear the task when the quota has refilled, or
let the next run complete them).

Every step is safe to retry and to rerun: deterministic names, upserts, the NAS never overwritten.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, TriggerRule, dag, task

from imaging.dag_defaults import CPU, DEFAULT_ARGS, ETSY_POOL, IO, api_pool

PIPELINE = "design_upload"


def _work_dir(context: dict[str, Any]) -> Any:
    from include.common.files import safe_name
    from include.common.settings import get_settings

    return get_settings().data_dir / "design" / "runs" / safe_name(context["run_id"])


def _templates_dir(params: dict[str, Any]) -> str:
    from pathlib import Path

    import include.design

    return params.get("templates_dir") or str(Path(include.design.__file__).parent / "templates")


def _nas_hook() -> Any:
    from imaging.hooks.nas import NasHook
    from include.common.settings import get_settings

    s = get_settings()
    return NasHook(nas_conn_id=s.nas_conn_id, fallback_root=str(s.data_dir / "design" / "nas"))


def _config(params: dict[str, Any]) -> Any:
    from include.design.hashing import DupConfig

    return DupConfig.from_dict(
        {"name": params["duplicate_rule"], **(params.get("duplicate_overrides") or {})}
    )


def _flatten(refs: Any) -> list[dict[str, Any]]:
    return [item for ref in refs or [] for item in _load(ref)]


def _save(context: dict[str, Any], step: str, items: list[dict[str, Any]]) -> str:
    """The step's per-file results as JSON in the run folder; XCom carries only the path."""
    import json

    from include.common.files import atomic_write_text

    path = _work_dir(context) / f"{step}.json"
    atomic_write_text(path, json.dumps(items))
    return str(path)


def _load(ref: str) -> list[dict[str, Any]]:
    import json
    from pathlib import Path

    return json.loads(Path(ref).read_text())


@dag(
    dag_id="design_upload",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["design", "etsy", "nas", "dedupe"],
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    params={
        "source_dir": Param(
            "",
            type="string",
            minLength=1,
            description="The upload: a local folder (recursive) or s3://bucket/prefix on the "
            "imaging_s3 connection.",
        ),
        "shop": Param(
            "demo-shop",
            type="string",
            pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            description="Shop (tenant): NAS folder, duplicate scope and Etsy listings.",
        ),
        "template": Param(
            "poster",
            type="string",
            pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            description="Product template: NAS sub-folder and the mockup set (templates_dir/<template>/template.json).",
        ),
        "user_id": Param("", type="string", description="Who uploaded (stored with each design)."),
        "templates_dir": Param(
            "",
            type="string",
            description="Folder of mockup templates. Empty: the templates shipped in include/design/templates.",
        ),
        "batch_mb": Param(
            100.0,
            type="number",
            exclusiveMinimum=0,
            description="Target batch size in MB (one mapped task per batch).",
        ),
        "max_workers": Param(
            8,
            type="integer",
            minimum=1,
            maximum=64,
            description="Processes per batch task (capped by the CPU count).",
        ),
        "max_megapixels": Param(
            100.0,
            type="number",
            exclusiveMinimum=0,
            description="Pixel limit per image (decompression-bomb guard); larger images are reported.",
        ),
        "duplicate_rule": Param(
            "tuned",
            type="string",
            enum=["tuned", "seed"],
            description="tuned: pHash + dHash + colour with measured thresholds; seed: the seed's "
            "pHash Hamming <= 5 with transparency ignored.",
        ),
        "duplicate_overrides": Param(
            {},
            type="object",
            description='Override thresholds of the rule, e.g. {"phash_max": 60, "colour_max": 25}.',
        ),
    },
)
def design_upload() -> None:
    @task
    def plan_batches(**context: Any) -> list[dict[str, Any]]:
        """List the upload and plan ~100 MB batches."""
        import logging

        from include.design import batching

        params = context["params"]
        _config(params)  # a bad duplicate_rule / duplicate_overrides fails here, before any work
        src = params["source_dir"].strip()
        if src.startswith("s3://"):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            from include.common.settings import get_settings

            bucket, prefix = batching.parse_s3_url(src)
            client = S3Hook(aws_conn_id=get_settings().s3_conn_id).get_conn()
            objects = []
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                objects += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
            files = batching.from_s3_listing(bucket, prefix, objects)
        else:
            files = batching.list_local(src)
        batches = batching.plan_batches(files, int(float(params["batch_mb"]) * 1024 * 1024))
        logging.getLogger("airflow.task").info(
            "%d files, %d batches (target %s MB)", len(files), len(batches), params["batch_mb"]
        )
        return [{"batch": n, "files": [f.to_dict() for f in b]} for n, b in enumerate(batches)]

    @task(queue=CPU, map_index_template="batch {{ task.op_kwargs['batch']['batch'] }}")
    def processing_and_formatting_images(batch: dict[str, Any], **context: Any) -> str:
        """Validate, hash and resize one batch in a process pool (per-file errors)."""
        import os
        from pathlib import Path

        from include.common.files import safe_name
        from include.design import pipeline

        work = _work_dir(context)
        files = []
        for f in batch["files"]:
            if f["location"].startswith("s3://"):
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                from include.common.settings import get_settings
                from include.design.batching import parse_s3_url

                local = work / "incoming" / safe_name(f["key"].replace("/", "__"))
                if not (local.exists() and local.stat().st_size == f["size"]):
                    bucket, key = parse_s3_url(f["location"])
                    local.parent.mkdir(parents=True, exist_ok=True)
                    tmp = local.with_name(f".{local.name}.partial")
                    client = S3Hook(aws_conn_id=get_settings().s3_conn_id).get_conn()
                    client.download_file(bucket, key, str(tmp))  # streamed, multipart for big files
                    os.replace(tmp, local)
                files.append({"key": f["key"], "path": str(local)})
            else:
                files.append({"key": f["key"], "path": f["location"]})
        workers = min(int(context["params"]["max_workers"]), os.cpu_count() or 1)
        items = pipeline.process_batch(
            files,
            Path(work) / "prepared",
            config=_config(context["params"]).to_dict(),
            workers=workers,
            max_pixels=int(float(context["params"]["max_megapixels"]) * 1_000_000),
        )
        return _save(context, f"processed_{batch['batch']:05d}", items)

    @task(queue=IO)
    def backfill_nas_hashes(**context: Any) -> dict[str, int]:
        """Hash the shop's NAS files not hashed before."""
        from imaging.appdb import app_engine
        from include.design import pipeline

        hook = _nas_hook()
        try:
            return pipeline.backfill_nas(
                app_engine(), hook.get_conn(), context["params"]["shop"], _config(context["params"])
            )
        finally:
            hook.close()

    @task(queue=CPU)
    def checking_for_duplicates(processed: Any, nas_counts: dict[str, int], **context: Any) -> str:
        """Near-duplicates within the run, against the database and the NAS."""
        from imaging.appdb import app_engine
        from include.design import pipeline

        items = pipeline.check_duplicates(
            app_engine(),
            _flatten(processed),
            shop=context["params"]["shop"],
            run_id=context["run_id"],
            config=_config(context["params"]),
        )
        return _save(context, "decisions", items)

    @task(queue=IO)
    def upload_to_nas(ref: str, **context: Any) -> str:
        """New designs to the NAS (temp name, then rename)."""
        from include.design import pipeline

        run = context["dag_run"]
        when = run.logical_date or run.run_after
        hook = _nas_hook()
        try:
            items = pipeline.upload_to_nas(
                hook.get_conn(),
                _load(ref),
                shop=context["params"]["shop"],
                template=context["params"]["template"],
                when=when,
            )
        finally:
            hook.close()
        return _save(context, "nas", items)

    @task
    def update_database(ref: str, **context: Any) -> str:
        """Insert the new designs (ON CONFLICT (shop, phash, dhash) DO NOTHING)."""
        from imaging.appdb import app_engine
        from include.design import pipeline

        p = context["params"]
        items = pipeline.record_designs(
            app_engine(),
            _load(ref),
            shop=p["shop"],
            template=p["template"],
            user_id=p["user_id"] or None,
            run_id=context["run_id"],
        )
        return _save(context, "database", items)

    @task(queue=CPU)
    def creating_product_mockups(ref: str, **context: Any) -> str:
        """Composite each new design onto the template's mockup photos."""
        from imaging.appdb import app_engine
        from include.design import pipeline

        p = context["params"]
        hook = _nas_hook()
        try:
            items = pipeline.make_mockups(
                app_engine(),
                hook.get_conn(),
                _load(ref),
                templates_dir=_templates_dir(p),
                template=p["template"],
                shop=p["shop"],
                work_dir=_work_dir(context),
            )
        finally:
            hook.close()
        return _save(context, "mockups", items)

    @task(queue=IO, **api_pool(ETSY_POOL, concurrency=1))
    def uploading_to_etsy_store(ref: str, **context: Any) -> str:
        """One Etsy draft listing per new design (or the outbox without an Etsy connection).
        Failed listings fail the task after the others are done: transient errors are retried
        by Airflow (finished listings are skipped), quota/auth errors are not."""
        from airflow.sdk.exceptions import AirflowFailException

        from imaging.appdb import app_engine
        from imaging.hooks.etsy import EtsyHook
        from include.common.settings import get_settings
        from include.design import pipeline

        p = context["params"]
        s = get_settings()
        configured = EtsyHook.is_configured(s.etsy_conn_id)
        client = EtsyHook(etsy_conn_id=s.etsy_conn_id) if configured else None
        items = _load(ref)
        hook = _nas_hook()
        try:  # listings of earlier runs that did not finish (quota, outage) are completed too
            backlog = pipeline.listing_backlog(
                app_engine(),
                hook.get_conn(),
                shop=p["shop"],
                exclude=[
                    i["design_image_id"]
                    for i in items
                    if i.get("decision") == pipeline.NEW and i.get("design_image_id")
                ],
                work_dir=_work_dir(context),
            )
        finally:
            hook.close()
        items = pipeline.publish_listings(
            app_engine(),
            client,
            items + backlog,
            templates_dir=_templates_dir(p),
            template=p["template"],
            shop=p["shop"],
            outbox_root=s.data_dir / "design" / "etsy_outbox",
        )
        out = _save(context, "listings", items)
        failed = {
            i["key"]: i["listing"]["error"]
            for i in items
            if (i.get("listing") or {}).get("state") == "failed"
        }
        if failed:
            msg = f"{len(failed)} Etsy listing(s) failed: {failed}"
            permanent = any(w in e for e in failed.values() for w in ("quota", "401", "403"))
            raise AirflowFailException(msg) if permanent else RuntimeError(msg)
        return out

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(ref: str | None, **context: Any) -> dict[str, Any]:
        """Per-file outcome: log, report.json, item_records ledger (also after an Etsy failure)."""
        import json
        import logging

        from airflow.sdk.exceptions import AirflowFailException
        from sqlalchemy import select

        from imaging.appdb import app_engine
        from include.common.db import session_scope
        from include.common.files import atomic_write_text
        from include.common.items import record_item
        from include.common.models import ItemStatus
        from include.design import pipeline
        from include.design.models import DesignListing

        log = logging.getLogger("airflow.task")
        p = context["params"]
        work = _work_dir(context)
        if (work / "listings.json").exists():
            items = _load(str(work / "listings.json"))
        elif ref:
            items = _load(ref)
        else:
            raise AirflowFailException("an earlier step failed before any file was processed")
        ids = [
            i["design_image_id"]
            for i in items
            if i.get("decision") == pipeline.NEW and i.get("design_image_id")
        ]
        with session_scope(app_engine()) as s:
            states = {
                r.design_image_id: {"state": r.state, "listing_id": r.listing_id, "error": r.error}
                for r in s.scalars(
                    select(DesignListing).where(DesignListing.design_image_id.in_(ids))
                )
            }
        items = [
            {**i, "listing": states[i["design_image_id"]]}
            if i.get("design_image_id") in states and i.get("decision") == pipeline.NEW
            else i
            for i in items
        ]
        summary = pipeline.summarise(items)
        with session_scope(app_engine()) as s:
            for i in items:
                key = f"{p['shop']}/{i['key']}"
                if i["status"] == pipeline.ERROR:
                    status, detail = ItemStatus.FAILED, None
                elif i.get("decision") == pipeline.DUPLICATE:
                    status, detail = (
                        ItemStatus.SKIPPED,
                        {"duplicate_of": f"{i['matched_kind']}:{i['matched_ref']}"},
                    )
                else:
                    status, detail = (
                        ItemStatus.DONE,
                        {
                            "design_image_id": i.get("design_image_id"),
                            "nas_path": i.get("nas_path"),
                            "listing": i.get("listing"),
                        },
                    )
                record_item(
                    s, pipeline=PIPELINE, kind="file", key=key, status=status, checksum=i.get("sha256"),
                    error=i.get("error"), detail=detail, run_id=context["run_id"],
                )  # fmt: skip
        path = work / "report.json"
        atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True))
        log.info(
            "%d files: %d new, %d duplicates, %d errors (report %s)",
            summary["files"], len(summary["new"]), len(summary["duplicates"]), len(summary["errors"]), path,
        )  # fmt: skip
        for key, err in summary["errors"].items():
            log.warning("error: %s: %s", key, err["error"])
        for key, ref_ in summary["duplicates"].items():
            log.warning("duplicate: %s duplicates %s", key, ref_)
        failed = {
            k: v
            for k, v in summary["listings"].items()
            if v.get("state") not in ("complete", "outbox")
        }
        if failed:
            raise AirflowFailException(
                f"report written to {path}; Etsy listings not done: {failed}"
            )
        return {
            "report": str(path),
            "new": len(summary["new"]),
            "duplicates": len(summary["duplicates"]),
            "errors": len(summary["errors"]),
        }

    plan = plan_batches()
    processed = processing_and_formatting_images.expand(batch=plan)
    decisions = checking_for_duplicates(processed, backfill_nas_hashes())
    report(
        uploading_to_etsy_store(creating_product_mockups(update_database(upload_to_nas(decisions))))
    )


design_upload()
