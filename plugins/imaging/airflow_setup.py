"""The one set-up step of an installation's Airflow metadata DB, used by ``make demo``
(scripts/demo.sh), compose's ``airflow-init`` and the Celery stack (scripts/celery_stack.py):

* every pool a DAG task names (:data:`imaging.queues.API_LIMITS`, sizes derived from the APIs'
  limits), created if missing;
* the installation settings (Airflow Variables ``imaging_*``, :mod:`include.common.install`) from a
  JSON file ``{"imaging_astro_raw_dir": "...", ...}``, set where they are not set yet (a value an
  operator changed in *Admin → Variables* is kept unless ``--overwrite``).

    python -m imaging.airflow_setup [--variables FILE] [--overwrite] [--update-pools]

Idempotent; needs metadata-DB access (run it where ``airflow db migrate`` runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from imaging.queues import PoolChange, ensure_pools, pools_config
from include.common.install import SETTINGS, VARIABLE_PREFIX


@dataclass(frozen=True)
class VariableChange:
    key: str
    action: str  # "created" | "updated" | "kept"


def pools_created() -> set[str]:
    """The pools this step creates (what a DAG task may name besides ``default_pool``)."""
    return set(pools_config())


def load_variables(path: str | Path) -> dict[str, str]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of variables")
    known = {s.variable for s in SETTINGS.values()}
    unknown = sorted(k for k in data if k.startswith(VARIABLE_PREFIX) and k not in known)
    if unknown:
        raise ValueError(f"{path}: unknown installation settings {unknown}; known: {sorted(known)}")
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


def ensure_variables(values: dict[str, str], *, overwrite: bool = False) -> list[VariableChange]:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    changes: list[VariableChange] = []
    with create_session() as session:
        for key, value in sorted(values.items()):
            row = session.scalar(select(Variable).where(Variable.key == key))
            if row is None:
                session.add(Variable(key=key, val=value, description=_describe(key)))
                changes.append(VariableChange(key, "created"))
            elif overwrite and row.val != value:
                row.set_val(value)
                changes.append(VariableChange(key, "updated"))
            else:
                changes.append(VariableChange(key, "kept"))
    return changes


def _describe(key: str) -> str:
    name = key.removeprefix(VARIABLE_PREFIX)
    s = SETTINGS.get(name)
    return f"installation setting: {s.description}" if s else ""


def setup(
    variables: str | Path | None = None, *, overwrite: bool = False, update_pools: bool = False
) -> tuple[list[PoolChange], list[VariableChange]]:
    pools = ensure_pools(update=update_pools)
    changes = ensure_variables(load_variables(variables), overwrite=overwrite) if variables else []
    return pools, changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imaging.airflow_setup", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--variables", help="JSON file of installation settings (imaging_* Variables)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace Variables that differ")
    parser.add_argument("--update-pools", action="store_true", help="also resize existing pools")
    args = parser.parse_args(argv)
    pools, variables = setup(
        args.variables, overwrite=args.overwrite, update_pools=args.update_pools
    )
    for p in pools:
        print(f"pool {p.pool}: {p.action} (slots {p.slots}, derived {p.wanted})")
    for v in variables:
        print(f"variable {v.key}: {v.action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
