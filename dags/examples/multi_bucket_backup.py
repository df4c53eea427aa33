"""``multi_bucket_backup``: several source/backup pairs from one Variable, one ``backup_group`` each.

Set the Airflow Variable ``s3br_backup_pairs`` to a JSON list, for example::

    airflow variables set s3br_backup_pairs \
      '[{"source_bucket": "orders", "backup_bucket": "orders-backup"},
        {"source_bucket": "invoices", "backup_bucket": "invoices-backup", "prefix": "2026/"}]'

Each entry takes any keyword of ``backup_group`` (``prefix``, ``compare``, ``max_partitions``,
connection ids, and ``group_id``, by default the source bucket's name). The Variable is read
when the DAG file is parsed, so a changed list shows as new groups after the next parse; pairs
back up in parallel, each in its own group (``orders.validate``, ``orders.partition.diff``, ...)
with its own run files (``_s3br/runs/multi_bucket_backup/<run_id>/<group>/``).
"""

from __future__ import annotations

import json
import re

from airflow.sdk import Variable, dag

from s3br_provider.params import DAILY_BACKUP
from s3br_provider.task_groups import backup_group

PAIRS_VARIABLE = "s3br_backup_pairs"


def group_id_for(source_bucket: str) -> str:
    """A task group id from a bucket name (dots are group separators in task ids)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", source_bucket)


def pairs() -> list[dict]:
    """The bucket pairs of the Variable; none (an empty DAG) while it is not set."""
    value = Variable.get(PAIRS_VARIABLE, default="[]")
    found = json.loads(value)
    if not isinstance(found, list) or not all(isinstance(pair, dict) for pair in found):
        raise ValueError(f"the Variable {PAIRS_VARIABLE} must be a JSON list of objects, got {value!r}")
    return found


@dag(
    dag_id="multi_bucket_backup",
    description="Back up every bucket pair listed in the Variable s3br_backup_pairs.",
    tags=["s3br", "backup", "example"],
    **DAILY_BACKUP,
)
def multi_bucket_backup() -> None:
    for pair in pairs():
        backup_group(**{"group_id": group_id_for(pair["source_bucket"]), **pair})


multi_bucket_backup()
