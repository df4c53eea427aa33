"""Preload the AWS SDK and s3br in any Airflow process just before it first forks.

The scheduler (LocalExecutor), Celery workers and the dag-processor fork a process per task or
per DAG file parse. Each of those processes imported boto3 and s3br and parsed S3's model anew:
0.3 to 0.5 s of every task's start-up. Measured in one run on SeaweedFS
(bench/results/seaweedfs-n100000-preload.md), the preload cut the CPU of s3br's tasks in a
backup of 100,000 objects from 174.5 to 138.1 s and the run from 250 to 228 s; with nothing
to do, 9.0 to 4.4 CPU s and 13.4 to 10.1 s. ``hooks.sdk_cache.preload`` does that work once in
the parent, and its forks inherit it.

Airflow offers a provider no start-up hook, so this module is registered as an ``airflow.policy``
entry point (``pyproject.toml``): ``airflow.settings`` imports those in every Airflow process as
it initialises. It defines no policy. Importing it only registers ``os.register_at_fork``; the
preload runs before the process's first ``os.fork``, when Airflow is fully imported, and only in
processes that fork (an api-server or ``airflow dags test`` never pays for it).
``subprocess`` does not run fork handlers, so a process that only starts commands does not
either. Off with ``[s3br] preload_sdk = False`` (``AIRFLOW__S3BR__PRELOAD_SDK``).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

_armed = True


def _before_first_fork() -> None:
    global _armed
    if not _armed:
        return
    _armed = False  # children inherit it: a task process never preloads again
    try:
        from airflow.configuration import conf

        if not conf.getboolean("s3br", "preload_sdk", fallback=True):
            return
        from s3br_provider.hooks.sdk_cache import preload

        preload()
    except Exception:  # a fork handler must not fail the fork; the tasks then load it themselves
        log.exception("s3br: preloading the AWS SDK before forking failed; tasks load it themselves")


os.register_at_fork(before=_before_first_fork)
