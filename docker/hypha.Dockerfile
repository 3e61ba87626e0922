# Hypha server with the artifact manager, in its own image: the server pins fastapi<=0.115.2, which
# Airflow 3.3 cannot share (see requirements-hypha.txt). S3 backend = the compose stack's MinIO.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    AWS_CONFIG_FILE=/etc/hypha/aws_config

COPY requirements-hypha.txt /tmp/requirements-hypha.txt
RUN pip install -r /tmp/requirements-hypha.txt \
    && useradd --create-home --uid 50001 hypha \
    && mkdir -p /data /etc/hypha \
    && chown hypha /data
# Presigned URLs must be SigV4 (MinIO and strict S3 servers reject the SigV2 default of boto).
COPY docker/hypha/aws_config /etc/hypha/aws_config
COPY docker/hypha/start-hypha.sh /usr/local/bin/start-hypha

USER hypha
WORKDIR /data
EXPOSE 9527
HEALTHCHECK --interval=15s --timeout=5s --retries=10 --start-period=20s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9527/health/readiness', timeout=4)" || exit 1
ENTRYPOINT ["/bin/sh", "/usr/local/bin/start-hypha"]
