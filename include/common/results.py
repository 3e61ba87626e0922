"""Run summaries: one HTML page per DAG run with its numbers, links, pictures and item errors, and a
one-line outcome for the run's note.

Every pipeline builds a :class:`RunSummary` in its last task and hands it to
:func:`imaging.results.publish_run_summary` (Airflow glue), which publishes ``summary.html`` and
``summary.json`` under ``/artefacts/<dag_id>/<run_id>/`` and records the outcome line; the
``imaging_run_notes`` listener writes that line into the run's note (shown on the run page).

**The outcome idiom** (docs/CONVENTIONS.md): a run whose items failed stays green only when the
pipeline itself worked, and its outcome line then starts with ``⚠ N item errors`` (in the note, the
summary page's banner, the task log and ``make run-dag``'s output). A step that cannot do its job at
all fails its task. Warnings that are not errors (e.g. *no Etsy connection: listings went to the
outbox*) are listed in :attr:`RunSummary.warnings` and also make the line start with ``⚠``.

Airflow-free: the caller passes URLs already built (``include.common.publish.artefact_url``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

OK_MARK = "✔"
WARN_MARK = "⚠"


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class Picture:
    url: str  # a published artefact (same origin: the page's CSP allows only 'self' images)
    caption: str = ""
    href: str | None = None  # where a click goes (default: the picture itself)


@dataclass(frozen=True)
class ItemError:
    item: str
    reason: str
    step: str = ""


@dataclass
class Section:
    title: str
    text: str = ""
    links: list[Link] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[Mapping[str, Any]] = field(default_factory=list)  # cells: str/num or Link


@dataclass
class RunSummary:
    dag_id: str
    run_id: str
    title: str
    headline: str  # "14 frames moved, 3 culled, 1 directory promoted"
    counts: dict[str, int | float | str] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    total_items: int | None = None  # for "N item errors of M"

    def outcome(self, url: str | None = None) -> str:
        """One line: ``✔ <headline>`` or ``⚠ N item errors (of M) · <headline>``, plus the link."""
        parts: list[str] = []
        if self.errors:
            n = len(self.errors)
            of = f" of {self.total_items}" if self.total_items else ""
            parts.append(f"{WARN_MARK} {n} item error{'s' if n != 1 else ''}{of}")
        elif self.warnings:
            parts.append(f"{WARN_MARK} {self.warnings[0]}")
        else:
            parts.append(OK_MARK)
        if not self.headline:
            line = parts[0]
        elif parts[0] == OK_MARK:
            line = f"{OK_MARK} {self.headline}"
        else:
            line = f"{parts[0]} · {self.headline}"
        if url:
            line += f" · summary: {url}"
        return line

    @property
    def clean(self) -> bool:
        return not self.errors and not self.warnings

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str, ensure_ascii=False)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:8px 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.meta{color:#5b6475;font-size:12px}
.banner{padding:10px 14px;border-radius:6px;margin:14px 0;font-weight:600}
.ok{background:#e3f5e8;color:#185c2c;border:1px solid #a7dbb5}
.warn{background:#fff4d6;color:#7a4b00;border:1px solid #f1cf7a}
.counts{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.count{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px;min-width:110px}
.count b{display:block;font-size:20px}
.count span{color:#5b6475;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #dde1e7;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef1f5}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:6px;width:220px}
figure img{width:100%;height:auto;display:block;background:#222}
figcaption{font-size:12px;color:#39414f;margin-top:4px;word-break:break-all}
.err td:first-child{word-break:break-all}
a{color:#0b5cad}
"""


def _cell(value: Any) -> str:
    if isinstance(value, Link):
        return f'<a href="{html.escape(value.url, quote=True)}">{html.escape(value.text)}</a>'
    if isinstance(value, Picture):
        return (
            f'<a href="{html.escape(value.href or value.url, quote=True)}">'
            f'<img src="{html.escape(value.url, quote=True)}" alt="{html.escape(value.caption)}"'
            ' style="max-width:120px;max-height:90px"></a>'
        )
    return html.escape("" if value is None else str(value))


def _links(links: Iterable[Link]) -> str:
    items = "".join(
        f'<li><a href="{html.escape(lk.url, quote=True)}">{html.escape(lk.text)}</a></li>'
        for lk in links
    )
    return f"<ul>{items}</ul>" if items else ""


def _table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], cls: str = "") -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pictures(pictures: Sequence[Picture]) -> str:
    if not pictures:
        return ""
    figs = "".join(
        f'<figure><a href="{html.escape(p.href or p.url, quote=True)}">'
        f'<img src="{html.escape(p.url, quote=True)}" alt="{html.escape(p.caption)}" loading="lazy">'
        f"</a><figcaption>{html.escape(p.caption)}</figcaption></figure>"
        for p in pictures
    )
    return f'<div class="grid">{figs}</div>'


def render_html(summary: RunSummary, *, airflow_run_url: str | None = None) -> str:
    """The summary page (self-contained, no scripts: the artefact server forbids them)."""
    e = html.escape
    banner_cls = "ok" if summary.clean else "warn"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{e(summary.title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{e(summary.title)}</h1>",
        f"<div class='meta'>DAG <b>{e(summary.dag_id)}</b> · run <b>{e(summary.run_id)}</b>",
    ]
    if airflow_run_url:
        parts.append(
            f" · <a id='airflow-run' href='{e(airflow_run_url, quote=True)}'>Airflow run</a>"
        )
    parts.append("</div>")
    parts.append(f"<div id='outcome' class='banner {banner_cls}'>{e(summary.outcome())}</div>")
    if summary.warnings:
        parts.append(
            "<ul class='warnings'>"
            + "".join(f"<li>{e(w)}</li>" for w in summary.warnings)
            + "</ul>"
        )
    if summary.counts:
        parts.append("<div class='counts'>")
        for k, v in summary.counts.items():
            parts.append(f"<div class='count'><b>{e(str(v))}</b><span>{e(k)}</span></div>")
        parts.append("</div>")
    parts.append(_links(summary.links))
    for sec in summary.sections:
        parts.append(f"<section><h2>{e(sec.title)}</h2>")
        if sec.text:
            parts.append(f"<p>{e(sec.text)}</p>")
        parts.append(_links(sec.links))
        parts.append(_pictures(sec.pictures))
        parts.append(_table(sec.columns, sec.rows))
        parts.append("</section>")
    if summary.errors:
        parts.append(f"<section id='errors'><h2>Item errors ({len(summary.errors)})</h2>")
        rows = [{"item": x.item, "step": x.step, "reason": x.reason} for x in summary.errors]
        parts.append(_table(["item", "step", "reason"], rows, "err"))
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def merge_errors(*groups: Iterable[ItemError]) -> list[ItemError]:
    """Item errors of several steps, each (item, step, reason) once, in order."""
    seen: set[tuple[str, str, str]] = set()
    out: list[ItemError] = []
    for group in groups:
        for err in group:
            key = (err.item, err.step, err.reason)
            if key not in seen:
                seen.add(key)
                out.append(err)
    return out
