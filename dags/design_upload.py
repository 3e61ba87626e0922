"""
# design_upload

Design images of a print-on-demand shop: an upload folder (or S3 prefix) → batches → resize +
perceptual hashes → near-duplicate detection → NAS → database → product mockups → Etsy draft
listings. Triggered by hand or through the REST API (`POST /api/v2/dags/design_upload/dagRuns`
with `conf`), for 1 file or thousands.

Params: `source_dir` (a local folder or `s3://bucket/prefix` on the `imaging_s3` connection;
empty: the installation setting `imaging_design_source_dir`), `shop` (empty: `imaging_design_shop`),
`template` (a folder with `template.json` + mockup photos under `templates_dir`), `user_id`, plus
`batch_mb`, `max_workers`, `max_megapixels`, `duplicate_rule`, `duplicate_overrides`. The task
bodies are in `imaging.operators.design_tasks`, the steps in `include.design.pipeline`.

One workflow for every upload size. The seed had a "comprehensive" multi-file workflow and an
"original" single-file one, with automatic fallback from the first to the second on any error.
Here the fallback is per-item error isolation instead: every file is validated, hashed and
stored on its own, so a bad file (not an image, corrupt, under 10 px, over the pixel limit,
animated, CMYK, 16-bit) is reported with its reason in the run's report and the other files go
on; a single file is simply a run with one batch.

1. **plan_batches** — lists the files (sorted) and packs them into batches of about `batch_mb`
   (100 MB; a larger file is its own batch). Hidden files, partial downloads and symlinks are
   listed too and get "not processed" with the reason as their outcome.
2. **processing_and_formatting_images** (mapped, one per batch; a process pool inside) — validate,
   pHash + dHash (hash size 16) and a colour signature from one decode path (transparency
   composited on white), resize to fit 3000×3000 (downscale only, LANCZOS): PNG when the design has
   transparency, else progressive JPEG q85. Outputs go to the run's work folder.
3. **backfill_nas_hashes** — hashes files already on the NAS under `<shop>/` that were not hashed
   before (stored in `design_nas_files`; rehashed only when size or mtime change), and fills the
   crop alias of stored designs that have none (rows from before migration 0008) from their NAS
   file.
4. **checking_for_duplicates** — a multi-index-hashing index (sub-linear in the number of stored
   hashes) over the shop's database designs and NAS files; the run's images are checked **best
   copy first** (`include.design.quality`: the whole picture and no watermark, both measured
   against the other copies in the upload or the stored copy (read back from the NAS), then
   resolution, transparency, lossless — a PNG or lossless WebP decoded from a JPEG counts as that
   JPEG, found by its quantised 8×8 DCT coefficients —, true colour, JPEG quality, clipping, the
   shorter name) and added as they are accepted, so of each group of
   near-duplicates the best one is kept. An upload that is a better copy of a stored design is a
   *better copy*: not stored, and asked about in **replace_stored_design** (below). Rule (`duplicate_rule=tuned`): low-frequency
   pHash key ≤ 10, pHash ≤ 80, dHash ≤ 64 of 256 bits and colour distance ≤ 30, chosen from
   measurements on a tune set (`bench/bench_design_quality.py`, sets of
   `include/design/evalset.py`: photos + flat designs with variants and hard negatives). On the
   fresh held-out set (made after the first held-out set's errors were looked at, reported once):
   precision 0.995, recall 0.966 (6 of 34 crops and 1 watermark missed, 1 recolour matched); the
   seed's rule: 1.00 / 0.46. `seed` keeps the seed's rule (pHash ≤ 5,
   transparency ignored). Duplicates are recorded in `design_duplicates`
   with what they duplicate and skipped.
5. **upload_to_nas** — `NasHook` (`nas_default`: mounted path or SFTP; without it a local folder
   under `$IMAGING_DATA_DIR/design/nas`): `<shop>/<template>/<stem[:50]>_<run timestamp>_<uuid8>.<ext>`,
   temp name then rename, never overwriting a different file. Unlike the seed ("NAS upload fails →
   log a warning, continue with the database update"), a file whose upload fails is reported as an
   error and gets no database row, so no row ever points at a missing file.
6. **update_database** — under a per-shop lock (a `design_shop_locks` row: PostgreSQL row lock,
   SQLite write lock) the new designs are checked again against what other runs stored meanwhile
   and inserted; a run that loses the race records a duplicate (or a better copy: crops and
   watermarks compared with the winner's NAS file, as in step 4) and removes its NAS file.
7. **creating_product_mockups** — the design composited onto each mockup photo of the template
   (placement + perspective from `template.json`), stored on the NAS under `mockups/`, recorded in
   `design_mockups`.
8. **uploading_to_etsy_store** — `EtsyHook` (`etsy_default`): one draft listing per design with its
   mockups (10 requests/s, daily quota, 429 handling; idempotent via a listing tag — never two
   listings for one design). Without an Etsy connection the listing JSON + images go to the outbox
   folder `$IMAGING_DATA_DIR/design/etsy_outbox/`, said in the log. Listings of earlier runs that
   did not finish (daily quota, outage) are completed by the next run (their mockups are fetched
   back from the NAS).
9. **better_copy_questions → replace_stored_design → apply_replacements** — one approval per better
   copy (two buttons, nothing to type; pictures of both copies linked): *Replace* stores the new
   file (the old one stays on the NAS), points the design at it and remakes its mockups; *Keep*
   changes nothing. The answer is stored (`design_replacements`): no later run asks again.
10. **summary** — the run summary page (`/artefacts/design_upload/<run>/summary.html`): every
   file's outcome, each listing previewed (title, tags, price, outbox folder or Etsy id) with a
   mockup thumbnail, duplicates with the copy kept, better copies and answers, and a warning
   naming a missing `nas_default` / `etsy_default` connection; the ledger gets one row per run
   and file. Runs after failures too.

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

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import TriggerRule, dag, task

from imaging.dag_defaults import CPU, DEFAULT_ARGS, ETSY_POOL, IO, api_pool
from imaging.operators import design_tasks as steps

RESPONSE_TIMEOUT = timedelta(days=3)


@dag(
    dag_id="design_upload",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["design", "etsy", "nas", "dedupe"],
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    params=steps.params(),
)
def design_upload() -> None:
    @task
    def plan_batches(**context: Any) -> list[dict[str, Any]]:
        """List the upload and plan ~100 MB batches."""
        return steps.plan(context)

    @task(queue=CPU, map_index_template="batch {{ task.op_kwargs['batch']['batch'] }}")
    def processing_and_formatting_images(batch: dict[str, Any], **context: Any) -> str:
        """Validate, hash, measure and resize one batch in a process pool (per-file errors)."""
        return steps.process(batch, context)

    @task(queue=IO)
    def backfill_nas_hashes(**context: Any) -> dict[str, int]:
        """Hash the shop's NAS files not hashed before."""
        return steps.backfill(context)

    @task(queue=CPU)
    def checking_for_duplicates(processed: Any, nas_counts: dict[str, int], **context: Any) -> str:
        """Near-duplicates (best copy first) within the run, against the database and the NAS."""
        return steps.check(processed, context)

    @task(queue=IO)
    def upload_to_nas(ref: str, **context: Any) -> str:
        """New designs to the NAS (temp name, then rename)."""
        return steps.upload(ref, context)

    @task
    def update_database(ref: str, **context: Any) -> str:
        """Insert the new designs under the shop's lock; a lost race removes its NAS file."""
        return steps.record(ref, context)

    @task(queue=CPU)
    def creating_product_mockups(ref: str, **context: Any) -> str:
        """Composite each new design onto the template's scenes."""
        return steps.mockups(ref, context)

    @task(queue=IO, **api_pool(ETSY_POOL, concurrency=1))
    def uploading_to_etsy_store(ref: str, **context: Any) -> str:
        """One Etsy draft listing per new design (or the outbox without an Etsy connection)."""
        return steps.listings(ref, context)

    @task(queue=IO)
    def better_copy_questions(ref: str, **context: Any) -> list[dict[str, Any]]:
        """One approval question per better copy of a stored design still unanswered."""
        return steps.questions(ref, context)

    @task
    def approval_kwargs(questions: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [
            {"subject": q["subject"], "body": q["body"]} for q in questions if not q["answered"]
        ]

    @task(trigger_rule=TriggerRule.NONE_FAILED)  # runs with [] when nothing was asked
    def apply_replacements(questions: list[dict[str, Any]], answers: Any, **context: Any) -> str:
        """Record each answer (it sticks) and replace the stored designs chosen."""
        return steps.apply(questions, answers, context)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """The run summary page, the outcome line and the per-run ledger (after failures too)."""
        return steps.summary(context)

    processed = processing_and_formatting_images.expand(batch=plan_batches())
    decisions = checking_for_duplicates(processed, backfill_nas_hashes())
    stored = update_database(upload_to_nas(decisions))
    listed = uploading_to_etsy_store(creating_product_mockups(stored))
    questions = better_copy_questions(stored)
    ask = HITLOperator.partial(
        task_id="replace_stored_design",
        options=steps.REPLACE_OPTIONS,
        defaults=[steps.KEEP_OPTION],
        response_timeout=RESPONSE_TIMEOUT,
        map_index_template="{{ task.subject }}",
    ).expand_kwargs(approval_kwargs(questions))
    applied = apply_replacements(questions, ask.output)
    [listed, applied] >> summary()


design_upload()
