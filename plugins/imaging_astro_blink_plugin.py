"""Airflow plugin: the astro blink page at ``/astro-blink`` on the api-server (see
:mod:`imaging.astro_blink_app`; it checks the Airflow login itself)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from imaging.astro_blink_app import URL_PREFIX, app


class ImagingAstroBlinkPlugin(AirflowPlugin):
    name = "imaging_astro_blink"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Astro blink page"}]
