"""The photos web app mounted on the Airflow api-server (see ``app``)."""
