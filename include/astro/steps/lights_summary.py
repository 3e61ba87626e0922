"""Step ``summary`` of the lights pipeline: read the run's step files, write the library summary
(``_Summary/astro_prepare_lights/<run>.json|.md``) and build the run's summary page."""

from __future__ import annotations

from typing import Any

from include.astro.steps import runfiles
from include.astro.steps.lights_inputs import LightsInputs
from include.astro.summary import build_summary, to_markdown, to_run_summary, write_summary


def _answers(files: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in sorted(k for k in files if k.startswith("cull-")):
        for d in files[name].get("decided") or []:
            out.append(
                {
                    "approval": f"cull {d['pass_name']}",
                    "about": d["directory"],
                    "decision": d["decision"],
                    "frames": len(d.get("flagged") or []),
                    "by": "remembered answer"
                    + (" (earlier format, now stored per frame)" if d.get("converted") else ""),
                    "timed_out": False,
                }
            )
    for name in sorted(k for k in files if k.startswith("answers-cull-")):
        for e in files[name]:
            a = e.get("answer") or {}
            out.append(
                {
                    "approval": f"cull {e['pass_name']}",
                    "about": e["directory"],
                    "decision": e["decision"],
                    "frames": len(e.get("flagged") or []),
                    "by": a.get("by"),
                    "timed_out": a.get("timed_out", False),
                }
            )
    for b in files.get("answers-blink") or []:
        a = b.get("answer") or {}
        out.append(
            {
                "approval": "blink review",
                "about": b["rig"],
                "decision": a.get("chosen"),
                "frames": (a.get("params") or {}).get("reject") or "",
                "by": a.get("by"),
                "timed_out": a.get("timed_out", False),
            }
        )
    return out


def lights_summary(inp: LightsInputs, dag_id: str, run_id: str, links: list[Any]) -> Any:
    """The :class:`include.common.results.RunSummary` of the run (library files written)."""
    files = runfiles.read_all(inp.lib, inp.run_key)
    culls = [files[k] for k in sorted(files) if k.startswith("cull-")]
    for k in sorted(files):
        if k.startswith("answers-cull-"):
            culls += [{"rig": e["rig"], "decided": [e]} for e in files[k]]
    s = build_summary(
        run_key=run_id,
        prepare=files.get("prepare_raw"),
        culls=culls,
        blink=list(files.get("answers-blink") or []),
        distribute=[files[k] for k in sorted(files) if k.startswith("distribute-")],
        promote=[files["promote"]] if "promote" in files else [],
        answers=_answers(files),
    )
    paths = write_summary(inp.lib, s)
    sheets = [files[k] for k in sorted(files) if k.startswith("blink-")]
    rs = to_run_summary(s, dag_id=dag_id, run_id=run_id, sheets=sheets, links=links)
    return rs, s, paths, to_markdown(s)
