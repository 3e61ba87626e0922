"""Task bodies of ``design_upload`` (Airflow glue: params and installation settings, hooks, the
run's work folder, artefacts); each calls one step of :mod:`include.design.pipeline`. Between
steps the per-file results travel as JSON files in the run's work folder; XCom carries paths."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import Param

from include.design.approval import KEEP_OPTION, REPLACE_OPTIONS  # noqa: F401 - the DAG's options

PIPELINE = "design_upload"
log = logging.getLogger("airflow.task")


def params() -> dict[str, Param]:
    return {
        "source_dir": Param(
            None,
            type=["null", "string"],
            description="The upload: a local folder (recursive) or s3://bucket/prefix on the "
            "imaging_s3 connection. Empty: the installation setting imaging_design_source_dir.",
        ),
        "shop": Param(
            None,
            type=["null", "string"],
            pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            description="Shop (tenant): NAS folder, duplicate scope, listing template and Etsy "
            "listings. Empty: the installation setting imaging_design_shop.",
        ),
        "template": Param(
            "poster",
            type="string",
            pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            description="Product template: NAS sub-folder, mockup scenes and listing text "
            "(templates_dir/<template>/template.json).",
        ),
        "user_id": Param(None, type=["null", "string"], description="Who uploaded (optional)."),
        "templates_dir": Param(
            None,
            type=["null", "string"],
            description="Folder of templates. Empty: the templates shipped in include/design/templates.",
        ),
        "batch_mb": Param(
            100.0, type="number", exclusiveMinimum=0, description="Target batch size in MB."
        ),
        "max_workers": Param(
            8, type="integer", minimum=1, maximum=64, description="Processes per batch task."
        ),
        "max_megapixels": Param(
            100.0,
            type="number",
            exclusiveMinimum=0,
            description="Pixel limit per image (decompression-bomb guard).",
        ),
        "duplicate_rule": Param(
            "tuned",
            type="string",
            enum=["tuned", "seed"],
            description="tuned: pHash + dHash + colour with measured thresholds; seed: pHash <= 5.",
        ),
        "duplicate_overrides": Param(
            {},
            type="object",
            description='Override thresholds of the rule, e.g. {"phash_max": 60}.',
        ),
    }


# ---------------------------------------------------------------- helpers


def inputs(context: Mapping[str, Any]) -> dict[str, Any]:
    """The params with empty ones resolved from the installation settings."""
    from imaging.install import resolved

    p = resolved(context["params"], {"source_dir": "design_source_dir", "shop": "design_shop"})
    if not p.get("templates_dir"):
        import include.design

        p["templates_dir"] = str(Path(include.design.__file__).parent / "templates")
    return p


def work_dir(context: Mapping[str, Any]) -> Path:
    from include.common.files import safe_name
    from include.common.settings import get_settings

    return get_settings().data_dir / "design" / "runs" / safe_name(context["run_id"])


def nas_hook() -> Any:
    from imaging.hooks.nas import NasHook
    from include.common.settings import get_settings

    s = get_settings()
    return NasHook(nas_conn_id=s.nas_conn_id, fallback_root=str(s.data_dir / "design" / "nas"))


def config(p: Mapping[str, Any]) -> Any:
    from include.design.hashing import DupConfig

    return DupConfig.from_dict(
        {"name": p["duplicate_rule"], **(p.get("duplicate_overrides") or {})}
    )


def save(context: Mapping[str, Any], step: str, items: Any) -> str:
    from include.common.files import atomic_write_text

    path = work_dir(context) / f"{step}.json"
    atomic_write_text(path, json.dumps(items))
    return str(path)


def load(ref: str | None) -> Any:
    return json.loads(Path(ref).read_text()) if ref else []


def _when(context: Mapping[str, Any]) -> Any:
    run = context["dag_run"]
    return run.logical_date or run.run_after


def _store(bucket: str) -> Any:
    """The shared S3 store (``include.common.storage.S3Store`` on the ``imaging_s3`` S3Hook)."""
    from include.common.settings import get_settings
    from include.common.storage import s3_store

    return s3_store(get_settings().s3_conn_id, bucket)


def _engine() -> Any:
    from imaging.appdb import app_engine

    return app_engine()


# ---------------------------------------------------------------- steps


def plan(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    from include.design import batching

    p = inputs(context)
    config(p)  # a bad duplicate_rule / duplicate_overrides fails here, before any work
    src = str(p["source_dir"]).strip()
    if src.startswith("s3://"):
        bucket, prefix = batching.parse_s3_url(src)
        files = batching.from_s3_listing(bucket, prefix, _store(bucket).list_objects(prefix))
    else:
        files = batching.list_local(src)
    batches = batching.plan_batches(files, int(float(p["batch_mb"]) * 1024 * 1024))
    log.info("%d files, %d batches (target %s MB)", len(files), len(batches), p["batch_mb"])
    return [{"batch": n, "files": [f.to_dict() for f in b]} for n, b in enumerate(batches)]


def process(batch: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    from include.common.files import safe_name
    from include.design import pipeline

    p = inputs(context)
    work = work_dir(context)
    files = []
    for f in batch["files"]:
        if f.get("skip"):
            files.append({"key": f["key"], "path": f["location"], "skip": f["skip"]})
        elif f["location"].startswith("s3://"):
            from include.design.batching import parse_s3_url

            local = work / "incoming" / safe_name(f["key"].replace("/", "__"))
            if not (local.exists() and local.stat().st_size == f["size"]):
                bucket, key = parse_s3_url(f["location"])
                _store(bucket).download_to(key, local)
            files.append({"key": f["key"], "path": str(local)})
        else:
            files.append({"key": f["key"], "path": f["location"]})
    items = pipeline.process_batch(
        files,
        work / "prepared",
        config=config(p).to_dict(),
        workers=min(int(p["max_workers"]), os.cpu_count() or 1),
        max_pixels=int(float(p["max_megapixels"]) * 1_000_000),
    )
    return save(context, f"processed_{batch['batch']:05d}", items)


def backfill(context: Mapping[str, Any]) -> dict[str, int]:
    from include.design import pipeline

    p = inputs(context)
    hook = nas_hook()
    try:
        return pipeline.backfill_nas(_engine(), hook.get_conn(), p["shop"], config(p))
    finally:
        hook.close()


def check(processed: Any, context: Mapping[str, Any]) -> str:
    from include.design import pipeline

    p = inputs(context)
    items = [i for ref in processed or [] for i in load(ref)]
    hook = nas_hook()  # stored copies are read back to compare crops and watermarks
    try:
        out = pipeline.check_duplicates(
            _engine(), items, shop=p["shop"], run_id=context["run_id"], config=config(p),
            backend=hook.get_conn(),
        )  # fmt: skip
    finally:
        hook.close()
    return save(context, "decisions", out)


def upload(ref: str, context: Mapping[str, Any]) -> str:
    from include.design import pipeline

    p = inputs(context)
    hook = nas_hook()
    try:
        out = pipeline.upload_to_nas(
            hook.get_conn(), load(ref), shop=p["shop"], template=p["template"], when=_when(context)
        )
    finally:
        hook.close()
    return save(context, "nas", out)


def record(ref: str, context: Mapping[str, Any]) -> str:
    from include.design import pipeline

    p = inputs(context)
    hook = nas_hook()
    try:
        out = pipeline.record_designs(
            _engine(), load(ref), shop=p["shop"], template=p["template"],
            user_id=p.get("user_id") or None, run_id=context["run_id"],
            backend=hook.get_conn(), config=config(p),
        )  # fmt: skip
    finally:
        hook.close()
    return save(context, "database", out)


def mockups(ref: str, context: Mapping[str, Any]) -> str:
    from include.design import pipeline

    p = inputs(context)
    hook = nas_hook()
    try:
        out = pipeline.make_mockups(
            _engine(), hook.get_conn(), load(ref), templates_dir=p["templates_dir"],
            template=p["template"], shop=p["shop"], work_dir=work_dir(context),
        )  # fmt: skip
    finally:
        hook.close()
    return save(context, "mockups", out)


def listings(ref: str, context: Mapping[str, Any]) -> str:
    """Failed listings fail the task after the others are done: quota and auth errors without
    retries (AirflowFailException), transient ones are retried by Airflow."""
    from airflow.sdk.exceptions import AirflowFailException

    from imaging.hooks.etsy import EtsyHook
    from include.common.settings import get_settings
    from include.design import etsy, pipeline

    p = inputs(context)
    s = get_settings()
    client = (
        EtsyHook(etsy_conn_id=s.etsy_conn_id) if EtsyHook.is_configured(s.etsy_conn_id) else None
    )
    items = load(ref)
    hook = nas_hook()
    try:
        backlog = pipeline.listing_backlog(
            _engine(), hook.get_conn(), shop=p["shop"],
            exclude=[i["design_image_id"] for i in items
                     if i.get("decision") == pipeline.NEW and i.get("design_image_id")],
            work_dir=work_dir(context),
        )  # fmt: skip
    finally:
        hook.close()
    try:
        out = pipeline.publish_listings(
            _engine(), client, items + backlog, templates_dir=p["templates_dir"],
            template=p["template"], shop=p["shop"], outbox_root=s.data_dir / "design" / "etsy_outbox",
        )  # fmt: skip
    except (etsy.EtsyAuthError, etsy.EtsyQuotaExhausted) as exc:
        raise AirflowFailException(str(exc)) from exc
    path = save(context, "listings", out)
    failed = [i for i in out if (i.get("listing") or {}).get("state") == "failed"]
    if failed:
        errors = {i["key"]: i["listing"]["error"] for i in failed}
        kinds = {i["listing"].get("kind") for i in failed}
        msg = f"{len(failed)} Etsy listing(s) failed: {errors}"
        if kinds & {"auth", "quota", "rejected"}:  # retrying cannot help
            raise AirflowFailException(msg)
        raise RuntimeError(msg)  # transient (5xx, lost connection): Airflow retries
    return path


def questions(ref: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Approval questions for the better copies (pictures published as artefacts)."""
    from imaging.artefacts import publish_artefact
    from include.design import pipeline

    p = inputs(context)
    work = work_dir(context)
    hook = nas_hook()

    def picture(path: str, name: str) -> str | None:
        try:
            if path.startswith("nas:"):
                local = work / "stored" / Path(path[4:]).name
                if not local.exists():
                    hook.fetch(path[4:], local)
                path = str(local)
            return publish_artefact(context, path, name)["url"]
        except Exception as exc:  # a missing picture must not stop the question
            log.warning("cannot publish %s: %s", path, exc)
            return None

    try:
        return pipeline.replacement_questions(_engine(), load(ref), shop=p["shop"], picture=picture)
    finally:
        hook.close()


def apply(qs: list[dict[str, Any]], answers: Any, context: Mapping[str, Any]) -> str:
    from include.design import pipeline

    p = inputs(context)
    answers = list(answers or [])
    asked = [q for q in qs if not q.get("answered")]
    if len(answers) != len(asked):
        raise RuntimeError(f"{len(asked)} approval(s) asked, {len(answers)} answered")
    it = iter(answers)
    full = [None if q.get("answered") else next(it) for q in qs]
    hook = nas_hook()
    try:
        done = pipeline.apply_replacements(
            _engine(), hook.get_conn(), qs, full, shop=p["shop"], template=p["template"],
            when=_when(context), run_id=context["run_id"],
        )  # fmt: skip
        remade = [d["item"] for d in done if d.get("item")]
        if remade:
            pipeline.make_mockups(
                _engine(), hook.get_conn(), remade, templates_dir=p["templates_dir"],
                template=p["template"], shop=p["shop"], work_dir=work_dir(context),
            )  # fmt: skip
    finally:
        hook.close()
    return save(
        context, "replacements", [{k: v for k, v in d.items() if k != "item"} for d in done]
    )


def summary(context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's summary page and outcome, from whatever steps finished; the ledger per run."""
    from airflow.sdk.exceptions import AirflowFailException

    from imaging.artefacts import publish_artefact
    from imaging.hooks.etsy import EtsyHook
    from imaging.results import publish_run_summary
    from include.common.files import atomic_write_text
    from include.common.settings import get_settings
    from include.design import pipeline
    from include.design.summary import Connections, build_summary

    p = inputs(context)
    work = work_dir(context)
    items = None
    for step in ("listings", "mockups", "database", "nas", "decisions"):
        if (work / f"{step}.json").exists():
            items = load(str(work / f"{step}.json"))
            break
    if items is None:
        raise AirflowFailException("an earlier step failed before any file was processed")
    s = get_settings()
    hook = nas_hook()
    conns = Connections(
        nas_fallback=hook.fallback_root if hook.is_fallback else None,
        etsy_outbox=None
        if EtsyHook.is_configured(s.etsy_conn_id)
        else str(s.data_dir / "design" / "etsy_outbox"),
    )
    reps = load(str(work / "replacements.json")) if (work / "replacements.json").exists() else []

    def publish(path: str, name: str) -> str | None:
        return publish_artefact(context, path, name)["url"]

    result = build_summary(
        items, run_id=context["run_id"], shop=p["shop"], conns=conns, replacements=reps,
        publish=publish,
    )  # fmt: skip
    pipeline.record_outcomes(
        _engine(), items, shop=p["shop"], run_id=context["run_id"], pipeline=PIPELINE
    )
    # the machine-readable per-file outcome (scripts, tests), written before the page is
    # published: publishing fails this task when another task of the run failed
    report = pipeline.summarise(items)
    atomic_write_text(work / "report.json", json.dumps(report, indent=2, sort_keys=True))
    out = publish_run_summary(context, result)
    # the page is published; a run whose steps did not finish still fails (naming what is left)
    if not (work / "listings.json").exists():
        raise AirflowFailException(f"the run did not finish its steps; summary: {out['url']}")
    unfinished = {
        k: v for k, v in report["listings"].items() if v.get("state") not in ("complete", "outbox")
    }
    if unfinished:
        raise AirflowFailException(f"Etsy listings not done: {unfinished}; summary: {out['url']}")
    return dict(out)
