"""
# astro_calibration_masters

Astrophotography calibration masters: raw BIAS / DARK / FLAT frames → blink review → integrated
masters → calibration libraries → safe cleanup. Triggered by hand (after a calibration session).

Params: `calibration_dir` (the raw calibration frames as the lights pipeline sorted them; empty:
setting `imaging_astro_calibration_dir`, else `<library_dir>/_Calibration`), `library_dir` (root of
`_Bias Library`, `_Dark Library`, `_Flat Stash`; empty: setting `imaging_astro_library_dir`),
`method` (`median` or `sigma_clip`), `min_frames`, `delete_raw`. Step logic:
`include/astro/steps/masters_*.py`; matching keys: `include/astro/matching.py`. XCom carries
references: the plan's path, group ids and counts; the plan, the selection and each step's results
are run files under `<library_dir>/_Summary/astro_calibration_masters/<run_id>/`.

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
5. **publish_library** — emits the Asset `astro_calibration_library` when a master was added, with
   `extra={"library_dir": ...}` (the lights pipeline distributes calibration on it, in that library).
5b. **import_external** — masters made elsewhere (`import_dir`: WBPP output, Siril) are imported
   into the libraries with the same matching keys (verified copy, never overwriting); with
   `wbpp_cleanup` WBPP's temp folders go once every master of `master/` is verified.
6. **delete_raw** — BIAS, then DARK, then FLAT: a group's raw frames are deleted only when its master
   is in the library with the recorded checksum, and only frames whose sha256 equals the input
   checksum in that master's header; then its integration temp folder is removed.
7. **summary** — `<library_dir>/_Summary/astro_calibration_masters/<run>.json|.md` and the run's
   summary page `/artefacts/astro_calibration_masters/<run>/summary.html` (contact sheets, groups,
   the blink answer, library copies, errors); fails itself when another task failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Param, TriggerRule, dag, task

from imaging.dag_defaults import CPU, DEFAULT_ARGS, IO

PIPELINE = "astro_calibration_masters"
ASSET_CALIBRATION_LIBRARY = Asset("astro_calibration_library")
FOLDERS = ("library_dir", "calibration_dir", "rigs")


def _inp(context: dict[str, Any]) -> Any:
    from imaging.astro import inputs
    from include.astro.steps.masters_plan import masters_inputs

    return masters_inputs(inputs(context, FOLDERS), context["run_id"])


@dag(
    dag_id=PIPELINE,
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["astro", "calibration", "masters", "hitl"],
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "calibration_dir": Param(
            None,
            type=["null", "string"],
            description="Raw BIAS/DARK/FLAT frames as the lights pipeline sorted them. Empty: the "
            "installation setting imaging_astro_calibration_dir, else <library_dir>/_Calibration.",
        ),
        "library_dir": Param(
            None,
            type=["null", "string"],
            description="Library root holding _Bias Library, _Dark Library and _Flat Stash. "
            "Empty: the installation setting imaging_astro_library_dir.",
        ),
        "rigs": Param(
            None,
            type=["null", "string"],
            description="Rig configuration file (library sub-folders). Empty: the installation "
            "setting imaging_astro_rigs, else the bundled default.",
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
        "import_dir": Param(
            None,
            type=["null", "string"],
            description="Folder of masters made elsewhere (PixInsight WBPP output, Siril) to import "
            "into the libraries with the same matching keys. Empty: no import.",
        ),
        "wbpp_cleanup": Param(
            False,
            type="boolean",
            description="After the import, delete WBPP's temp folders (calibrated, registered, ...) "
            "of import_dir when every master of its master/ folder is verified in the library.",
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
        from imaging.astro import publisher
        from include.astro.steps.masters_plan import plan_groups as step

        return step(_inp(context), int(context["params"]["min_frames"]), publisher(context))

    plan = plan_groups()

    blink_calibration = ApprovalOperator(
        task_id="blink_calibration",
        subject="Blink the calibration frames before integrating masters",
        body="{{ ti.xcom_pull(task_ids='plan_groups')['markdown'] }}\n\n"
        "Approve to integrate every valid group (list group ids to leave out in "
        "`exclude_groups`, or leave it empty); Reject stops the run.",
        params={
            "exclude_groups": Param(
                None,
                type=["null", "array"],
                description="Group ids not to integrate (their raw frames are kept). Empty: none.",
            )
        },
        response_timeout=timedelta(days=7),
    )

    @task
    def select_groups(plan: dict[str, Any], **context: Any) -> list[str]:
        """Ids of the valid groups minus the excluded ones (run file ``selected``: the groups,
        flats paired with this run's bias)."""
        from include.astro.steps.answers import human_answer
        from include.astro.steps.masters_plan import select_groups as step

        ans = human_answer(context["ti"].xcom_pull(task_ids="blink_calibration"), "Approve")
        return step(_inp(context), ans.params.get("exclude_groups"))

    @task(
        queue=CPU,  # median / sigma-clip stacking
        map_index_template="{{ task.op_kwargs['group_id'] }}",
        max_active_tis_per_dagrun=2,  # ~0.6 GB each for 50 x 61 MP frames
    )
    def integrate_master(group_id: str, **context: Any) -> dict[str, Any]:
        """Integrate one group into its master (temp folder); a bad group is reported."""
        from include.astro.steps.masters_integrate import integrate_master as step

        return step(_inp(context), group_id, context["params"]["method"])

    @task(queue=IO)  # verified copy to the library
    def copy_to_library(masters: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
        """Copy verified masters into the libraries (no clobber) and record them."""
        from imaging.astro import ItemLedger
        from include.astro.steps.masters_library import copy_to_library as step

        ledger = ItemLedger(PIPELINE, context["run_id"])
        out = step(_inp(context), masters, ledger)
        ledger.flush()
        return out

    @task(queue=IO)
    def import_external(**context: Any) -> dict[str, Any]:
        """Masters made elsewhere (WBPP, Siril) into the libraries; optional WBPP temp cleanup."""
        from imaging.astro import ItemLedger
        from include.astro.steps.masters_import import import_external as step

        ledger = ItemLedger(PIPELINE, context["run_id"])
        p = context["params"]
        out = step(_inp(context), p.get("import_dir"), bool(p.get("wbpp_cleanup")), ledger)
        ledger.flush()
        return out

    @task(outlets=[ASSET_CALIBRATION_LIBRARY], trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def publish_library(
        copies: dict[str, Any] | None, imported: dict[str, Any] | None, **context: Any
    ) -> int:
        """Emit the library Asset (with the library folder) when a master was added."""
        from airflow.sdk.exceptions import AirflowSkipException

        added = (copies or {}).get("copied", 0) + (imported or {}).get("copied", 0)
        if not added:
            raise AirflowSkipException("no new master in the library")
        context["outlet_events"][ASSET_CALIBRATION_LIBRARY].extra = {
            "library_dir": str(_inp(context).lib)
        }
        return added

    @task
    def delete_raw(copies: dict[str, Any], **context: Any) -> dict[str, Any] | None:
        """BIAS → DARK → FLAT: delete raw frames of verified masters, then their temp folders."""
        from include.astro.steps.masters_library import delete_raw as step

        if not context["params"]["delete_raw"]:
            return None
        return step(_inp(context))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(**context: Any) -> dict[str, Any]:
        """Library summary files + the run's summary page (fails when another task failed)."""
        from imaging.artefacts import run_artefacts_url
        from imaging.astro import publish_summary
        from include.astro.steps.answers import human_answer
        from include.astro.steps.masters_summary import run_summary

        raw_answer = context["ti"].xcom_pull(task_ids="blink_calibration")
        rs = run_summary(
            _inp(context),
            context["run_id"],
            human_answer(raw_answer, "Approve").to_dict() if raw_answer else None,
            links=[("All artefacts of this run", run_artefacts_url(context))],
        )
        return publish_summary(context, rs)

    selected = select_groups(plan)
    plan >> blink_calibration >> selected
    masters = integrate_master.expand(group_id=selected)
    copies = copy_to_library(masters)
    imported = import_external()
    published = publish_library(copies, imported)
    cleaned = delete_raw(copies)
    done = summary()
    [cleaned, published, imported] >> done  # not directly after the approval: Reject skips those


astro_calibration_masters()
