"""Step ``blink_sheet`` (per rig: contact sheet + review request) and ``apply_blink`` (the answers).

The review's ``reject`` field is nullable: *Continue* with nothing typed rejects nothing, *Hold*
keeps the rig's lights in ``10_Blink``. Each answer (option, frames, who) is recorded in the ledger
(kind ``blink_decision``) and shown in the run summary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

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


def blink_sheet(
    inp: LightsInputs,
    rig: str,
    publish: Publish,
    page_url: str | None = None,
) -> dict[str, Any]:
    """Contact sheet of the rig's lights in 10_Blink (published) and the review's subject/body."""
    lib = inp.lib
    files = [str(p) for fs in light_dirs(lib, rig).values() for p in fs]
    dest = runfiles.run_dir(lib, inp.run_key) / f"blink_{safe_name(rig)}.png"
    sheet = contact_sheet(files, dest, title=rig)
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
    lines += [f"{e['n']}. `{e['file'][len(str(lib)) + 1 :]}`" for e in sheet["index"]]
    sheet.update(
        rig=rig,
        url=url,
        page_url=page_url,
        subject=f"Blink review: {rig} ({sheet['count']} frames)",
        body="\n".join(lines),
    )
    runfiles.write(lib, inp.run_key, f"blink-{rig}", sheet)
    return sheet


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
        files, errors = resolve(text, sheet["index"]) if ans.chosen == CONTINUE else ([], [])
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
