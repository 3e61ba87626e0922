"""Installation settings: an empty param falls back to the Variable, then to the default."""

from __future__ import annotations

import pytest

from include.common.install import SETTINGS, defaults_for, resolve, resolve_params


def test_param_beats_variable_beats_default() -> None:
    variables = {"imaging_astro_raw_dir": "/var/nina"}
    assert resolve("astro_raw_dir", "/given", variables.get) == "/given"
    assert resolve("astro_raw_dir", None, variables.get) == "/var/nina"
    assert resolve("astro_raw_dir", "  ", variables.get) == "/var/nina"  # blank = empty
    assert resolve("astro_raw_dir", None, {}.get).endswith("/astro/raw")
    assert resolve("astro_scheduler_db", None, {}.get) is None  # no default: no update


def test_resolve_params_keeps_other_params() -> None:
    params = {"raw_dir": None, "library_dir": " /lib ", "reject": None}
    out = resolve_params(
        params,
        {"raw_dir": "astro_raw_dir", "library_dir": "astro_library_dir"},
        {"imaging_astro_raw_dir": "/raw"}.get,
    )
    assert out == {"raw_dir": "/raw", "library_dir": "/lib", "reject": None}
    assert params["raw_dir"] is None  # the input is not changed


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(KeyError):
        resolve("no_such_setting", None)


def test_every_setting_has_a_variable_name_and_description() -> None:
    defaults = defaults_for()
    assert set(defaults) == {s.variable for s in SETTINGS.values()}
    for s in SETTINGS.values():
        assert s.variable.startswith("imaging_") and s.description
