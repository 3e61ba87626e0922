"""Airflow plugin: the photo upload and gallery web app (``/photos`` on the api-server).

The FastAPI app (``imaging.webapp.app``) is mounted next to Airflow's own UI and API, so it shares
the host and the login; its routes check the Airflow JWT themselves (plugin routes are not
protected by Airflow). Two menu entries open the pages inside the Airflow UI.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from imaging.webapp.app import app


class ImagingWebappPlugin(AirflowPlugin):
    name = "imaging_webapp"
    fastapi_apps = [
        {
            "app": app,
            "url_prefix": "/photos",
            "name": "Photos: upload and gallery",
        }
    ]
    external_views = [
        {
            "name": "Photo upload",
            "href": "/photos/upload",
            "destination": "nav",
            "category": "browse",
            "url_route": "photo-upload",
        },
        {
            "name": "Photo gallery",
            "href": "/photos/gallery",
            "destination": "nav",
            "category": "browse",
            "url_route": "photo-gallery",
        },
    ]
