"""
# astro_calibration_masters

Astrophotography calibration masters: raw BIAS / DARK / FLAT frames → blink review → integrated
masters → calibration libraries → safe cleanup. Triggered by hand (after a calibration session).

Params: `calibration_dir` (the raw calibration frames as the lights pipeline sorted them, default
`<library_dir>/_Calibration`), `library_dir` (root of `_Bias Library`, `_Dark Library`,
`_Flat Stash`), `method` (`median` or `sigma_clip`), `min_frames`, `delete_raw`.

1. **plan_groups** — every frame is parsed like the lights pipeline parses frames (name tokens, then
   the FITS header) and grouped by the properties masters are matched on: BIAS by camera, gain,
   offset, settemp, readout mode; DARK also by exposure; FLAT also by optic, focal ratio, filter and
   night. A group with too few frames, mismatched frame sizes or a corrupt frame is reported and
   gets no master. A contact sheet PNG per group is written to `<library_dir>/_Integration/contact_sheets/`.
2. **blink_calibration** — approval in the Airflow UI listing every group with its contact sheet;
   `exclude_groups` takes the ids of groups that must not be integrated. *Reject* stops here.
3. **integrate_master** (mapped, one per group) — chunked median or sigma-clipped mean in bounded
   memory (61-megapixel frames fine); flats minus the master bias of the same camera settings (this
   run's, else the library's) and normalised; FITS with `IMAGETYP = MASTER BIAS|DARK|FLAT`,
   the group's properties, `NCOMBINE` and the sha256 of every input in the header. Written to
   `<library_dir>/_Integration/<group>/` (reused on rerun when inputs are unchanged).
4. **copy_to_library** — masters into the libraries with property-built names
   (`<camera>[/<optic>/DATE_<night>]/master<Type>_...fits`); identical → skipped, different →
   conflict, never overwritten; every copy verified by checksum and recorded in `item_records`.
5. **publish_library** — emits the Asset `astro_calibration_library` when a master was added (the
   lights pipeline distributes calibration on it).
6. **delete_raw** — BIAS, then DARK, then FLAT: a group's raw frames are deleted only when its master
   is in the library with the recorded checksum, and only frames whose sha256 equals the input
   checksum in that master's header; then its integration temp folder is removed.
7. **summary** — `<library_dir>/_Summary/astro_calibration_masters/<run>.json|.md`, also logged.

The contact sheets and the summary are also published for the browser at
`<[api] base_url>/artefacts/astro_calibration_masters/<run>/` (behind the Airflow login): the blink
approval and the task logs link them there (the published copies stay after the cleanup).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Param, TriggerRule, dag, task

from imaging.dag_defaults import CPU, DEFAULT_ARGS, IO

PIPELINE = "astro_calibration_masters"
ASSET_CALIBRATION_LIBRARY = Asset("astro_calibration_library")
INTEGRATION_DIR = "_Integration"


def _paths(params: dict[str, Any]) -> dict[str, Any]:
    from pathlib import Path

    from include.astro.layout import calibration_input_dir
    from include.common.settings import get_settings

    lib = Path(params.get("library_dir") or get_settings().data_dir / "astro" / "library")
    cal = Path(params.get("calibration_dir") or calibration_input_dir(lib))
    return {"lib": lib, "cal": cal, "work": lib / INTEGRATION_DIR}


def _library_dest(lib: Any, group: dict[str, Any]) -> Any:
    """Library path of a group's master (rig config ``library_subdir`` honoured, e.g. DWARFIII)."""
    from include.astro.library import library_path, subdirs_by_camera
    from include.astro.rigs import load_rigs

    subdir = subdirs_by_camera(load_rigs()).get(group["props"].get("camera"))
    return library_path(lib, group["imagetyp"], group["props"], subdir=subdir)


def _bias_key(props: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(props.get(k) for k in ("camera", "gain", "offset", "settemp", "readoutmode"))


def _flat_bias(group: dict[str, Any], p: dict[str, Any], method: str) -> str | None:
    """The master bias to subtract from a flat group: this run's bias of the same camera settings
    (integrated here if its own task has not yet - same bytes, reused), else the library's."""
    from include.astro.masters import integrate_group

    if group.get("bias_group"):
        return integrate_group(group["bias_group"], p["work"], method=method)["path"]
    props = dict(
        zip(
            ("camera", "gain", "offset", "settemp", "readoutmode"),
            _bias_key(group["props"]),
            strict=True,
        )
    )
    lib_bias = _library_dest(p["lib"], {"imagetyp": "BIAS", "props": props})
    return str(lib_bias) if lib_bias.is_file() else None


@dag(
    dag_id="astro_calibration_masters",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["astro", "calibration", "masters", "hitl"],
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "calibration_dir": Param(
            "",
            type="string",
            description="Raw BIAS/DARK/FLAT frames as the lights pipeline sorted them. "
            "Empty: <library_dir>/_Calibration.",
        ),
        "library_dir": Param(
            "",
            type="string",
            description="Library root holding _Bias Library, _Dark Library and _Flat Stash. "
            "Empty: $IMAGING_DATA_DIR/astro/library.",
        ),
        "method": Param(
            "median",
            type="string",
            enum=["median", "sigma_clip"],
            description="Integration: exact median, or mean of values within 3 sigma of the median.",
        ),
        "min_frames": Param(
            3, type="integer", minimum=2, description="Fewest frames a group needs for a master."
        ),
        "delete_raw": Param(
            True,
            type="boolean",
            description="Delete raw frames (and the integration temp folder) of groups whose master "
            "is verified in the library.",
        ),
    },
)
def astro_calibration_masters() -> None:
    @task
    def plan_groups(**context: Any) -> dict[str, Any]:
        """Group the raw calibration frames; validate groups; write contact sheets."""
        import logging

        from imaging.artefacts import artefact_link, publish_artefact
        from include.astro.calgroups import contact_sheet, group_frames
        from include.astro.library import covers

        log = logging.getLogger("airflow.task")
        p = _paths(context["params"])
        if not p["cal"].is_dir():
            log.warning("no calibration folder at %s: nothing to do", p["cal"])
            return {
                "groups": [],
                "errors": [],
                "markdown": f"No calibration folder at `{p['cal']}`.",
            }
        scan = group_frames(p["cal"], min_frames=int(context["params"]["min_frames"]))
        groups = [g.to_dict() for g in scan.groups]
        lines = [f"Calibration frames in `{p['cal']}`:", ""]
        for g in groups:
            if g["frames"] and not g["errors"] and covers(_library_dest(p["lib"], g), g["frames"]):
                # the rest of a group whose master is in the library (cleanup was interrupted)
                g.update(valid=True, problems=[], in_library=True)
            sheet = p["work"] / "contact_sheets" / f"{g['group_id']}.png"
            link = ""
            if g["frames"]:
                g["contact_sheet"] = contact_sheet(g, sheet)
                try:
                    pub = publish_artefact(context, sheet, f"contact_sheets/{sheet.name}")
                except (OSError, ValueError) as exc:  # the sheet stays readable on disk
                    log.warning("contact sheet of %s not published: %s", g["group_id"], exc)
                    link = f" - contact sheet `{sheet}` (not published: {exc})"
                else:
                    g["contact_sheet_url"] = pub["url"]
                    link = " - " + artefact_link("contact sheet", pub)
                    log.info("contact sheet of %s: %s", g["group_id"], pub["url"])
            state = "ok" if g["valid"] else "NOT INTEGRATED: " + "; ".join(g["problems"])
            if g.get("in_library"):
                state = "already in the library (leftover frames are cleaned up)"
            lines.append(
                f"- **{g['group_id']}** ({g['imagetyp']}, {g['n_frames']} frames) - {state}{link}"
            )
            if not g["valid"]:
                log.warning("group %s: %s", g["group_id"], "; ".join(g["problems"]))
        for e in scan.errors:
            log.warning("unreadable frame %s: %s", e.path, e.reason)
            lines.append(f"- unreadable frame `{e.path}`: {e.reason}")
        return {
            "groups": groups,
            "errors": [{"path": e.path, "reason": e.reason} for e in scan.errors],
            "markdown": "\n".join(lines),
        }

    plan = plan_groups()

    blink_calibration = ApprovalOperator(
        task_id="blink_calibration",
        subject="Blink the calibration frames before integrating masters",
        body="{{ ti.xcom_pull(task_ids='plan_groups')['markdown'] }}\n\n"
        "Approve to integrate every valid group (list group ids to leave out in "
        "`exclude_groups`); Reject stops the run.",
        params={
            "exclude_groups": Param(
                [],
                type="array",
                description="Group ids not to integrate (their raw frames are kept).",
            )
        },
        response_timeout=timedelta(days=7),
    )

    @task
    def select_groups(plan: dict[str, Any], **context: Any) -> list[dict[str, Any]]:
        """Valid groups, minus the ones excluded in the blink review; each flat group gets the bias
        group of the same camera settings (if selected) to subtract."""
        answer = context["ti"].xcom_pull(task_ids="blink_calibration") or {}
        excluded = set((answer.get("params_input") or {}).get("exclude_groups") or [])
        selected = [g for g in plan["groups"] if g["valid"] and g["group_id"] not in excluded]
        biases = {_bias_key(g["props"]): g for g in selected if g["imagetyp"] == "BIAS"}
        for g in selected:
            if g["imagetyp"] == "FLAT" and _bias_key(g["props"]) in biases:
                g["bias_group"] = biases[_bias_key(g["props"])]
        return selected

    @task(
        queue=CPU,  # median / sigma-clip stacking
        map_index_template="{{ task.op_kwargs['group']['group_id'] }}",
        max_active_tis_per_dagrun=2,  # ~0.6 GB each for 50 x 61 MP frames
    )
    def integrate_master(group: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Integrate one group into its master (temp folder); a bad group is reported, not raised.

        Frames that are all inputs of the master already in the library (a cleanup interrupted
        after the copy) are not integrated again: that master is used as is."""
        import logging

        from include.astro.library import covers
        from include.astro.masters import IntegrationError, integrate_group
        from include.common.files import sha256_file

        p = _paths(context["params"])
        dest = _library_dest(p["lib"], group)
        if covers(dest, group["frames"]):
            logging.getLogger("airflow.task").info(
                "%s: already in the library at %s", group["group_id"], dest
            )
            return {
                "group_id": group["group_id"],
                "imagetyp": group["imagetyp"],
                "path": str(dest),
                "checksum": sha256_file(dest),
                "n_frames": len(group["frames"]),
                "reused": True,
                "in_library": True,
            }
        method = context["params"]["method"]
        try:
            subtract = None
            if group["imagetyp"] == "FLAT":
                subtract = _flat_bias(group, p, method)
                if subtract is None:
                    logging.getLogger("airflow.task").warning(
                        "%s: no master bias for these camera settings: flat not bias-subtracted",
                        group["group_id"],
                    )
            return integrate_group(group, p["work"], method=method, subtract=subtract)
        except IntegrationError as exc:
            logging.getLogger("airflow.task").error("group %s: %s", group["group_id"], exc)
            return {"group_id": group["group_id"], "imagetyp": group["imagetyp"], "error": str(exc)}

    @task(queue=IO)  # verified copy to the library
    def copy_to_library(
        groups: list[dict[str, Any]], masters: list[dict[str, Any]], **context: Any
    ) -> list[dict[str, Any]]:
        """Copy verified masters into the libraries (no clobber) and record them."""
        import logging

        from imaging.appdb import app_engine
        from include.astro.library import copy_to_library as copy_one
        from include.common.db import session_scope
        from include.common.items import record_item

        log = logging.getLogger("airflow.task")
        p = _paths(context["params"])
        by_id = {g["group_id"]: g for g in groups}
        out: list[dict[str, Any]] = []
        for m in masters:
            g = by_id[m["group_id"]]
            if m.get("error"):
                out.append(
                    {"group_id": m["group_id"], "status": "not_integrated", "error": m["error"]}
                )
                continue
            dest = _library_dest(p["lib"], g)
            rec = copy_one(m["group_id"], g["imagetyp"], m["path"], dest, m["checksum"]).to_dict()
            (log.info if rec["verified"] else log.error)(
                "%s → %s: %s", m["group_id"], dest, rec["status"]
            )
            out.append(rec)
        with session_scope(app_engine()) as s:
            for rec in out:
                record_item(
                    s,
                    pipeline=PIPELINE,
                    kind="library_master",
                    key=rec.get("dest") or rec["group_id"],
                    status="done" if rec.get("verified") else "failed",
                    checksum=rec.get("checksum"),
                    error=rec.get("error"),
                    detail={"group_id": rec["group_id"], "status": rec["status"]},
                    run_id=context["run_id"],
                )
        return out

    @task(outlets=[ASSET_CALIBRATION_LIBRARY])
    def publish_library(copies: list[dict[str, Any]]) -> int:
        """Emit the library Asset when at least one master was added."""
        from airflow.sdk.exceptions import AirflowSkipException

        added = sum(1 for c in copies if c.get("status") == "copied")
        if not added:
            raise AirflowSkipException("no new master in the library")
        return added

    @task
    def delete_raw(
        groups: list[dict[str, Any]], copies: list[dict[str, Any]], **context: Any
    ) -> list[dict[str, Any]]:
        """BIAS → DARK → FLAT: delete raw frames of verified masters, then their temp folders."""
        import logging

        from include.astro.library import delete_raw_frames

        log = logging.getLogger("airflow.task")
        p = _paths(context["params"])
        if not context["params"]["delete_raw"]:
            log.info("delete_raw is off: raw frames kept")
            return []
        verified = {c["group_id"]: c for c in copies if c.get("verified")}
        plan = []
        for g in groups:
            c = verified.get(g["group_id"])
            plan.append(
                {
                    **g,
                    "library_path": c["dest"] if c else None,
                    "library_checksum": c["checksum"] if c else None,
                    "work_dir": str(p["work"] / g["group_id"]),
                }
            )
        results = [r.to_dict() for r in delete_raw_frames(plan, calibration_dir=p["cal"])]
        for r in results:
            sheet = p["work"] / "contact_sheets" / f"{r['group_id']}.png"
            if r["temp_removed"]:
                sheet.unlink(missing_ok=True)
            log.info(
                "%s: deleted %d raw frame(s)%s",
                r["group_id"],
                len(r["deleted"]),
                f"; {r['error']}" if r["error"] else "",
            )
        return results

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """Write and log the run summary (also after failures)."""
        import json
        import logging

        from imaging.artefacts import publish_artefact, run_artefacts_url
        from include.common.files import atomic_write_text, safe_name

        ti = context["ti"]
        p = _paths(context["params"])
        plan = ti.xcom_pull(task_ids="plan_groups") or {"groups": [], "errors": []}
        copies = ti.xcom_pull(task_ids="copy_to_library") or []
        cleanup = ti.xcom_pull(task_ids="delete_raw") or []
        report = {
            "run_id": context["run_id"],
            "groups": [
                {k: g[k] for k in ("group_id", "imagetyp", "n_frames", "valid", "problems")}
                for g in plan["groups"]
            ],
            "unreadable_frames": plan["errors"],
            "library": copies,
            "cleanup": [
                {k: r[k] for k in ("group_id", "imagetyp", "error", "temp_removed")}
                | {"deleted": len(r["deleted"]), "kept": r["kept"]}
                for r in cleanup
            ],
        }
        out = p["lib"] / "_Summary" / PIPELINE / safe_name(context["run_id"], default="run")
        atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
        md = [f"# {PIPELINE} {context['run_id']}", ""]
        for g in report["groups"]:
            md.append(
                f"- {g['group_id']}: {g['n_frames']} frames, "
                + ("valid" if g["valid"] else "NOT INTEGRATED: " + "; ".join(g["problems"]))
            )
        for c in copies:
            md.append(
                f"- library {c['group_id']}: {c['status']}"
                + (f" ({c['error']})" if c.get("error") else "")
            )
        atomic_write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
        log = logging.getLogger("airflow.task")
        log.info("summary:\n%s", "\n".join(md))
        links: dict[str, str] = {}
        for kind, suffix in (("markdown", ".md"), ("json", ".json")):
            try:
                links[kind] = publish_artefact(
                    context, out.with_suffix(suffix), f"summary{suffix}"
                )["url"]
            except (OSError, ValueError) as exc:  # never fails the summary
                log.warning("could not publish the %s summary: %s", kind, exc)
        links["all"] = run_artefacts_url(context)
        log.info(
            "run summary: %s (JSON: %s); all artefacts of this run: %s",
            links.get("markdown"),
            links.get("json"),
            links["all"],
        )
        return {"summary": str(out.with_suffix(".json")), "published": links}

    selected = select_groups(plan)
    plan >> blink_calibration >> selected
    masters = integrate_master.expand(group=selected)
    copies = copy_to_library(selected, masters)
    publish_library(copies)
    cleaned = delete_raw(selected, copies)
    cleaned >> summary()


astro_calibration_masters()
