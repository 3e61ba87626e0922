"""Update a NINA Target Scheduler database (SQLite) with the catalog's accepted counts.

The Target Scheduler plugin keeps, per NINA profile, projects → targets → exposure plans; each plan
(``exposureplan``) has ``desired`` / ``acquired`` / ``accepted`` counts, an ``exposure`` (``-1`` or
``0``: use the template's ``defaultexposure``) and an ``exposuretemplate`` with the filter. Mosaic
panels are targets named ``"<target> Panel <n>"``.

:func:`update_accepted` matches each plan to the catalog by (profile id, target, panel, filter,
exposure) and writes the accepted count - and, like the seed's origin script, the same value as
``acquired`` - in one SQLite transaction. The origin's "master ready" rule is kept: an accepted count
that is short of desired but above :data:`MASTER_READY_PERCENT` of it counts as complete and is
written as ``2 × desired`` (so the scheduler's over-acquire allowance never asks for more subs).
Before the first change the file is backed up next to itself (``<name>.<sha8 of its content>.bak``,
deterministic, never overwritten). Reruns with unchanged data change nothing.

:func:`create_scheduler_db` writes a realistic Target Scheduler database (the plugin's table and
column names, its defaults) for tests and the demo.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

MASTER_READY_PERCENT = 0.95

# Target Scheduler plugin schema (tables and columns as the plugin's SQLite file has them; the
# plugin's later migrations added columns with defaults, included here).
SCHEMA = """
CREATE TABLE IF NOT EXISTS project (
    Id INTEGER NOT NULL PRIMARY KEY,
    profileId TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    state INTEGER,
    priority INTEGER,
    createdate INTEGER,
    activedate INTEGER,
    inactivedate INTEGER,
    minimumtime INTEGER,
    minimumaltitude REAL,
    usecustomhorizon INTEGER,
    horizonoffset REAL,
    meridianwindow INTEGER,
    filterswitchfrequency INTEGER,
    ditherevery INTEGER,
    enablegrader INTEGER,
    isMosaic INTEGER NOT NULL DEFAULT 0,
    flatsHandling INTEGER NOT NULL DEFAULT 0,
    maximumAltitude REAL DEFAULT 0,
    smartexposureorder INTEGER DEFAULT 0,
    guid TEXT
);
CREATE TABLE IF NOT EXISTS target (
    Id INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    active INTEGER NOT NULL,
    ra REAL,
    dec REAL,
    epochcode INTEGER NOT NULL,
    rotation REAL,
    roi REAL,
    projectid INTEGER REFERENCES project(Id),
    unusedOEO TEXT,
    guid TEXT
);
CREATE TABLE IF NOT EXISTS exposuretemplate (
    Id INTEGER NOT NULL PRIMARY KEY,
    profileId TEXT NOT NULL,
    name TEXT NOT NULL,
    filtername TEXT NOT NULL,
    gain INTEGER,
    offset INTEGER,
    bin INTEGER,
    readoutmode INTEGER,
    twilightlevel INTEGER,
    moonavoidanceenabled INTEGER,
    moonavoidanceseparation REAL,
    moonavoidancewidth INTEGER,
    maximumhumidity REAL,
    defaultexposure REAL DEFAULT 60,
    moonrelaxscale REAL DEFAULT 0,
    moonrelaxmaxaltitude REAL DEFAULT 5,
    moonrelaxminaltitude REAL DEFAULT -15,
    moondownenabled INTEGER DEFAULT 0,
    ditherevery INTEGER DEFAULT -1,
    minutesOffset INTEGER DEFAULT 0,
    guid TEXT
);
CREATE TABLE IF NOT EXISTS exposureplan (
    Id INTEGER NOT NULL PRIMARY KEY,
    profileId TEXT NOT NULL,
    exposure REAL NOT NULL,
    desired INTEGER,
    acquired INTEGER,
    accepted INTEGER,
    targetid INTEGER REFERENCES target(Id),
    exposureTemplateId INTEGER REFERENCES exposuretemplate(Id),
    enabled INTEGER DEFAULT 1,
    guid TEXT
);
CREATE TABLE IF NOT EXISTS acquiredimage (
    Id INTEGER NOT NULL PRIMARY KEY,
    projectId INTEGER NOT NULL,
    targetId INTEGER NOT NULL,
    acquireddate INTEGER,
    filtername TEXT NOT NULL,
    gradingStatus INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    rejectreason TEXT,
    profileId TEXT,
    exposureId INTEGER DEFAULT 0,
    guid TEXT
);
CREATE TABLE IF NOT EXISTS imagedata (
    Id INTEGER NOT NULL PRIMARY KEY,
    tag TEXT,
    imagedata BLOB,
    acquiredimageid INTEGER REFERENCES acquiredimage(Id),
    width INTEGER DEFAULT 0,
    height INTEGER DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ruleweight (
    Id INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    weight REAL NOT NULL,
    projectid INTEGER REFERENCES project(Id)
);
CREATE TABLE IF NOT EXISTS filtercadenceitem (
    Id INTEGER NOT NULL PRIMARY KEY,
    targetid INTEGER NOT NULL,
    "order" INTEGER NOT NULL,
    next INTEGER,
    action INTEGER NOT NULL,
    referenceIdx INTEGER
);
CREATE TABLE IF NOT EXISTS profilepreference (
    Id INTEGER NOT NULL PRIMARY KEY,
    profileId TEXT NOT NULL,
    enableGradeRMS INTEGER,
    enableGradeStars INTEGER,
    enableGradeHFR INTEGER,
    maxGradingSampleSize INTEGER,
    rmsPixelThreshold REAL,
    detectedStarsSigmaFactor REAL,
    hfrSigmaFactor REAL,
    acceptimprovement INTEGER DEFAULT 1,
    exposurethrottle REAL DEFAULT 125,
    enableMoveRejected INTEGER DEFAULT 0,
    guid TEXT
);
"""

RULE_WEIGHTS = (
    ("Meridian Window Priority", 75),
    ("Moon Avoidance", 50),
    ("Percent Complete", 50),
    ("Project Priority", 50),
    ("Setting Soonest", 50),
    ("Target Switch Penalty", 67),
)


class SchedulerDBError(ValueError):
    """The file is not a Target Scheduler database."""


def split_panel(name: str) -> tuple[str, str]:
    """``"M 31 Panel 2"`` → ``("M 31", "2")``; no panel → ``""``."""
    m = re.match(r"^(.*) Panel (.*)$", name)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return name.strip(), ""


def _exp_text(value: Any) -> str:
    return f"{float(value):.2f}"


# ------------------------------------------------------------------ catalog side


def accepted_counts(session: Session) -> dict[tuple[str, str, str, str, str], int]:
    """``{(profile id, target, panel, filter, exposure "%.2f"): accepted count}`` from the catalog."""
    from include.astro.models import AstroAcceptedData, AstroFilter, AstroProfile, AstroTarget

    q = (
        select(
            AstroProfile.id,
            AstroTarget.name,
            AstroAcceptedData.panel_name,
            AstroFilter.name,
            AstroAcceptedData.shutter_time_seconds,
            func.sum(AstroAcceptedData.accepted_count),
        )
        .join(AstroTarget, AstroTarget.id == AstroAcceptedData.target_id)
        .join(AstroFilter, AstroFilter.id == AstroAcceptedData.filter_id)
        .join(
            AstroProfile,
            (AstroProfile.camera_id == AstroAcceptedData.camera_id)
            & (AstroProfile.optic_id == AstroAcceptedData.optic_id),
        )
        .group_by(
            AstroProfile.id,
            AstroTarget.name,
            AstroAcceptedData.panel_name,
            AstroFilter.name,
            AstroAcceptedData.shutter_time_seconds,
        )
    )
    return {
        (pid, target, panel or "", filt, _exp_text(exp)): int(n)
        for pid, target, panel, filt, exp, n in session.execute(q)
    }


# ---------------------------------------------------------------- scheduler side


@dataclass
class PlanChange:
    plan_id: int
    profile_id: str
    target: str
    panel: str
    filter: str
    exposure: str
    desired: int
    old_accepted: int | None
    new_accepted: int
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    p = Path(path)
    if not p.is_file():
        raise SchedulerDBError(f"scheduler database {p} does not exist")
    conn = sqlite3.connect(p, timeout=30)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise SchedulerDBError(f"{p} is not a SQLite database: {exc}") from exc
    missing = {"project", "target", "exposureplan", "exposuretemplate"} - tables
    if missing:
        conn.close()
        raise SchedulerDBError(
            f"{p} is not a Target Scheduler database (missing {sorted(missing)})"
        )
    return conn


def read_plans(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    from include.astro.frames import normalize_filter

    rows = conn.execute(
        """
        SELECT ep.Id, ep.profileId, t.name, et.filtername, et.name, ep.exposure,
               et.defaultexposure, ep.desired, ep.accepted, p.name
        FROM exposureplan ep
        JOIN exposuretemplate et ON et.Id = ep.exposureTemplateId
        JOIN target t ON t.Id = ep.targetid
        JOIN project p ON p.Id = t.projectid
        ORDER BY ep.Id
        """
    ).fetchall()
    plans = []
    for (
        pid,
        profile,
        tname,
        filtername,
        tmpl_name,
        exp,
        default_exp,
        desired,
        accepted,
        proj,
    ) in rows:
        target, panel = split_panel(tname)
        exposure = exp if exp is not None and float(exp) > 0 else default_exp
        plans.append(
            {
                "plan_id": int(pid),
                "profile_id": str(profile),
                "project": proj,
                "target": target,
                "panel": panel,
                "filter": normalize_filter(filtername or tmpl_name or ""),
                "exposure": _exp_text(exposure if exposure is not None else 60),
                "desired": int(desired or 0),
                "accepted": None if accepted is None else int(accepted),
            }
        )
    return plans


def planned_accepted(desired: int, accepted: int, ready: float = MASTER_READY_PERCENT) -> int:
    """The origin's rule: just short of desired (> ``ready``) counts as complete → ``2 × desired``."""
    if desired > 0 and accepted < desired and accepted / desired > ready:
        return desired * 2
    return accepted


def _backup(path: Path) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    dest = path.with_name(f"{path.name}.{digest}.bak")
    if not dest.exists():
        src = sqlite3.connect(path)
        tmp = dest.with_name(dest.name + ".partial")
        try:
            dst = sqlite3.connect(tmp)
            with dst:
                src.backup(dst)
            dst.close()
            os.replace(tmp, dest)
        finally:
            src.close()
            tmp.unlink(missing_ok=True)
    return dest


def held_light_keys(
    library_dir: str | os.PathLike[str], rig_regex: str | None = None
) -> set[tuple[str, str, str, str]]:
    """``{(target, panel, filter, exposure "%.2f")}`` of the lights still held in ``10_Blink``
    (waiting for a blink review or masters): their plans must not be lowered."""
    import re

    from include.astro.cull import light_dirs
    from include.astro.frames import DEFAULT_PATTERN, try_parse_frame

    lib = Path(library_dir)
    rig_re = re.compile(rig_regex or DEFAULT_PATTERN.rig_regex)
    out: set[tuple[str, str, str, str]] = set()
    if not lib.is_dir():
        return out
    for rig in sorted(p.name for p in lib.iterdir() if p.is_dir() and rig_re.match(p.name)):
        for files in light_dirs(lib, rig).values():
            frame, _ = try_parse_frame(files[0], root=lib, use_header=False)
            if frame is not None and frame.target and frame.exposure:
                out.add(
                    (frame.target, frame.panel or "", frame.filter or "", _exp_text(frame.exposure))
                )
    return out


def update_accepted(
    db_path: str | os.PathLike[str],
    counts: Mapping[tuple[str, str, str, str, str], int],
    *,
    ready: float = MASTER_READY_PERCENT,
    dry_run: bool = False,
    held: Collection[tuple[str, str, str, str]] = (),
) -> dict[str, Any]:
    """Write accepted (and acquired) counts into every matching exposure plan, in one transaction.

    Plans with no catalog data get 0, like the origin script, except plans with lights still held
    in ``10_Blink`` (``held``, see :func:`held_light_keys`): those are never lowered, or NINA would
    keep imaging a target whose frames only wait for review. Returns the changes, the backup path,
    the plans whose profile is unknown to the catalog (left untouched) and the held plans."""
    path = Path(db_path)
    conn = _connect(path)
    try:
        plans = read_plans(conn)
        known_profiles = {k[0] for k in counts}
        changes: list[PlanChange] = []
        untouched: list[int] = []
        held_plans: list[int] = []
        held_set = set(held)
        for plan in plans:
            if known_profiles and plan["profile_id"] not in known_profiles:
                untouched.append(plan["plan_id"])
                continue
            key = (
                plan["profile_id"],
                plan["target"],
                plan["panel"],
                plan["filter"],
                plan["exposure"],
            )
            new = planned_accepted(plan["desired"], int(counts.get(key, 0)), ready)
            if key[1:] in held_set and new < (plan["accepted"] or 0):
                held_plans.append(plan["plan_id"])
                continue
            if new != plan["accepted"]:
                changes.append(
                    PlanChange(
                        plan["plan_id"],
                        plan["profile_id"],
                        plan["target"],
                        plan["panel"],
                        plan["filter"],
                        plan["exposure"],
                        plan["desired"],
                        plan["accepted"],
                        new,
                        new >= plan["desired"],
                    )
                )
        backup = None
        if changes and not dry_run:
            conn.close()
            backup = _backup(path)
            conn = _connect(path)
            with conn:  # one transaction
                conn.executemany(
                    "UPDATE exposureplan SET accepted = ?, acquired = ? WHERE Id = ?",
                    [(c.new_accepted, c.new_accepted, c.plan_id) for c in changes],
                )
        return {
            "plans": len(plans),
            "changes": [c.to_dict() for c in changes],
            "untouched_profiles": untouched,
            "held": held_plans,
            "backup": str(backup) if backup else None,
            "dry_run": dry_run,
        }
    finally:
        conn.close()


def desired_hours(db_path: str | os.PathLike[str]) -> dict[tuple[str, str, str], float]:
    """``{(profile id, target incl. panel suffix, filter): desired hours}`` from the plans."""
    conn = _connect(db_path)
    try:
        out: dict[tuple[str, str, str], float] = {}
        for plan in read_plans(conn):
            target = plan["target"] + (f" Panel {plan['panel']}" if plan["panel"] else "")
            key = (plan["profile_id"], target, plan["filter"])
            out[key] = out.get(key, 0.0) + plan["desired"] * float(plan["exposure"]) / 3600.0
        return out
    finally:
        conn.close()


# ------------------------------------------------------------------ sample database


@dataclass(frozen=True)
class PlanSpec:
    profile_id: str
    project: str
    target: str  # may end in " Panel <n>"
    filter: str
    desired: int
    exposure: float  # <= 0: use the template default
    default_exposure: float = 60.0
    accepted: int = 0
    ra: float = 0.0
    dec: float = 0.0


def create_scheduler_db(path: str | os.PathLike[str], plans: Iterable[PlanSpec]) -> str:
    """Write a Target Scheduler database with ``plans`` (projects, targets, templates are shared by
    name). Replaces an existing file at ``path`` (sample data only)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.unlink(missing_ok=True)
    conn = sqlite3.connect(p)
    try:
        with conn:
            conn.executescript(SCHEMA)
            projects: dict[tuple[str, str], int] = {}
            targets: dict[tuple[int, str], int] = {}
            templates: dict[tuple[str, str, float], int] = {}
            profiles: set[str] = set()
            for i, spec in enumerate(plans):
                pkey = (spec.profile_id, spec.project)
                if pkey not in projects:
                    cur = conn.execute(
                        "INSERT INTO project (profileId, name, description, state, priority, "
                        "createdate, activedate, minimumtime, minimumaltitude, usecustomhorizon, "
                        "horizonoffset, meridianwindow, filterswitchfrequency, ditherevery, "
                        "enablegrader, isMosaic, guid) VALUES (?, ?, '', 1, 1, 1763683200, "
                        "1763683200, 30, 30, 0, 0, 0, 0, 0, 0, ?, ?)",
                        (
                            spec.profile_id,
                            spec.project,
                            int(" Panel " in spec.target),
                            f"proj-{len(projects) + 1:04d}",
                        ),
                    )
                    projects[pkey] = int(cur.lastrowid)
                    for name, weight in RULE_WEIGHTS:
                        conn.execute(
                            "INSERT INTO ruleweight (name, weight, projectid) VALUES (?, ?, ?)",
                            (name, weight, projects[pkey]),
                        )
                proj = projects[pkey]
                tkey = (proj, spec.target)
                if tkey not in targets:
                    cur = conn.execute(
                        "INSERT INTO target (name, active, ra, dec, epochcode, rotation, roi, "
                        "projectid, guid) VALUES (?, 1, ?, ?, 2, 0, 100, ?, ?)",
                        (spec.target, spec.ra, spec.dec, proj, f"tgt-{len(targets) + 1:04d}"),
                    )
                    targets[tkey] = int(cur.lastrowid)
                ekey = (spec.profile_id, spec.filter, spec.default_exposure)
                if ekey not in templates:
                    cur = conn.execute(
                        "INSERT INTO exposuretemplate (profileId, name, filtername, gain, offset, "
                        "bin, readoutmode, twilightlevel, moonavoidanceenabled, "
                        "moonavoidanceseparation, moonavoidancewidth, maximumhumidity, "
                        "defaultexposure, guid) VALUES (?, ?, ?, -1, -1, 1, -1, 0, 0, 60, 7, 0, "
                        "?, ?)",
                        (
                            spec.profile_id,
                            f"{spec.filter} {spec.default_exposure:g}s",
                            spec.filter,
                            spec.default_exposure,
                            f"tmpl-{len(templates) + 1:04d}",
                        ),
                    )
                    templates[ekey] = int(cur.lastrowid)
                conn.execute(
                    "INSERT INTO exposureplan (profileId, exposure, desired, acquired, accepted, "
                    "targetid, exposureTemplateId, enabled, guid) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                    (
                        spec.profile_id,
                        spec.exposure if spec.exposure > 0 else -1,
                        spec.desired,
                        spec.accepted,
                        spec.accepted,
                        targets[tkey],
                        templates[ekey],
                        f"plan-{i + 1:04d}",
                    ),
                )
                if spec.profile_id not in profiles:
                    profiles.add(spec.profile_id)
                    conn.execute(
                        "INSERT INTO profilepreference (profileId, enableGradeRMS, "
                        "enableGradeStars, enableGradeHFR, maxGradingSampleSize, "
                        "rmsPixelThreshold, detectedStarsSigmaFactor, hfrSigmaFactor) "
                        "VALUES (?, 1, 1, 1, 10, 8, 4, 4)",
                        (spec.profile_id,),
                    )
    finally:
        conn.close()
    return str(p)
