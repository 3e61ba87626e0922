"""Step ``blink_sheet`` (per rig: contact sheet + review request) and ``apply_blink`` (the answers).

The review's ``reject`` field is nullable: *Continue* with nothing typed rejects nothing, *Hold*
keeps the rig's lights in ``10_Blink``. Each answer (option, frames, who) is recorded in the ledger
(kind ``blink_decision``) and shown in the run summary. The sheet's frame index is the run file
``blink-<rig>``; XCom carries its path, the subject and body of the review and the links.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from include.astro import layout
from include.astro.blink import contact_sheet, resolve
from include.astro.cull import light_dirs, reject_files
from include.astro.moves import Ledger
from include.astro.steps import runfiles
from include.astro.steps.answers import human_answer
from include.astro.steps.lights_inputs import LightsInputs
from include.common.files import safe_name

CONTINUE, HOLD = "Continue", "Hold"
OPTIONS = [CONTINUE, HOLD]

Publish = Callable[[Any, str | None], str | None]


def _blink_root(inp: LightsInputs, rig: str) -> Path:
    return layout.rig_dir(inp.lib, rig) / layout.BLINK_DIR


def blink_manifest(
    inp: LightsInputs, rig: str, index: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What the blink page shows: every frame with its pixel metrics, their deviation from the
    median of its set (the frames of one light directory: target, night, filter, exposure) and
    the suggestions (clouds, trails, focus drift)."""
    from include.astro.metrics import METRIC_KEYS
    from include.astro.metrics_store import MetricsStore

    store = MetricsStore(inp.lib, rig)
    rows = []
    for e in index:
        m = store.get(e["file"])
        rows.append(
            {
                "n": e["n"],
                "file": e["file"],
                "name": Path(e["file"]).name,
                "rel": str(Path(e["file"]).relative_to(inp.lib)),
                "set": str(Path(e["file"]).parent.relative_to(_blink_root(inp, rig))),
                **(m.to_dict() if m else dict.fromkeys(METRIC_KEYS)),
            }
        )
    store.save()
    return {"rig": rig, "frames": per_set(rows), "options": OPTIONS}


def per_set(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows (with ``set``) plus each metric's deviation from its set's median and the hints, in
    the rows' order. Frames of different filters or exposures are never compared: narrowband and
    broadband frames differ in stars and background by design."""
    from include.astro.metrics import METRIC_KEYS, deviations, suggestions

    sets: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        sets.setdefault(str(r.get("set") or ""), []).append(r)
    by_file: dict[str, dict[str, Any]] = {}
    for members in sets.values():
        hints = suggestions(members)
        for f in deviations(members, METRIC_KEYS):
            f["hints"] = hints.get(str(f["file"]), [])
            by_file[str(f["file"])] = f
    return [by_file[str(r["file"])] for r in rows]


def blink_sheet(
    inp: LightsInputs,
    rig: str,
    publish: Publish,
    page_url: str | None = None,
    map_index: int = 0,
) -> dict[str, Any]:
    """Contact sheet of the rig's lights in 10_Blink (published), the blink page's manifest
    (published as ``blink_<map_index>.json``) and the review's subject/body."""
    lib = inp.lib
    files = [str(p) for fs in light_dirs(lib, rig).values() for p in fs]
    dest = runfiles.run_dir(lib, inp.run_key) / f"blink_{safe_name(rig)}.png"
    sheet = contact_sheet(files, dest, title=rig)
    manifest = blink_manifest(inp, rig, sheet["index"])
    mpath = runfiles.write(lib, inp.run_key, f"manifest-{map_index}", manifest)
    if publish(mpath, f"blink_{int(map_index)}.json") is None:
        page_url = None  # the page would have nothing to show
    url = publish(dest, None)
    link = f"[{dest.name}]({url})" if url else f"{dest.name} (not published: see the task log)"
    lines = [f"**Rig:** {rig} - {sheet['count']} light(s) in 10_Blink."]
    if page_url:
        lines.append(
            f"**Blink page:** [open the frames at screen size]({page_url}) (keys mark rejects "
            "and send the answer)."
        )
    lines += [
        f"**Contact sheet:** {link} (`{dest}`)",
        "",
        "Enter the frames to reject (numbers, ranges like `3-5`, or file names) and choose "
        f"*{CONTINUE}*; leave it empty to reject nothing. *{HOLD}* keeps this rig's data in "
        "10_Blink.",
        "",
    ]
    for f in manifest["frames"]:
        hint = f" - {'; '.join(f['hints'])}" if f["hints"] else ""
        lines.append(f"{f['n']}. `{f['rel']}`{hint}")
    sheet.update(
        rig=rig,
        url=url,
        page_url=page_url,
        subject=f"Blink review: {rig} ({sheet['count']} frames)",
        body="\n".join(lines),
    )
    path = runfiles.write(lib, inp.run_key, f"blink-{rig}", sheet)
    keys = ("rig", "count", "url", "page_url", "subject", "body")
    return {**{k: sheet[k] for k in keys}, "file": path}


def _index(inp: LightsInputs, sheet: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The frame index of a review (``n`` → file) from its run file."""
    full = runfiles.read(inp.lib, inp.run_key, f"blink-{sheet['rig']}")
    if full is None:
        raise FileNotFoundError(f"no blink sheet file for {sheet['rig']} in this run")
    return list(full["index"])


def apply_blink(
    inp: LightsInputs,
    sheets: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any] | None],
    record: Ledger,
) -> list[dict[str, Any]]:
    """Move the frames the reviewer chose to the reject folder; one entry per rig."""
    lib = inp.lib
    outputs = list(outputs or [])
    if len(outputs) != len(sheets):
        raise RuntimeError(f"{len(sheets)} review(s) asked, {len(outputs)} answered")
    out = []
    for sheet, output in zip(sheets, outputs, strict=True):
        ans = human_answer(output, HOLD)
        text = ans.params.get("reject") or ""
        files, errors = resolve(text, _index(inp, sheet)) if ans.chosen == CONTINUE else ([], [])
        rel = [str(Path(f).relative_to(lib)) for f in files]
        outs = reject_files(lib, sheet["rig"], rel, "blink review")
        done = [o.to_dict() for o in outs if o.status != "error"]
        errors += [o.to_dict() for o in outs if o.status == "error"]
        for o in done:
            record("blink_reject", o["src"], "done", {"dest": o["dest"]}, None)
        if not ans.timed_out:
            record(
                "blink_decision",
                f"{inp.run_key}:{sheet['rig']}",
                "done",
                {"decision": ans.chosen, "by": ans.by, "reject": text, "rejected": len(done)},
                None,
            )
        out.append(
            {
                "rig": sheet["rig"],
                "approved": ans.chosen == CONTINUE,
                "answer": ans.to_dict(),
                "rejected": done,
                "errors": errors,
            }
        )
    runfiles.write(lib, inp.run_key, "answers-blink", out)
    return [
        {"rig": o["rig"], "approved": o["approved"], "rejected": len(o["rejected"])} for o in out
    ]
