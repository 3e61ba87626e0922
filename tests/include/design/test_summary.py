"""The run summary of design_upload: each listing previewed with a published mockup thumbnail,
duplicates with the copy kept, files not processed, and missing connections named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from include.common.db import make_engine
from include.common.results import Picture, render_html
from include.design import pipeline, samples
from include.design.summary import Connections, build_summary
from tests.include.design.test_pipeline import _run


def test_summary_previews_listings_and_names_missing_connections(
    app_db_url: str, tmp_path: Path
) -> None:
    demo = samples.build_demo(tmp_path / "demo", n_designs=3, shop="sum-shop")
    (Path(demo["source_dir"]) / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    items = _run(make_engine(app_db_url), demo, tmp_path, shop="sum-shop", run_id="sum-1")
    published: list[tuple[str, str]] = []

    def publish(path: str, name: str) -> str:
        published.append((path, name))
        return f"/artefacts/design_upload/sum-1/{name}"

    conns = Connections(nas_fallback="/data/design/nas", etsy_outbox="/data/design/etsy_outbox")
    s = build_summary(items, run_id="sum-1", shop="sum-shop", conns=conns, publish=publish)
    assert s.total_items == len(
        list(Path(demo["source_dir"]).iterdir())
    )  # every file, .DS_Store too
    assert any("nas_default" in w for w in s.warnings) and any(
        "etsy_default" in w for w in s.warnings
    )
    listings = next(x for x in s.sections if x.title.startswith("New designs"))
    assert len(listings.rows) == len(demo["expected"]["new"])
    for row in listings.rows:
        assert isinstance(row["mockup"], Picture) and row["mockup"].url.startswith("/artefacts/")
        assert row["title"] and len(row["title"]) <= 140 and "design" not in row["title"].lower()
        assert row["tags"] and row["price"] == "18.00" and row["listing"].startswith("outbox ")
    dups = next(x for x in s.sections if x.title.startswith("Duplicates"))
    kept = {r["file"]: r["kept copy"] for r in dups.rows}
    assert kept["design_00_copy_swapformat.jpg"] == "design_00.png"
    skipped = next(x for x in s.sections if x.title.startswith("Files not processed"))
    assert [r["file"] for r in skipped.rows] == [".DS_Store"]
    page = render_html(s)
    assert "Abstract Art print" in page and "nas_default" in page and ".DS_Store" in page
    assert s.outcome().startswith("⚠")
    ok: list[dict[str, Any]] = [i for i in items if i["status"] != pipeline.ERROR]
    clean = build_summary(ok, run_id="sum-1", shop="sum-shop", conns=Connections())
    assert clean.warnings == []
