"""Reef microscope timelapse pipelines: folder selection, acquisition parsing, OME-Zarr stitching,
zip streaming and Hypha upload planning (no Airflow imports)."""
