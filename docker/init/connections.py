"""Write the stack's Airflow connections (and the UI users' passwords) from the environment.

Run by ``airflow-init`` (docker/init/airflow-init.sh); idempotent: connections are imported with
``airflow connections import --overwrite`` so ``.env`` stays the source of truth. Optional services
(Roboflow, Etsy) get a connection only when their key is set, so a key entered in the UI is never
replaced by an empty one.

    python docker/init/connections.py            # import into the metadata DB
    python docker/init/connections.py --print    # show the JSON (secrets included)
    python docker/init/connections.py --app-db-url   # the app DB's SQLAlchemy URL
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _need(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value:
        raise SystemExit(f"connections: {key} is not set (see .env.example)")
    return value


def build_connections(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{conn_id: connection}`` in the format of ``airflow connections import``."""
    conns: dict[str, dict[str, Any]] = {
        "imaging_db": {
            "conn_type": "postgres",
            "host": env.get("IMAGING_DB_HOST", "postgres"),
            "port": int(env.get("IMAGING_DB_PORT", "5432")),
            "login": env.get("IMAGING_DB_USER", "imaging"),
            "password": _need(env, "IMAGING_DB_PASSWORD"),
            "schema": env.get("IMAGING_DB_NAME", "imaging"),
        },
        "imaging_s3": {
            "conn_type": "aws",
            "login": _need(env, "MINIO_ROOT_USER"),
            "password": _need(env, "MINIO_ROOT_PASSWORD"),
            "extra": json.dumps(
                {
                    "endpoint_url": env.get("IMAGING_S3_ENDPOINT", "http://minio:9000"),
                    "region_name": "us-east-1",
                    "config_kwargs": {
                        "signature_version": "s3v4",
                        "s3": {"addressing_style": "path"},
                    },
                }
            ),
        },
        "imaging_hypha": {
            "conn_type": "generic",
            "host": env.get("IMAGING_HYPHA_URL", "http://hypha:9527"),
            "password": _need(env, "HYPHA_ROOT_TOKEN"),
            "extra": json.dumps({"workspace": env.get("HYPHA_WORKSPACE", "reef-imaging")}),
        },
        "nas_default": {
            "conn_type": "fs",
            "extra": json.dumps({"path": env.get("IMAGING_NAS_MOUNT", "/opt/airflow/nas")}),
        },
    }
    if env.get("ROBOFLOW_API_KEY"):
        extra = {"api_url": env.get("ROBOFLOW_API_URL", "https://api.roboflow.com")}
        if env.get("ROBOFLOW_WORKSPACE"):
            extra["workspace"] = env["ROBOFLOW_WORKSPACE"]
        conns["roboflow_default"] = {
            "conn_type": "generic",
            "password": env["ROBOFLOW_API_KEY"],
            "extra": json.dumps(extra),
        }
    if env.get("ETSY_API_KEY"):
        # what imaging.hooks.etsy.EtsyHook reads: host = the API root WITHOUT /v3 (the hook
        # appends /v3/application/...), login = the app keystring (x-api-key), password = the
        # shop's OAuth 2 access token (Authorization: Bearer)
        extra: dict[str, Any] = {"shop_id": env.get("ETSY_SHOP_ID", "")}
        if env.get("ETSY_SHARED_SECRET"):
            extra["shared_secret"] = env["ETSY_SHARED_SECRET"]
        host = env.get("ETSY_API_URL") or "https://openapi.etsy.com"
        conns["etsy_default"] = {
            "conn_type": "etsy",
            "host": host.rstrip("/").removesuffix("/v3"),
            "login": env["ETSY_API_KEY"],
            "password": env.get("ETSY_ACCESS_TOKEN", ""),
            "extra": json.dumps(extra),
        }
    return conns


def app_db_url(env: Mapping[str, str]) -> str:
    """SQLAlchemy URL of the app database (password URL-encoded), for the Alembic migrations."""
    from sqlalchemy.engine import URL

    return URL.create(
        "postgresql+psycopg2",
        username=env.get("IMAGING_DB_USER", "imaging"),
        password=_need(env, "IMAGING_DB_PASSWORD"),
        host=env.get("IMAGING_DB_HOST", "postgres"),
        port=int(env.get("IMAGING_DB_PORT", "5432")),
        database=env.get("IMAGING_DB_NAME", "imaging"),
    ).render_as_string(hide_password=False)


def write_passwords(env: Mapping[str, str]) -> Path | None:
    """SimpleAuthManager passwords file ``{user: password}`` for the users of
    ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS`` (``user:role,...``)."""
    target = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    users = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "")
    if not target or not users:
        return None
    password = _need(env, "_AIRFLOW_WWW_USER_PASSWORD")
    names = [u.split(":", 1)[0].strip() for u in users.split(",") if u.strip()]
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({n: password for n in names}))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def import_connections(conns: Mapping[str, Mapping[str, Any]], airflow: str = "airflow") -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(conns, f)
        name = f.name
    try:
        os.chmod(name, 0o600)
        subprocess.run([airflow, "connections", "import", "--overwrite", name], check=True)
    finally:
        os.unlink(name)


def main(argv: list[str]) -> int:
    if "--app-db-url" in argv:
        print(app_db_url(os.environ))
        return 0
    conns = build_connections(os.environ)
    if "--print" in argv:
        print(json.dumps(conns, indent=2))
        return 0
    airflow = str(Path(sys.executable).parent / "airflow")
    import_connections(conns, airflow if Path(airflow).exists() else "airflow")
    print(f"connections: {', '.join(sorted(conns))}")
    written = write_passwords(os.environ)
    if written:
        print(f"UI passwords: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
