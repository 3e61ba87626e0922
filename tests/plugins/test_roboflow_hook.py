"""RoboflowHook: the real SDK pointed at the fake API through ``extra.api_url``; errors are clear."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fakes.roboflow_server import FakeRoboflowServer, shared_server


@pytest.fixture(scope="module")
def server() -> FakeRoboflowServer:
    return shared_server()


def _set_conn(
    monkeypatch: pytest.MonkeyPatch, conn: dict, conn_id: str = "roboflow_default"
) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    from PIL import Image

    p = tmp_path / "one.png"
    Image.new("RGB", (16, 16), (int(time.time_ns() % 255), 3, 4)).save(p)
    return p


def test_hook_metadata() -> None:
    from imaging.hooks.roboflow import RoboflowHook

    assert RoboflowHook.conn_name_attr == "roboflow_conn_id"
    assert RoboflowHook.default_conn_name == "roboflow_default"
    assert RoboflowHook.conn_type == "roboflow"
    assert RoboflowHook.get_ui_field_behaviour()["relabeling"] == {"password": "API key"}


def test_connect_upload_and_count(server, monkeypatch, image) -> None:
    from imaging.hooks.roboflow import RoboflowHook

    _set_conn(monkeypatch, server.airflow_connection(upload_workers=3, upload_timeout=2))
    hook = RoboflowHook()
    assert hook.test_connection() == (True, f"Connected to Roboflow workspace {server.workspace!r}")
    assert (hook.upload_workers, hook.upload_timeout) == (3, 2.0)
    assert hook.get_conn() is hook.get_conn()  # cached client
    project = server.new_project("hook")
    assert hook.project_image_count(project) == 0
    res = hook.upload_image(project, str(image), split="valid", batch_name="b-1", tags=["a"])
    assert res["success"] and res["id"]
    assert hook.upload_image(project, str(image), split="valid", batch_name="b-1")["duplicate"]
    assert hook.project_image_count(project) == 1
    assert server.report(project)["by_name"]["one.png"] == {
        "split": "valid",
        "batch": "b-1",
        "tags": ["a"],
        "annotated": False,
    }


def test_workspace_defaults_to_the_keys_workspace(server, monkeypatch) -> None:
    from imaging.hooks.roboflow import RoboflowHook

    conn = server.airflow_connection()
    del conn["extra"]["workspace"]
    _set_conn(monkeypatch, conn)
    assert RoboflowHook().workspace_url == server.workspace


def test_missing_project_and_bad_keys_are_clear_errors(server, monkeypatch) -> None:
    from imaging.hooks.roboflow import RoboflowHook

    _set_conn(monkeypatch, server.airflow_connection())
    with pytest.raises(ValueError, match="project 'no-such-project' not found in workspace"):
        RoboflowHook().get_project("no-such-project")
    with pytest.raises(ValueError, match="project 'no-such-project' not found in workspace"):
        RoboflowHook().project_image_count("no-such-project")

    conn = server.airflow_connection()
    conn["password"] = "NOLOWERCASE123"
    _set_conn(monkeypatch, conn)
    with pytest.raises(ValueError, match="no lowercase letter"):
        RoboflowHook().get_conn()

    conn["password"] = ""
    _set_conn(monkeypatch, conn)
    with pytest.raises(ValueError, match="has no API key"):
        RoboflowHook().get_conn()

    conn["password"] = "wrong-key"
    _set_conn(monkeypatch, conn)
    ok, msg = RoboflowHook().test_connection()
    assert not ok and "API key does not exist" in msg
    with pytest.raises(
        ValueError, match="Roboflow rejected the API key of connection 'roboflow_default'"
    ):
        RoboflowHook().get_project("anything")


def test_upload_timeout_caps_the_sdk_request(server, monkeypatch, image) -> None:
    from roboflow.adapters.rfapi import ImageUploadError

    from imaging.hooks.roboflow import RoboflowHook

    _set_conn(monkeypatch, server.airflow_connection(upload_timeout=0.3))
    project = server.new_project("hook")
    server.configure(script={image.name: ["timeout"]})
    try:
        t0 = time.monotonic()
        with pytest.raises(ImageUploadError, match="timed out") as err:
            RoboflowHook().upload_image(project, str(image), split="train", batch_name="b")
        assert time.monotonic() - t0 < 1.2  # the SDK's own timeout is 300 s
        assert err.value.status_code is None
    finally:
        server.configure(script={})


def test_sdk_is_repointed_when_the_api_url_changes(server, monkeypatch, image) -> None:
    """The SDK copies API_URL at import; a second server in the same process must still be used."""
    from imaging.hooks.roboflow import RoboflowHook, import_roboflow

    with FakeRoboflowServer(projects=("other",)) as other:
        _set_conn(monkeypatch, other.airflow_connection())
        hook = RoboflowHook()
        hook.upload_image("other", str(image), split="train", batch_name="b")
        assert other.report("other")["images"] == 1
        assert hook.project_image_count("other") == 1
    roboflow = import_roboflow(server.url)
    from roboflow.adapters import rfapi

    assert roboflow.config.API_URL == rfapi.API_URL == server.url


def test_sdk_survives_the_plugin_loader_shadowing_its_name(server, monkeypatch, image) -> None:
    """Airflow's plugin loader imports ``plugins/imaging/hooks/roboflow.py`` as the top-level module
    ``roboflow``; the hook must still reach the real SDK, also after the SDK was imported."""
    import importlib.util
    import sys

    import roboflow as real_sdk

    from imaging.hooks import roboflow as hook_module

    spec = importlib.util.spec_from_file_location("roboflow", hook_module.__file__)
    shadow = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "roboflow", shadow)
    spec.loader.exec_module(shadow)  # what the plugin loader does

    _set_conn(monkeypatch, server.airflow_connection())
    project = server.new_project("hook")
    hook = hook_module.RoboflowHook()
    assert hook.upload_image(project, str(image), split="train", batch_name="b")["id"]
    assert hook.project_image_count(project) == 1
    sdk = sys.modules["roboflow"]
    assert hasattr(sdk, "__path__") and server.url == sdk.config.API_URL
    assert sdk.adapters.rfapi is sys.modules["roboflow.adapters.rfapi"]
    assert real_sdk.__file__ == sdk.__file__
