"""Reports from the catalog: AstroBin acquisition CSVs, have/want/need totals, an HTML report.

* :func:`catalog_rows` - the accepted light sets joined with their equipment, target, filter, site.
* :func:`astrobin_csv` - per target, AstroBin's acquisition CSV columns ``date, filter (AstroBin
  filter id), number, duration, fNumber, bortle`` (one line per night, filter and sub length;
  mosaic panels are summed, AstroBin records one acquisition list per image).
* :func:`totals` - per target and filter (mosaic panels as ``"<filter> Panel <n>"``, like the origin):
  ``have`` hours from the catalog, ``want`` hours from the Target Scheduler's desired counts (when a
  scheduler database is given), ``need = max(want - have, 0)``.
* :func:`write_reports` - writes everything under ``report_dir`` (atomic writes, deterministic
  names): ``<rig>/<target>/astrobin.csv``, ``.../totals.json``, ``hours_over_time.png``,
  ``hfr_per_rig.png`` and ``index.html``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from include.common.files import atomic_write_bytes, atomic_write_text, safe_name

ASTROBIN_COLUMNS = ("date", "filter", "number", "duration", "fNumber", "bortle")


def catalog_rows(session: Session) -> list[dict[str, Any]]:
    from include.astro.models import (
        AstroAcceptedData,
        AstroFilter,
        AstroLocation,
        AstroOptic,
        AstroProfile,
        AstroTarget,
    )

    q = (
        select(
            AstroAcceptedData,
            AstroTarget.name,
            AstroFilter.name,
            AstroFilter.astrobin_id,
            AstroOptic.focal_ratio,
            AstroLocation.name,
            AstroLocation.bortle,
            AstroProfile.id,
        )
        .join(AstroTarget, AstroTarget.id == AstroAcceptedData.target_id)
        .join(AstroFilter, AstroFilter.id == AstroAcceptedData.filter_id)
        .join(AstroOptic, AstroOptic.id == AstroAcceptedData.optic_id)
        .join(AstroLocation, AstroLocation.id == AstroAcceptedData.location_id)
        .outerjoin(
            AstroProfile,
            (AstroProfile.camera_id == AstroAcceptedData.camera_id)
            & (AstroProfile.optic_id == AstroAcceptedData.optic_id),
        )
        .order_by(
            AstroAcceptedData.rig,
            AstroTarget.name,
            AstroAcceptedData.date,
            AstroFilter.name,
            AstroAcceptedData.panel_name,
            AstroAcceptedData.raw_directory,
        )
    )
    rows = []
    for a, target, filt, astrobin, fratio, loc, bortle, profile in session.execute(q):
        rows.append(
            {
                "rig": a.rig,
                "profile_id": profile,
                "target": target,
                "panel": a.panel_name or "",
                "date": a.date,
                "filter": filt,
                "astrobin_id": astrobin,
                "number": a.accepted_count,
                "duration": a.shutter_time_seconds,
                "fNumber": fratio,
                "location": loc,
                "bortle": bortle,
                "seconds": a.integration_seconds,
                "hfr": list((a.detail or {}).get("hfr") or []),
                "raw_directory": a.raw_directory,
            }
        )
    return rows


def astrobin_csv(rows: list[Mapping[str, Any]]) -> str:
    """AstroBin acquisition CSV for the rows of one target."""
    agg: dict[tuple[Any, ...], int] = defaultdict(int)
    for r in rows:
        key = (r["date"], r["astrobin_id"] or r["filter"], r["duration"], r["fNumber"], r["bortle"])
        agg[key] += int(r["number"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ASTROBIN_COLUMNS)
    for (date, filt, duration, fnum, bortle), number in sorted(
        agg.items(), key=lambda kv: tuple(str(x) for x in kv[0])
    ):
        w.writerow([date, filt, number, duration, fnum, "" if bortle is None else bortle])
    return buf.getvalue()


def totals(
    rows: list[Mapping[str, Any]],
    wanted: Mapping[str, float] | None = None,
) -> dict[str, dict[str, float | str]]:
    """have / want / need hours per filter (``"<filter> Panel <n>"`` for mosaic panels)."""
    have: dict[str, float] = defaultdict(float)
    for r in rows:
        k = r["filter"] + (f" Panel {r['panel']}" if r["panel"] else "")
        have[k] += float(r["seconds"]) / 3600.0
    want = dict(wanted or {})
    need = {k: max(w - have.get(k, 0.0), 0.0) for k, w in want.items()}
    out: dict[str, dict[str, float | str]] = {}
    for name, data in (("have", have), ("want", want), ("need", need)):
        section: dict[str, float | str] = {"uom": "hours"}
        for k in sorted(data):
            section[k] = round(data[k], 2)
        section["total"] = round(sum(data.values()), 2)
        out[name] = section
    return out


def _wanted_for(
    desired: Mapping[tuple[str, str, str], float], profile_id: str | None, target: str
) -> dict[str, float]:
    """Desired hours of one target (incl. its panels) keyed like :func:`totals`."""
    out: dict[str, float] = {}
    for (pid, tname, filt), hours in desired.items():
        if pid != profile_id:
            continue
        if tname == target:
            out[filt] = out.get(filt, 0.0) + hours
        elif tname.startswith(f"{target} Panel "):
            panel = tname[len(target) + len(" Panel ") :]
            key = f"{filt} Panel {panel}"
            out[key] = out.get(key, 0.0) + hours
    return out


def _plot_hours(rows: list[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        series[f"{r['target']} {r['filter']}"][r["date"]] += float(r["seconds"]) / 3600.0
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label in sorted(series):
        dates = sorted(series[label])
        total, ys = 0.0, []
        for d in dates:
            total += series[label][d]
            ys.append(total)
        ax.step(dates, ys, where="post", marker="o", label=label)
    ax.set_xlabel("night")
    ax.set_ylabel("accepted hours (cumulative)")
    ax.set_title("Hours per target and filter over time")
    if series:
        ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    _save(fig, path)


def _plot_hfr(rows: list[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_rig: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        per_rig[r["rig"]].extend(float(h) for h in r["hfr"])
    rigs = sorted(k for k, v in per_rig.items() if v)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if rigs:
        ax.boxplot([per_rig[k] for k in rigs], tick_labels=rigs, showmeans=True)
    ax.set_ylabel("HFR (px)")
    ax.set_title("HFR distribution per rig")
    ax.tick_params(axis="x", labelsize=7)
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    # no timestamps in the PNG metadata: same data, same bytes
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_reports(
    rows: list[dict[str, Any]],
    report_dir: str | os.PathLike[str],
    *,
    desired: Mapping[tuple[str, str, str], float] | None = None,
    title: str = "Astrophotography report",
) -> dict[str, Any]:
    """Write CSVs, totals, plots and ``index.html``; return the written paths (relative)."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_target: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_target[(r["rig"], r["target"])].append(r)
    files: list[str] = []
    summary = []
    for (rig, target), trows in sorted(by_target.items()):
        folder = Path(safe_name(rig)) / safe_name(target)
        csv_rel = folder / "astrobin.csv"
        atomic_write_text(out / csv_rel, astrobin_csv(trows))
        wanted = (
            _wanted_for(desired, trows[0]["profile_id"], target) if desired is not None else None
        )
        tot = totals(trows, wanted)
        tot_rel = folder / "totals.json"
        atomic_write_text(out / tot_rel, json.dumps(tot, indent=2, sort_keys=True) + "\n")
        files += [str(csv_rel), str(tot_rel)]
        summary.append({"rig": rig, "target": target, "csv": str(csv_rel), "totals": tot})
    _plot_hours(rows, out / "hours_over_time.png")
    _plot_hfr(rows, out / "hfr_per_rig.png")
    files += ["hours_over_time.png", "hfr_per_rig.png"]
    atomic_write_text(out / "index.html", _html(title, summary, desired is not None))
    files.append("index.html")
    return {"report_dir": str(out), "files": files, "targets": len(summary)}


def _html(title: str, summary: list[dict[str, Any]], with_want: bool) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<h2>Hours per target and filter over time</h2>",
        "<img src='hours_over_time.png' alt='hours per target and filter over time'>",
        "<h2>HFR distribution per rig</h2>",
        "<img src='hfr_per_rig.png' alt='HFR distribution per rig'>",
        "<h2>Totals (hours)</h2>",
    ]
    for item in summary:
        tot = item["totals"]
        keys = sorted(
            {k for s in tot.values() for k in s if k not in ("uom", "total")},
        )
        parts.append(
            f"<h3>{e(item['target'])} <small>({e(item['rig'])})</small> - "
            f"<a href='{e(item['csv'])}'>AstroBin CSV</a></h3>"
        )
        heads = ["filter", "have"] + (["want", "need"] if with_want else [])
        parts.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>")
        for k in [*keys, "total"]:
            cells = [e(k)] + [f"{float(tot[s].get(k, 0.0)):.2f}" for s in heads[1:]]
            parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
