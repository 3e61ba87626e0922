"""Installation settings in tasks: empty trigger-form params fall back to the Airflow Variables
``imaging_<name>`` (see :mod:`include.common.install`, the catalogue and the rule).

In a task body::

    from imaging.install import resolved
    p = resolved(params, {"raw_dir": "astro_raw_dir", "library_dir": "astro_library_dir"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from include.common.install import resolve, resolve_params


def lookup(key: str) -> Any:
    """The Variable ``key`` or ``None`` (also ``AIRFLOW_VAR_<KEY>`` from the environment)."""
    from airflow.sdk import Variable

    try:
        return Variable.get(key, default=None)
    except Exception:  # noqa: BLE001 - outside a task (no API server): env vars only
        import os

        return os.environ.get("AIRFLOW_VAR_" + key.upper())


def setting(name: str, value: Any = None) -> Any:
    """One installation setting: ``value`` if given, else its Variable, else its default."""
    return resolve(name, value, lookup)


def resolved(params: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``params`` with each ``param -> setting`` of ``names`` resolved."""
    return resolve_params(params, names, lookup)


__all__ = ["lookup", "resolved", "setting"]
