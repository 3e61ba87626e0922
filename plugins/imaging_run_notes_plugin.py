"""Airflow plugin: each DAG run's note carries its one-line outcome and summary link
(:mod:`imaging.run_notes`)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from imaging import run_notes


class ImagingRunNotesPlugin(AirflowPlugin):
    name = "imaging_run_notes"
    listeners = [run_notes]
