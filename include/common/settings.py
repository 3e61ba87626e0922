"""Project settings: environment variables with defaults, read once per process.

Every pipeline reads its configuration through :func:`get_settings` so that the demo, the tests and a
production deployment differ only in environment variables (see the README's connection table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Paths are absolute."""

    project_root: Path
    data_dir: Path  # where the demo keeps sample inputs and pipeline outputs
    app_db_conn_id: str  # Airflow connection of the app database
    s3_conn_id: str  # Airflow connection (aws) of the S3 endpoint
    s3_bucket: str  # default bucket of the imaging pipelines
    hypha_conn_id: str
    roboflow_conn_id: str
    etsy_conn_id: str
    nas_conn_id: str


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value else default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    root = Path(_env("IMAGING_PROJECT_ROOT", str(PROJECT_ROOT))).resolve()
    return Settings(
        project_root=root,
        data_dir=Path(_env("IMAGING_DATA_DIR", str(root / ".data"))).resolve(),
        app_db_conn_id=_env("IMAGING_DB_CONN_ID", "imaging_db"),
        s3_conn_id=_env("IMAGING_S3_CONN_ID", "imaging_s3"),
        s3_bucket=_env("IMAGING_S3_BUCKET", "imaging"),
        hypha_conn_id=_env("IMAGING_HYPHA_CONN_ID", "imaging_hypha"),
        roboflow_conn_id=_env("IMAGING_ROBOFLOW_CONN_ID", "roboflow_default"),
        etsy_conn_id=_env("IMAGING_ETSY_CONN_ID", "etsy_default"),
        nas_conn_id=_env("IMAGING_NAS_CONN_ID", "nas_default"),
    )
