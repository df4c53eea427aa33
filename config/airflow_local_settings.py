"""Airflow local settings for an s3br deployment.

Airflow imports ``airflow_local_settings`` from ``$AIRFLOW_HOME/config`` in every process at
start (docker-compose mounts this folder there). The scheduler (LocalExecutor) and Celery workers
fork a process per task, so loading the AWS SDK here once spares every task importing boto3 and
parsing S3's models: about half a second of each task's start-up (README: Tuning).
"""

import logging

try:
    from s3br_provider.hooks.sdk_cache import preload
except ImportError:  # s3br not installed in this image: Airflow must still start
    logging.getLogger(__name__).warning("s3br_provider not importable: AWS SDK not preloaded")
else:
    preload()
