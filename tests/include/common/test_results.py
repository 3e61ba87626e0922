"""Run summaries: the outcome line and the HTML page (escaped, no scripts)."""

from __future__ import annotations

from include.common.results import (
    ItemError,
    Link,
    Picture,
    RunSummary,
    Section,
    merge_errors,
    render_html,
)


def _summary(**kw: object) -> RunSummary:
    return RunSummary(dag_id="d", run_id="r", title="T", headline="3 done", **kw)  # type: ignore[arg-type]


def test_outcome_line_marks_item_errors_and_warnings() -> None:
    assert _summary().outcome("http://x/s.html") == "✔ 3 done · summary: http://x/s.html"
    errs = [ItemError("a.jpg", "truncated", "scan"), ItemError("b.jpg", "empty")]
    line = _summary(errors=errs, total_items=10).outcome()
    assert line == "⚠ 2 item errors of 10 · 3 done"
    assert _summary(warnings=["no Etsy connection"]).outcome().startswith("⚠ no Etsy connection")
    assert not _summary(warnings=["w"]).clean and _summary().clean


def test_page_escapes_everything_and_has_no_script() -> None:
    evil = '<script>alert(1)</script>"'
    page = render_html(
        _summary(
            errors=[ItemError(evil, evil)],
            links=[Link(evil, "http://x/?a=1&b=2")],
            sections=[
                Section(
                    title=evil,
                    pictures=[Picture("/artefacts/d/r/p.png", evil)],
                    columns=["name", "link"],
                    rows=[{"name": evil, "link": Link("open", "/x")}],
                )
            ],
        ),
        airflow_run_url="http://127.0.0.1:8080/dags/d/runs/r",
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="http://x/?a=1&amp;b=2"' in page
    assert "id='outcome'" in page and "id='errors'" in page and "airflow-run" in page
    assert '<img src="/artefacts/d/r/p.png"' in page


def test_merge_errors_lists_each_error_once() -> None:
    a, b = ItemError("x", "bad", "scan"), ItemError("y", "bad", "scan")
    assert merge_errors([a, b], [a]) == [a, b]
