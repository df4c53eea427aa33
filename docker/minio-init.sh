#!/bin/sh
# One-shot set-up of the local MinIO for the s3br demo (run by the minio-init
# service in docker-compose.yaml, inside the minio/mc image).
#
# Creates the demo buckets named by the Airflow Variables that airflow-init sets
# (s3br_source_bucket=demo-source, s3br_backup_bucket=demo-backup), enables
# versioning on the backup bucket and puts a few demo objects in the source.
# Safe to run again: existing buckets and objects are kept or overwritten.
set -eu

MINIO_URL="${MINIO_URL:-http://minio:9000}"

echo "Waiting for MinIO at ${MINIO_URL}..."
attempt=0
until mc alias set local "${MINIO_URL}" "${MINIO_ROOT_USER}" "${MINIO_ROOT_PASSWORD}" >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "${attempt}" -ge 30 ]; then
    echo "MinIO did not answer after ${attempt} attempts" >&2
    exit 1
  fi
  sleep 2
done

mc mb --ignore-existing local/demo-source
mc mb --ignore-existing local/demo-backup
mc version enable local/demo-backup

# mc pipe uploads its standard input as one object.
put() { printf '%b' "$2" | mc pipe "local/demo-source/$1"; }
put reports/2024/q1.csv 'id,amount\n1,10\n2,20\n'
put reports/2024/q2.csv 'id,amount\n3,30\n4,40\n'
put manifest.json '{"name": "s3br demo", "version": 1}\n'
put images/readme.txt 'demo object under a nested prefix\n'

echo "Demo buckets ready:"
mc ls --recursive local/demo-source
mc version info local/demo-backup
