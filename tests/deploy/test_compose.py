"""docker-compose.yaml and docker/: YAML, the Compose specification's JSON schema (the copy shipped
by check-jsonschema), services, health checks, volumes, every referenced file, queue coverage of the
workers; and the init scripts run for real where that is possible without Docker (the app-DB init
on the local PostgreSQL, the Hypha start script on the local S3 server, the connections script on the
session's Airflow metadata DB)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
CONTAINER_ROOT = "/opt/airflow"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker-io",
    "airflow-worker-cpu",
    "airflow-worker-gpu",
}
ONE_SHOT = {"airflow-init", "minio-init"}

_VAR = re.compile(
    r"\$(?:(?P<esc>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(KeyError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: ``$$``, ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``."""

    def sub(m: re.Match[str]) -> str:
        if m.group("esc"):
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        missing = not value if op in (":-", ":?") else value is None
        if not missing:
            return value  # type: ignore[return-value]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return ""

    return _VAR.sub(sub, text)


def env_example() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as ``docker compose config`` would see it with the values of .env.example."""
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = (
        resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    ).read_text()
    return json.loads(text)


def test_yaml_loads_with_anchors_merged(raw: dict[str, Any]) -> None:
    assert raw["name"] == "imaging-pipelines"
    worker = raw["services"]["airflow-worker-io"]
    # the x-airflow-common anchor is merged into every Airflow service
    assert worker["build"]["dockerfile"] == "docker/airflow.Dockerfile"
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_valid_against_the_compose_specification(
    raw: dict[str, Any], compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for label, doc in (("raw", raw), ("interpolated", compose)):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{label}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )


def test_schema_catches_a_broken_file(compose: dict[str, Any], schema: dict[str, Any]) -> None:
    """The validation is not vacuous: a typo'd key and a wrong type are rejected."""
    from jsonschema import Draft202012Validator

    bad = json.loads(json.dumps(compose))
    bad["services"]["redis"]["helthcheck"] = bad["services"]["redis"].pop("healthcheck")
    bad["services"]["postgres"]["ports"] = {"5432": "5432"}
    assert len(list(Draft202012Validator(schema).iter_errors(bad))) >= 2


def test_required_variables_are_all_in_env_example() -> None:
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", COMPOSE.read_text()))
    assert required, "the secrets must be required, not defaulted"
    missing = required - set(env_example())
    assert not missing, f"add to .env.example: {sorted(missing)}"
    with pytest.raises(MissingVariable, match=r"set \w+ .*in \.env"):
        interpolate(COMPOSE.read_text(), {})


def test_services_present(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    expected = {"postgres", "redis", "minio", "minio-init", "hypha", "flower"} | AIRFLOW_SERVICES
    assert expected <= services, expected - services


def test_health_checks_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", name
            continue
        hc = svc.get("healthcheck")
        assert hc and hc.get("test"), f"{name} has no health check"
        assert hc["test"][0] in ("CMD", "CMD-SHELL"), name
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == want, (name, dep)
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert {"postgres", "redis"} <= set(deps), name


def test_celery_executor_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        # workers reach the api-server's execution API by service name and port
        url = env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        host, port = re.match(r"http://([^:/]+):(\d+)/execution/$", url).groups()  # type: ignore[union-attr]
        assert host in services and f"{port}" in str(services[host]["ports"][0])
        assert env["PYTHONPATH"].split(":") == [CONTAINER_ROOT, f"{CONTAINER_ROOT}/plugins"]
        # one JWT secret for every component, or task tokens are rejected
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == env_example()["AIRFLOW_JWT_SECRET"]


def _worker_queues(command: str) -> list[str]:
    m = re.search(r"--queues\s+(\S+)", command)
    assert m, command
    return m.group(1).split(",")


def test_worker_queues_cover_every_queue(compose: dict[str, Any]) -> None:
    from imaging.queues import CPU, GPU, IO, QUEUES

    services = compose["services"]
    served: dict[str, list[str]] = {}
    for name, svc in services.items():
        cmd = svc.get("command")
        if isinstance(cmd, str) and cmd.startswith("celery worker"):
            served[name] = _worker_queues(cmd)
    assert served["airflow-worker-io"] == ["default", IO]
    assert CPU in served["airflow-worker-cpu"]
    assert served["airflow-worker-gpu"] == [GPU]
    assert set(QUEUES) <= {q for qs in served.values() for q in qs}
    # CPU/GPU steps start process pools: their workers must not be Celery's daemonic prefork children
    for name in ("airflow-worker-cpu", "airflow-worker-gpu"):
        assert services[name]["environment"]["AIRFLOW__CELERY__POOL"] == "solo", name
    assert "AIRFLOW__CELERY__POOL" not in services["airflow-worker-io"]["environment"]
    assert int(services["airflow-worker-cpu"]["deploy"]["replicas"]) >= 1
    # without the gpu profile the remaining workers still serve every queue
    no_gpu = {q for n, qs in served.items() if not services[n].get("profiles") for q in qs}
    assert set(QUEUES) <= no_gpu


def test_gpu_worker_reserves_a_gpu_behind_a_profile(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["build"]["args"]["EXTRA_PIP_PACKAGES"]
    assert compose["services"]["airflow-worker-cpu"].get("profiles") is None


def _bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for vol in svc.get("volumes", []):
        src, _, rest = vol.partition(":")
        out.append((src, rest.split(":")[0]))
    return out


def test_volumes_and_referenced_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            ctx = ROOT / build["context"]
            dockerfile = ctx / build["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile}"
            assert Path(f"{dockerfile}.dockerignore").is_file(), f"{name}: no .dockerignore"
        for src, _target in _bind_mounts(svc):
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name}: bind mount source {src} missing"
            else:
                used.add(src)
                assert src in declared, f"{name}: volume {src} not declared"
    assert used == declared, f"declared but unused: {declared - used}"
    # the project's code is mounted into every Airflow container
    for name in AIRFLOW_SERVICES:
        targets = {t for _, t in _bind_mounts(compose["services"][name])}
        for part in ("dags", "plugins", "include", "migrations", "config", "alembic.ini"):
            assert f"{CONTAINER_ROOT}/{part}" in targets, (name, part)


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def _ignored(path: str, ignore_file: Path) -> bool:
    """BuildKit's allow-list semantics for the patterns used here (``*`` then ``!path``)."""
    ignored = False
    for pat in ignore_file.read_text().splitlines():
        pat = pat.strip()
        if not pat or pat.startswith("#"):
            continue
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if pat == "*" or path == pat or path.startswith(pat + "/"):
            ignored = not neg
    return ignored


def test_dockerfiles_copy_only_existing_unignored_files() -> None:
    for dockerfile in sorted((ROOT / "docker").glob("*.Dockerfile")):
        ignore = Path(f"{dockerfile}.dockerignore")
        sources = _copy_sources(dockerfile)
        assert sources, dockerfile
        for src in sources:
            assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src} missing"
            assert not _ignored(src.rstrip("/"), ignore), f"{dockerfile.name}: {src} is ignored"
        assert _ignored(".venv", ignore) and _ignored(".data", ignore)


def test_init_paths_inside_the_image_map_to_files() -> None:
    """Paths the compose file and the init script use inside the image exist in docker/init/."""
    text = COMPOSE.read_text() + (ROOT / "docker" / "init" / "airflow-init.sh").read_text()
    refs = set(re.findall(r"/opt/airflow/docker-init/([\w.-]+)", text))
    assert refs >= {"airflow-init.sh", "connections.py"}
    for ref in refs:
        assert (ROOT / "docker" / "init" / ref).is_file(), ref


def test_pinned_versions_match_the_notes() -> None:
    reqs = (ROOT / "requirements.txt").read_text()
    celery = re.search(r"^celery\[redis\]==(\d+)\.(\d+)", reqs, re.M)
    assert celery and (int(celery.group(1)), int(celery.group(2))) < (5, 7)
    assert re.search(r"^apache-airflow==3\.3\.2$", reqs, re.M)
    assert "ARG AIRFLOW_VERSION=3.3.2" in (ROOT / "docker" / "airflow.Dockerfile").read_text()
    hypha = (ROOT / "requirements-hypha.txt").read_text()
    assert "hypha[s3]==0.21.137" in hypha and "sqlmodel==0.0.44" in hypha


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "docker").rglob("*.sh")))
def test_shell_scripts_parse(script: str) -> None:
    (path,) = list((ROOT / "docker").rglob(script))
    shell = (
        "bash"
        if path.read_text().startswith("#!/usr/bin/env bash")
        or path.read_text().startswith("#!/bin/bash")
        else "sh"
    )
    proc = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------- init scripts, run for real


def test_postgres_app_db_init_creates_role_and_database_idempotently() -> None:
    psql = shutil.which("psql")
    assert psql, "psql is needed (postgresql-client)"
    suffix = secrets.token_hex(3)
    user, db = f"imaging_init_{suffix}", f"imaging_init_db_{suffix}"
    env = dict(
        os.environ,
        PGHOST="127.0.0.1",
        POSTGRES_USER="postgres",
        POSTGRES_DB="postgres",
        IMAGING_DB_USER=user,
        IMAGING_DB_NAME=db,
        IMAGING_DB_PASSWORD="pw with 'quote",
    )
    script = ROOT / "docker" / "postgres" / "init-app-db.sh"
    try:
        for _ in range(2):  # rerun: no error, nothing duplicated
            proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
        owner = subprocess.run(
            [psql, "-h", "127.0.0.1", "-U", "postgres", "-Atc",
             f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert owner == user
        missing = dict(env)
        missing.pop("IMAGING_DB_PASSWORD")
        proc = subprocess.run(["bash", str(script)], env=missing, capture_output=True, text=True)
        assert proc.returncode != 0 and "IMAGING_DB_PASSWORD" in proc.stderr
    finally:
        for sql in (f'DROP DATABASE IF EXISTS "{db}"', f'DROP ROLE IF EXISTS "{user}"'):
            subprocess.run(
                [psql, "-h", "127.0.0.1", "-U", "postgres", "-c", sql], capture_output=True
            )


def test_hypha_start_script_serves_the_artifact_manager(s3_server: Any, tmp_path: Path) -> None:
    from include.common.local_services import HYPHA_PYTHON, free_port

    assert HYPHA_PYTHON.exists(), "run scripts/setup.sh (.venv-hypha)"
    port = free_port()
    (s3_server.root / "hypha-ws-compose").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env.update(
        PATH=f"{HYPHA_PYTHON.parent}{os.pathsep}{os.environ['PATH']}",
        AWS_CONFIG_FILE=str(ROOT / "docker" / "hypha" / "aws_config"),
        HYPHA_ROOT_TOKEN=secrets.token_urlsafe(32),
        HYPHA_JWT_SECRET=secrets.token_urlsafe(32),
        HYPHA_S3_ENDPOINT=s3_server.endpoint_url,
        HYPHA_S3_PUBLIC_ENDPOINT=s3_server.endpoint_url,
        HYPHA_S3_ACCESS_KEY=s3_server.access_key,
        HYPHA_S3_SECRET_KEY=s3_server.secret_key,
        HYPHA_WORKSPACE_BUCKET="hypha-ws-compose",
        HYPHA_HOST="127.0.0.1",
        HYPHA_PORT=str(port),
        HYPHA_DATA_DIR=str(tmp_path),
    )
    script = ROOT / "docker" / "hypha" / "start-hypha.sh"
    short = dict(env, HYPHA_ROOT_TOKEN="too-short")
    proc = subprocess.run(
        ["sh", str(script)], env=short, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and "at least 32" in proc.stderr
    log = open(tmp_path / "hypha.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        ["sh", str(script)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "hypha.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/readiness", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "hypha not ready"
                time.sleep(0.5)
        assert (tmp_path / "artifacts.db").exists()
    finally:
        from include.common.local_services import stop_pid

        stop_pid(server.pid)
        log.close()


def _load_connections_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "compose_connections", ROOT / "docker" / "init" / "connections.py"
    )
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_connections_from_env_example() -> None:
    mod = _load_connections_module()
    env = env_example()
    conns = mod.build_connections(env)
    assert set(conns) == {"imaging_db", "imaging_s3", "imaging_hypha", "nas_default"}
    assert conns["imaging_db"]["host"] == "postgres" and conns["imaging_db"]["schema"] == "imaging"
    s3_extra = json.loads(conns["imaging_s3"]["extra"])
    assert s3_extra["endpoint_url"] == "http://minio:9000"
    assert s3_extra["config_kwargs"]["signature_version"] == "s3v4"
    assert conns["imaging_hypha"]["host"] == "http://hypha:9527"
    with_keys = mod.build_connections(dict(env, ROBOFLOW_API_KEY="rf_Key1", ETSY_API_KEY="etsy1"))
    assert with_keys["roboflow_default"]["password"] == "rf_Key1"
    assert (
        json.loads(with_keys["roboflow_default"]["extra"])["api_url"] == "https://api.roboflow.com"
    )
    assert with_keys["etsy_default"]["host"] == "https://openapi.etsy.com"
    assert with_keys["etsy_default"]["login"] == "etsy1"
    with pytest.raises(SystemExit, match="HYPHA_ROOT_TOKEN"):
        mod.build_connections({k: v for k, v in env.items() if k != "HYPHA_ROOT_TOKEN"})
    url = mod.app_db_url(dict(env, IMAGING_DB_PASSWORD="p@ss/word"))
    assert url == "postgresql+psycopg2://imaging:p%40ss%2Fword@postgres:5432/imaging"


def test_passwords_file(tmp_path: Path) -> None:
    mod = _load_connections_module()
    target = tmp_path / "auth" / "passwords.json"
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "airflow:admin,viewer:viewer",
        "_AIRFLOW_WWW_USER_PASSWORD": "s3cret",
    }
    assert mod.write_passwords(env) == target
    assert json.loads(target.read_text()) == {"airflow": "s3cret", "viewer": "s3cret"}
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_connections_script_imports_into_the_metadata_db(airflow_db: Path, tmp_path: Path) -> None:
    """The init container's step, run against this session's real metadata DB, twice, with a
    Fernet key as in compose; read back through the Airflow CLI with the same key."""
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(env_example())
    env["HYPHA_ROOT_TOKEN"] = "t" * 40
    env["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
    try:
        for _ in range(2):
            proc = subprocess.run(
                [sys.executable, str(ROOT / "docker" / "init" / "connections.py")],
                env=env, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout + proc.stderr
        out = tmp_path / "export.json"
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run(
            [airflow, "connections", "export", str(out)],
            env=env, capture_output=True, text=True, timeout=180, check=True,
        )  # fmt: skip
        rows = json.loads(out.read_text())
        assert {"imaging_db", "imaging_s3", "imaging_hypha", "nas_default"} <= set(rows)
        assert rows["imaging_hypha"]["password"] == "t" * 40
        extra = rows["imaging_s3"]["extra"]
        extra = json.loads(extra) if isinstance(extra, str) else extra
        assert extra["endpoint_url"] == "http://minio:9000"
        assert "roboflow_default" not in rows  # no key in .env.example: no connection
    finally:
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session
        from sqlalchemy import delete

        with create_session() as s:
            s.execute(
                delete(Connection).where(
                    Connection.conn_id.in_(
                        ["imaging_db", "imaging_s3", "imaging_hypha", "nas_default"]
                    )
                )
            )


@pytest.mark.parametrize(
    "service, script",
    [
        ("postgres", "docker/postgres/init-app-db.sh"),
        ("hypha", "docker/hypha/start-hypha.sh"),
        ("airflow-init", "docker/init/airflow-init.sh"),
    ],
)
def test_each_script_gets_the_variables_it_requires(
    compose: dict[str, Any], service: str, script: str
) -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / script).read_text()))
    assert required, script
    env = compose["services"][service]["environment"]
    assert not required - set(env), f"{service} lacks {sorted(required - set(env))} for {script}"


def test_airflow_init_environment_is_enough_for_connections_and_passwords(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    mod = _load_connections_module()
    env = {k: str(v) for k, v in compose["services"]["airflow-init"]["environment"].items()}
    conns = mod.build_connections(env)  # SystemExit if a secret were missing
    assert conns["imaging_s3"]["password"] == env_example()["MINIO_ROOT_PASSWORD"]
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(tmp_path / "passwords.json")
    assert mod.write_passwords(env) is not None
    users = json.loads((tmp_path / "passwords.json").read_text())
    assert users == {
        env_example()["_AIRFLOW_WWW_USER_USERNAME"]: env_example()["_AIRFLOW_WWW_USER_PASSWORD"]
    }
    # the other Airflow containers do not receive the secrets
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        leaked = {"IMAGING_DB_PASSWORD", "MINIO_ROOT_PASSWORD", "HYPHA_ROOT_TOKEN"} & set(
            compose["services"][name]["environment"]
        )
        assert not leaked, (name, leaked)


def test_compose_etsy_connection_sends_a_listing_to_the_fake_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The etsy_default connection exactly as airflow-init builds it from .env (an ETSY_API_URL
    with /v3, as users copy it from Etsy's docs) reaches the documented endpoints with the keystring
    as x-api-key and the token as Bearer: a draft listing and an image arrive at the fake server."""
    from PIL import Image

    from imaging.hooks.etsy import EtsyHook
    from include.design import etsy
    from tests.fakes.etsy_server import FakeEtsyServer

    srv = FakeEtsyServer().start()
    try:
        env = dict(
            env_example(),
            ETSY_API_KEY=srv.state.api_key,
            ETSY_ACCESS_TOKEN=srv.state.token,
            ETSY_SHOP_ID=srv.state.shop_id,
            ETSY_API_URL=srv.url + "/v3/",
        )
        conn = _load_connections_module().build_connections(env)["etsy_default"]
        monkeypatch.setenv("AIRFLOW_CONN_ETSY_COMPOSE", json.dumps(conn))
        hook = EtsyHook(etsy_conn_id="etsy_compose", backoff_base=0.01, backoff_cap=0.05)
        img = tmp_path / "m.jpg"
        Image.new("RGB", (40, 30), (9, 99, 199)).save(img)
        payload = {
            "quantity": "1", "title": "Blue Abstract Art Print", "description": "A print.",
            "price": "18.00", "who_made": "i_did", "when_made": "made_to_order",
            "taxonomy_id": "2078", "tags": "art print,d-0123456789ab",
        }  # fmt: skip
        res = etsy.publish(
            hook, payload=payload, tag="d-0123456789ab", images=[img], known_listing_id=None,
            on_listing=lambda _id: None,
        )  # fmt: skip
        assert res.created and len(srv.state.listings) == 1
        assert srv.state.images[res.listing_id]
        paths = [p for _m, p, _s in srv.state.requests]
        assert all(p.startswith("/v3/application/") for p in paths), paths
    finally:
        srv.stop()
