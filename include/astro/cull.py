"""Quality cull of lights in a rig's ``10_Blink`` tree (two passes per rig: moderate, then strict).

Per light directory (``<target>/DATE_<d>/FILTER_.._EXP_..``) and pass: a frame is flagged when
``HFR > max_hfr`` or ``RMSAC > max_rms`` (a missing value never flags). When the flagged share of the
directory is below the pass's ``auto_percent`` the flagged frames are rejected right away; otherwise
the directory is *pending*: a human decides (reject flagged / keep all) in an approval task.

Human answers are remembered **per frame** by :func:`frame_key` (the frame's path and the flag
reason, which holds its metrics and the thresholds): a frame a human kept is never auto-rejected
later by the same thresholds unless its metrics change, and a frame a human rejected is rejected
again if it comes back. Remembered frames are taken out before the automatic share is computed;
only frames nobody decided on are rejected automatically or asked about.

Answers stored in the earlier format (one ledger key per approval: :func:`decision_key` of the pass,
the directory and its whole flagged set) are converted when read: the frames of a directory whose
flagged set matches such a key (also with up to :data:`LEGACY_NEW_FRAMES` frames added since) take
that answer, and the ``decided`` entry lists their :func:`frame_key` under ``converted`` so the
caller stores them per frame (a later change of the flagged set no longer loses the answer).

Rejected frames move to ``<rig>/_Reject/<path relative to the rig folder>`` (never deleted).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from include.astro import layout
from include.astro.frames import Frame, try_parse_frame
from include.astro.headers import is_frame_file
from include.astro.moves import ItemOutcome, move_one, prune_light_dir
from include.astro.rigs import CullPass, RigsConfig
from include.common.files import FileConflictError, MoveResult

REJECT = "Reject flagged"
KEEP = "Keep all"
_MASTER_NAME = re.compile(r"^master", re.IGNORECASE)


def is_light_file(name: str) -> bool:
    """A frame file that is not a distributed master (``master*``)."""
    return is_frame_file(name) and not _MASTER_NAME.match(name)


def light_dirs(
    library_dir: str | os.PathLike[str], rig: str, stage: str = layout.BLINK_DIR
) -> dict[str, list[Path]]:
    """``{directory relative to library_dir: [light files]}`` below ``<rig>/<stage>`` (sorted)."""
    lib = Path(library_dir)
    base = layout.rig_dir(lib, rig) / stage
    out: dict[str, list[Path]] = {}
    if not base.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(
            d for d in dirnames if not layout.is_skipped_dir(d) and d != layout.ACCEPT_DIR
        )
        files = sorted(Path(dirpath) / f for f in filenames if is_light_file(f))
        if files:
            out[str(Path(dirpath).relative_to(lib))] = files
    return dict(sorted(out.items()))


def decision_key(pass_name: str, directory: str, flagged: Iterable[str]) -> str:
    """Key of one approval request (a pass, a directory and its undecided flagged set)."""
    digest = hashlib.sha1("\n".join(sorted(flagged)).encode()).hexdigest()[:12]
    return f"{pass_name}:{directory}:{digest}"


LEGACY_NEW_FRAMES = 2  # frames added to a directory since an earlier-format answer


def legacy_decision(
    decisions: Mapping[str, str], pass_name: str, directory: str, flagged: Iterable[str]
) -> tuple[str, str, set[str]] | None:
    """An earlier-format answer (:func:`decision_key`) about this pass and directory:
    ``(key, decision, files it covers)``. The stored key names the exact flagged set of the time;
    frames flagged since (at most :data:`LEGACY_NEW_FRAMES`) are not covered. None: no such answer."""
    prefix = f"{pass_name}:{directory}:"
    stored = {
        k: v
        for k, v in decisions.items()
        if k.startswith(prefix) and v in (REJECT, KEEP) and ":" not in k[len(prefix) :]
    }
    if not stored:
        return None
    files = sorted(set(flagged))
    for n_new in range(min(LEGACY_NEW_FRAMES, max(len(files) - 1, 0)) + 1):
        for new in itertools.combinations(files, n_new):
            covered = [f for f in files if f not in new]
            key = decision_key(pass_name, directory, covered)
            if key in stored:
                return key, stored[key], set(covered)
    return None


def frame_key(file: str, reason: str) -> str:
    """Key of a human answer about one frame: its path (relative to the library) and the flag
    reason (metrics and thresholds, e.g. ``HFR 4.8 > 4.6``). Changed metrics = a new question."""
    return f"frame:{file}|{reason}"


def frame_keys(verdict: Mapping[str, Any]) -> list[str]:
    return [frame_key(f["file"], f["reason"]) for f in verdict["flagged"]]


@dataclass
class DirVerdict:
    rig: str
    pass_name: str
    directory: str  # relative to library_dir
    total: int
    flagged: list[dict[str, str]] = field(default_factory=list)  # {"file", "reason"}

    @property
    def share(self) -> float:
        return 100.0 * len(self.flagged) / self.total if self.total else 0.0

    @property
    def key(self) -> str:
        return decision_key(self.pass_name, self.directory, (f["file"] for f in self.flagged))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["share"] = round(self.share, 1)
        d["key"] = self.key
        return d


def flag_frames(frames: Iterable[Frame], cull_pass: CullPass) -> list[tuple[Frame, str]]:
    out = []
    for f in frames:
        reason = cull_pass.flags(f)
        if reason:
            out.append((f, reason))
    return out


def reject_files(
    library_dir: str | os.PathLike[str], rig: str, files: Iterable[str], why: str
) -> list[ItemOutcome]:
    """Move files (relative to ``library_dir``) to the rig's reject folder, keeping their relative
    path. A file already gone but present in the reject folder counts as done (rerun). Folders
    emptied by the rejects are removed (group, ``DATE_`` and target folder)."""
    lib = Path(library_dir)
    out: list[ItemOutcome] = []
    touched: set[Path] = set()
    for rel in files:
        src = lib / rel
        dest = layout.reject_dir(lib, rig) / src.relative_to(layout.rig_dir(lib, rig))
        dest_rel = str(dest.relative_to(lib))
        if not src.exists():
            if dest.exists():
                out.append(
                    ItemOutcome(
                        src=rel, status="already_present", dest=dest_rel, rig=rig, reason=why
                    )
                )
            else:
                out.append(ItemOutcome(src=rel, status="error", rig=rig, reason="file not found"))
            continue
        try:
            res = move_one(src, dest)
        except FileConflictError:
            out.append(
                ItemOutcome(
                    src=rel,
                    status="error",
                    rig=rig,
                    dest=dest_rel,
                    reason="a different file is already in the reject folder",
                )
            )
            continue
        except OSError as exc:
            out.append(
                ItemOutcome(src=rel, status="error", rig=rig, dest=dest_rel, reason=str(exc))
            )
            continue
        status = "already_present" if res is MoveResult.ALREADY_PRESENT else "moved"
        out.append(ItemOutcome(src=rel, status=status, dest=dest_rel, rig=rig, reason=why))
        touched.add(src.parent)
    for d in sorted(touched):
        if d.is_dir() and not any(d.iterdir()):
            prune_light_dir(d)
    return out


def cull_rig(
    library_dir: str | os.PathLike[str],
    rig: str,
    cfg: RigsConfig,
    pass_index: int,
    decisions: Mapping[str, str] | None = None,
    measure_hfr: Callable[[Path], float | None] | None = None,
) -> dict[str, Any]:
    """Run one cull pass over a rig's ``10_Blink`` tree.

    ``measure_hfr`` gives the HFR measured from the pixels (:mod:`include.astro.metrics_store`) for
    frames whose NINA name and header have none; its flag reason says "HFR (measured)".

    Returns ``{"rig", "pass", "auto_rejected": [outcome], "decided": [{"key", "decision", ...}],
    "pending": [verdict], "errors": [outcome], "directories": n}``; ``decisions`` maps
    :func:`frame_key` → ``REJECT``/``KEEP`` from earlier human answers (per frame; earlier-format
    :func:`decision_key` answers are converted, see :func:`legacy_decision`)."""
    decisions = decisions or {}
    rc = cfg.for_rig(rig)
    lib = Path(library_dir)
    result: dict[str, Any] = {
        "rig": rig,
        "pass": pass_index,
        "pass_name": None,
        "auto_rejected": [],
        "decided": [],
        "pending": [],
        "errors": [],
        "directories": 0,
    }
    if pass_index >= len(rc.cull):
        return result
    cp = rc.cull[pass_index]
    result["pass_name"] = cp.name
    for directory, files in light_dirs(lib, rig).items():
        result["directories"] += 1
        frames: list[Frame] = []
        for p in files:
            frame, reason = try_parse_frame(
                p, root=lib, pattern=cfg.token_pattern, night_offset_hours=cfg.night_offset_hours
            )
            if frame is None:
                result["errors"].append(
                    ItemOutcome(
                        src=str(p.relative_to(lib)), status="error", rig=rig, reason=reason
                    ).to_dict()
                )
            else:
                if frame.hfr is None and measure_hfr is not None and cp.max_hfr is not None:
                    hfr = measure_hfr(p)
                    if hfr is not None:
                        frame = replace(frame, hfr=round(hfr, 2), hfr_src="measured")
                frames.append(frame)
        verdict = DirVerdict(rig, cp.name, directory, total=len(frames))
        remembered: dict[str, list[dict[str, str]]] = {REJECT: [], KEEP: []}
        converted: dict[str, list[str]] = {REJECT: [], KEEP: []}
        flagged = [
            {"file": str(Path(f.path).relative_to(lib)), "reason": why}
            for f, why in flag_frames(frames, cp)
        ]
        legacy = legacy_decision(decisions, cp.name, directory, (i["file"] for i in flagged))
        for item in flagged:
            key = frame_key(item["file"], item["reason"])
            earlier = decisions.get(key)
            if earlier not in remembered and legacy and item["file"] in legacy[2]:
                earlier = legacy[1]
                converted[earlier].append(key)
            if earlier in remembered:
                remembered[earlier].append(item)
            else:
                verdict.flagged.append(item)
        why = f"cull {cp.name}"
        for decision, items in remembered.items():
            if not items:
                continue
            entry: dict[str, Any] = {
                "key": decision_key(cp.name, directory, (i["file"] for i in items)),
                "decision": decision,
                "remembered": True,
                **DirVerdict(rig, cp.name, directory, len(frames), items).to_dict(),
            }
            if converted[decision]:
                assert legacy is not None
                entry["converted"] = converted[decision]
                entry["legacy_key"] = legacy[0]
            if decision == REJECT:
                outs = reject_files(lib, rig, [i["file"] for i in items], why + " (approved)")
                entry["rejected"] = [o.to_dict() for o in outs if o.status != "error"]
                result["errors"] += [o.to_dict() for o in outs if o.status == "error"]
            result["decided"].append(entry)
        if not verdict.flagged:
            continue
        files_to_reject = [f["file"] for f in verdict.flagged]
        if verdict.share < cp.auto_percent:
            outs = reject_files(lib, rig, files_to_reject, why)
            result["auto_rejected"] += [o.to_dict() for o in outs if o.status != "error"]
            result["errors"] += [o.to_dict() for o in outs if o.status == "error"]
            continue
        result["pending"].append(verdict.to_dict())
    return result


def approval_text(verdict: Mapping[str, Any], cull_pass: str | None = None) -> tuple[str, str]:
    """Subject and markdown body of the approval task for one pending directory."""
    subject = (
        f"Cull {verdict['pass_name']}: {len(verdict['flagged'])} of {verdict['total']} frames "
        f"flagged in {verdict['directory']}"
    )
    lines = [
        f"**Rig:** {verdict['rig']}",
        f"**Directory:** `{verdict['directory']}`",
        f"**Flagged:** {len(verdict['flagged'])} of {verdict['total']} ({verdict['share']} %), "
        f"at or above the automatic limit of this pass.",
        "",
        "| frame | reason |",
        "|---|---|",
    ]
    lines += [f"| `{Path(f['file']).name}` | {f['reason']} |" for f in verdict["flagged"]]
    lines += ["", f"Choose **{REJECT}** to move them to the reject folder or **{KEEP}**."]
    return subject, "\n".join(lines)


def apply_decision(
    library_dir: str | os.PathLike[str], verdict: Mapping[str, Any], decision: str
) -> dict[str, Any]:
    """Apply a human answer to a pending directory; returns the ``decided`` entry."""
    entry: dict[str, Any] = {"key": verdict["key"], "decision": decision, **dict(verdict)}
    entry["frame_keys"] = frame_keys(verdict)  # what to remember (per frame)
    if decision == REJECT:
        outs = reject_files(
            library_dir,
            verdict["rig"],
            [f["file"] for f in verdict["flagged"]],
            f"cull {verdict['pass_name']} (approved)",
        )
        entry["rejected"] = [o.to_dict() for o in outs if o.status != "error"]
        entry["errors"] = [o.to_dict() for o in outs if o.status == "error"]
    return entry
