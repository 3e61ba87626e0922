"""Step ``cull_N`` (per rig and pass) and ``apply_cull_N`` (the human answers of its approvals).

Human answers are remembered per frame (:func:`include.astro.cull.frame_key`, ledger kind
``cull_decision``): a later run applies them instead of asking again, and never auto-rejects a frame
a human kept unless its metrics change. Answers stored in the earlier format (one key per approval
over its flagged set) are converted when read and stored per frame. An approval nobody answered applies *Keep all* for this run
only (not remembered: the next run asks again).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from include.astro.cull import KEEP, apply_decision, approval_text, cull_rig, light_dirs
from include.astro.moves import Ledger
from include.astro.steps import runfiles
from include.astro.steps.answers import human_answer
from include.astro.steps.lights_inputs import LightsInputs

DECISION_KIND = "cull_decision"


def list_rigs(inp: LightsInputs) -> list[str]:
    """Rig folders of the library holding lights in 10_Blink (new or held from earlier runs)."""
    rig_re = re.compile(inp.cfg.token_pattern.rig_regex)
    if not inp.lib.is_dir():
        return []
    return sorted(
        p.name
        for p in inp.lib.iterdir()
        if p.is_dir() and rig_re.match(p.name) and light_dirs(inp.lib, p.name)
    )


def _record_rejects(record: Ledger, outcomes: Sequence[Mapping[str, Any]], pass_name: Any) -> None:
    for o in outcomes:
        record("cull_reject", o["src"], "done", {"pass": pass_name, "dest": o["dest"]}, None)


def cull(
    inp: LightsInputs,
    rig: str,
    pass_index: int,
    decisions: Mapping[str, str],
    record: Ledger,
) -> dict[str, Any]:
    """One cull pass of one rig; returns the pending verdicts (for the approvals) and counts."""
    from include.astro.metrics_store import MetricsStore

    store = MetricsStore(inp.lib, rig)
    res = cull_rig(inp.lib, rig, inp.cfg, pass_index, decisions=decisions, measure_hfr=store.hfr)
    store.save()
    _record_rejects(record, res["auto_rejected"], res["pass_name"])
    for d in res["decided"]:
        for key in d.get("converted") or []:  # an earlier-format answer, now stored per frame
            record(
                DECISION_KIND,
                key,
                "done",
                {
                    "decision": d["decision"],
                    "by": f"converted from {d['legacy_key']}",
                    "directory": d["directory"],
                    "library": str(inp.lib),
                },
                None,
            )
        _record_rejects(record, d.get("rejected") or [], d["pass_name"])
    path = runfiles.write(inp.lib, inp.run_key, f"cull-{pass_index + 1}-{rig}", res)
    return {
        "rig": rig,
        "pass_name": res["pass_name"],
        "pending": res["pending"],
        "auto_rejected": len(res["auto_rejected"]),
        "remembered": len(res["decided"]),
        "errors": len(res["errors"]),
        "directories": res["directories"],
        "file": path,
    }


def approval_requests(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One approval per pending directory: ``{"subject", "body", "verdict"}``."""
    out = []
    for r in results or []:
        for v in r["pending"]:
            subject, body = approval_text(v)
            out.append({"subject": subject, "body": body, "verdict": v})
    return out


def apply_answers(
    inp: LightsInputs,
    pass_no: int,
    items: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any] | None],
    record: Ledger,
) -> dict[str, Any]:
    """Apply the answers of pass ``pass_no``'s approvals; remember the human ones per frame."""
    outputs = list(outputs or [])
    if len(outputs) != len(items):
        raise RuntimeError(f"{len(items)} approval(s) asked, {len(outputs)} answered")
    entries = []
    for item, output in zip(items, outputs, strict=True):
        ans = human_answer(output, KEEP)
        entry = apply_decision(inp.lib, item["verdict"], ans.chosen)
        entry["answer"] = ans.to_dict()
        if not ans.timed_out:
            for key in entry["frame_keys"]:
                record(
                    DECISION_KIND,
                    key,
                    "done",
                    {
                        "decision": ans.chosen,
                        "by": ans.by,
                        "directory": entry["directory"],
                        "library": str(inp.lib),
                    },
                    None,
                )
        _record_rejects(record, entry.get("rejected") or [], entry["pass_name"])
        entries.append(entry)
    path = runfiles.write(inp.lib, inp.run_key, f"answers-cull-{pass_no}", entries)
    return {
        "answers": [
            {"directory": e["directory"], "decision": e["decision"], **e["answer"]} for e in entries
        ],
        "file": path,
    }
