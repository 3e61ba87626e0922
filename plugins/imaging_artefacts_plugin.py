"""Airflow plugin: published pipeline artefacts (contact sheets, reports, run summaries) at
``/artefacts`` on the api-server.

The FastAPI app (``imaging.artefacts_app``) serves only files under ``$IMAGING_DATA_DIR/published``
and checks the Airflow login itself (plugin routes are not protected by Airflow). The astro DAGs
link their artefacts as ``<[api] base_url>/artefacts/<dag_id>/<run_id>/<name>`` in approval bodies
and task logs (see ``include.common.publish``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from imaging.artefacts_app import URL_PREFIX, app


class ImagingArtefactsPlugin(AirflowPlugin):
    name = "imaging_artefacts"
    fastapi_apps = [
        {
            "app": app,
            "url_prefix": URL_PREFIX,
            "name": "Published pipeline artefacts",
        }
    ]
