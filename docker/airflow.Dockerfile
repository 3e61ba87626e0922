# The project's Airflow image: the official apache/airflow image plus the pinned requirements.txt.
# Used by every Airflow service of docker-compose.yaml (build context = the project root).
# The project's code (dags/, plugins/, include/, migrations/, config/) is mounted, not baked in, so
# editing a DAG does not need a rebuild; rebuild when requirements.txt changes.
#
#   docker compose build                       # CPU image
#   docker compose --profile gpu build         # also the GPU worker image (EXTRA_PIP_PACKAGES)
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

ARG AIRFLOW_VERSION=3.3.2
# Extra packages for a specialised worker image, e.g. the GPU worker's "ultralytics sahi".
ARG EXTRA_PIP_PACKAGES=""

USER root
# curl for the health checks (already in the official image; kept explicit), tini-like init is
# provided by the official image's dumb-init.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
# Pin apache-airflow on the same command line so pip never up- or downgrades Airflow itself.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt \
    && if [ -n "${EXTRA_PIP_PACKAGES}" ]; then \
         pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" ${EXTRA_PIP_PACKAGES}; \
       fi

COPY --chown=airflow:root docker/init/ /opt/airflow/docker-init/

ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins \
    IMAGING_PROJECT_ROOT=/opt/airflow \
    IMAGING_DATA_DIR=/opt/airflow/data
