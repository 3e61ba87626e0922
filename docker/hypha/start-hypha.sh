#!/bin/sh
# Start the Hypha server (artifact manager on S3 = MinIO). Configuration from the environment:
#   HYPHA_ROOT_TOKEN (>= 32 chars, required), HYPHA_JWT_SECRET (keeps tokens valid over restarts),
#   HYPHA_S3_ENDPOINT (inside the network), HYPHA_S3_PUBLIC_ENDPOINT (in presigned URLs: must be
#   reachable by whoever uploads, i.e. the Airflow workers), HYPHA_S3_ACCESS_KEY/SECRET_KEY,
#   HYPHA_WORKSPACE_BUCKET, HYPHA_HOST/HYPHA_PORT (0.0.0.0:9527), HYPHA_DATA_DIR (/data).
set -eu
: "${HYPHA_ROOT_TOKEN:?set HYPHA_ROOT_TOKEN (at least 32 random characters) in .env}"
: "${HYPHA_S3_ACCESS_KEY:?}" "${HYPHA_S3_SECRET_KEY:?}"
if [ "${#HYPHA_ROOT_TOKEN}" -lt 32 ]; then
    echo "HYPHA_ROOT_TOKEN must be at least 32 characters" >&2
    exit 2
fi
if [ -n "${HYPHA_JWT_SECRET:-}" ]; then export JWT_SECRET="$HYPHA_JWT_SECRET"; fi
exec python -m hypha.server \
    --host "${HYPHA_HOST:-0.0.0.0}" \
    --port "${HYPHA_PORT:-9527}" \
    --enable-s3 \
    --endpoint-url="${HYPHA_S3_ENDPOINT:-http://minio:9000}" \
    --endpoint-url-public="${HYPHA_S3_PUBLIC_ENDPOINT:-http://minio:9000}" \
    --access-key-id="${HYPHA_S3_ACCESS_KEY}" \
    --secret-access-key="${HYPHA_S3_SECRET_KEY}" \
    --region-name=us-east-1 \
    --s3-admin-type=generic \
    --workspace-bucket="${HYPHA_WORKSPACE_BUCKET:-hypha-workspaces}" \
    --root-token="${HYPHA_ROOT_TOKEN}" \
    --database-uri="sqlite+aiosqlite:///${HYPHA_DATA_DIR:-/data}/artifacts.db"
