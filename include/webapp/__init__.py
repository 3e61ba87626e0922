"""The photo upload and gallery web app's domain logic (no Airflow imports): upload validation,
staging for ``photo_ingest``, reprocess requests and the read queries of the pages."""
