"""Publishing from tasks: artefacts of the current DAG run into the published root, linked under the
api-server's ``[api] base_url`` (served by the ``imaging_artefacts`` plugin at ``/artefacts``).

Thin Airflow glue around :mod:`include.common.publish` (which holds the rules: deterministic,
sanitised names, atomic and idempotent writes, no escape from the root).
"""

from __future__ import annotations

import os
from typing import Any

from include.common.files import safe_name
from include.common.publish import (
    DEFAULT_BASE_URL,
    Published,
    join_url,
    md_link,
    publish_file,
    publish_text,
)


def api_base_url() -> str:
    """``[api] base_url`` of the installation (what a browser uses to reach the api-server)."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older layouts
        from airflow.configuration import conf
    return (conf.get("api", "base_url", fallback=DEFAULT_BASE_URL) or DEFAULT_BASE_URL).strip()


def _ids(context: Any) -> tuple[str, str]:
    ti = context["ti"]
    return ti.dag_id, context["run_id"]


def _out(pub: Published) -> dict[str, str]:
    return pub.to_dict(api_base_url())


def publish_artefact(
    context: Any, src: str | os.PathLike[str], name: str | None = None
) -> dict[str, str]:
    """Copy ``src`` as an artefact of this DAG run; ``{"path", "rel", "status", "url"}``."""
    dag_id, run_id = _ids(context)
    return _out(publish_file(src, dag_id, run_id, name))


def publish_artefact_text(context: Any, text: str, name: str) -> dict[str, str]:
    dag_id, run_id = _ids(context)
    return _out(publish_text(text, dag_id, run_id, name))


def run_artefacts_url(context: Any) -> str:
    """The HTML list of every artefact of this DAG run."""
    dag_id, run_id = _ids(context)
    return join_url(api_base_url(), f"{safe_name(dag_id)}/{safe_name(run_id, default='run')}") + "/"


def artefact_link(text: str, published: dict[str, str]) -> str:
    """Markdown link to a published artefact (for HITL bodies and logs)."""
    return md_link(text, published["url"])


__all__ = [
    "api_base_url",
    "artefact_link",
    "publish_artefact",
    "publish_artefact_text",
    "run_artefacts_url",
]
