"""Step ``write_reports`` of the catalog pipeline: AstroBin CSVs, totals, plots and ``index.html``
in the report folder, published for the browser under ``report/``."""

from __future__ import annotations

import logging
from typing import Any

from include.astro.reports import catalog_rows
from include.astro.reports import write_reports as write
from include.astro.scheduler import desired_hours
from include.astro.steps.catalog_update import CatalogInputs
from include.common.publish import artefact_url, publish_tree, published_root

log = logging.getLogger(__name__)


def write_reports(
    inp: CatalogInputs, session: Any, dag_id: str, run_id: str, base_url: str
) -> dict[str, Any]:
    rows = catalog_rows(session)
    desired = desired_hours(inp.scheduler) if inp.scheduler is not None else None
    out = write(rows, inp.report, desired=desired)
    # published for the browser (relative links of index.html keep working under report/)
    done, errors = publish_tree(
        inp.report, dag_id, run_id, "report", files=out["files"], root=published_root()
    )
    for e in errors:
        log.warning("not published: %s: %s", e["file"], e["reason"])
    out["index_path"] = str(inp.report / "index.html")
    out["index"] = artefact_url(dag_id, run_id, "report/index.html", base_url)
    out["published"] = [d.rel for d in done]
    out["publish_errors"] = errors
    log.info("report: %s (files in %s)", out["index"], inp.report)
    return out
