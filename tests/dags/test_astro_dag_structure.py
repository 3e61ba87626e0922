"""Issue 15.11 / Deliver 5: the astro DAG files are wiring only.

Step logic lives in ``include/astro/steps`` (one module per step) and Airflow glue in
``plugins/imaging/astro.py``. Before, ``dags/astro_prepare_lights.py`` (629 lines) held a ledger class
with its SQLAlchemy statements, ``subprocess`` calls, the promote rule and 33-41 line task bodies:
that file (``git show 97371f4:dags/astro_prepare_lights.py``) fails the class, import and task-length
rules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

DAGS = sorted((Path(__file__).resolve().parents[2] / "dags").glob("astro_*.py"))
# file system, processes and databases belong to the steps and the glue, not to the DAG file
FORBIDDEN_IMPORTS = ("sqlalchemy", "sqlite3", "psycopg", "subprocess", "shutil", "os", "pathlib")
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b",
    re.I | re.S,
)
MAX_TASK_LINES = 20  # a task body resolves inputs, calls its step and returns a reference


def _imports(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module:
            out.add(n.module)
        elif isinstance(n, ast.Import):
            out.update(a.name for a in n.names)
    return out


def test_there_are_astro_dags() -> None:
    assert {p.name for p in DAGS} >= {
        "astro_prepare_lights.py",
        "astro_calibration_masters.py",
        "astro_catalog_report.py",
        "astro_setup.py",
    }


@pytest.mark.parametrize("path", DAGS, ids=lambda p: p.name)
def test_dag_file_is_wiring_only(path: Path) -> None:
    tree = ast.parse(path.read_text())
    classes = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    assert not classes, (
        f"{path.name} defines classes {classes}: they belong in include/ or plugins/"
    )
    bad = sorted(
        m for m in _imports(tree) if m.split(".")[0] in FORBIDDEN_IMPORTS or m == "os.path"
    )
    assert not bad, f"{path.name} imports {bad}: file, process and DB work belongs to the steps"
    sql = [
        c.value[:60]
        for c in ast.walk(tree)
        if isinstance(c, ast.Constant) and isinstance(c.value, str) and SQL.search(c.value)
    ]
    assert not sql, f"{path.name} holds SQL {sql}"
    step_modules = {m for m in _imports(tree) if m.startswith("include.astro.steps.")}
    assert step_modules, f"{path.name} calls no step module of include/astro/steps"
    [dag_fn] = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and any(
            (isinstance(d, ast.Name) and d.id == "dag")
            or (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "dag")
            for d in n.decorator_list
        )
    ]
    long = [
        (n.name, n.end_lineno - n.lineno + 1)
        for n in ast.walk(dag_fn)
        if isinstance(n, ast.FunctionDef)
        and n is not dag_fn
        and (n.end_lineno or 0) - n.lineno + 1 > MAX_TASK_LINES
    ]
    assert not long, f"{path.name}: task bodies with step logic (lines) {long}"
