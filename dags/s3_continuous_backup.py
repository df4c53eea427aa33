"""``s3_continuous_backup``: every change of the source bucket in the backup within a minute."""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag

from s3br_provider.operators.events_batch import S3EventsBatchOperator
from s3br_provider.params import BACKUP_VARIABLE, DEFAULT_ARGS, SOURCE_VARIABLE
from s3br_provider.triggers.sqs_events import S3EventsQueueTrigger

QUEUE_VARIABLE = "s3br_events_queue_url"
VISIBILITY_VARIABLE = "s3br_events_visibility_timeout"

DOC = f"""
### S3 continuous backup

The source bucket's event notifications (`s3:ObjectCreated:*`, `s3:ObjectRemoved:*`,
`s3:ObjectTagging:*`) go to the SQS queue of the Variable `{QUEUE_VARIABLE}`. The triggerer
watches the queue (it never takes a message out); each time messages wait, a run applies one
batch: copies with metadata and tags, `Deleted`/`DeletedAt` tags for removed objects, nothing
deleted. A message leaves the queue only once its change is in the backup. The daily
`s3_backup` stays the reconciliation pass. Buckets: Variables `{SOURCE_VARIABLE}`,
`{BACKUP_VARIABLE}`; connection `aws_default`. A killed batch's messages come back after
`{VISIBILITY_VARIABLE}` seconds (default 300).
"""

EVENTS = Asset(
    name="s3br_source_events",  # no URI scheme: one would load every provider's URI handlers
    watchers=[
        AssetWatcher(
            name="s3br_events_queue",
            trigger=S3EventsQueueTrigger(queue_url_variable=QUEUE_VARIABLE, aws_conn_id="aws_default"),
        )
    ],
)


@dag(
    dag_id="s3_continuous_backup",
    description="Apply the source bucket's S3 event notifications to the backup as they arrive.",
    schedule=[EVENTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["s3br", "backup", "continuous"],
    default_args=DEFAULT_ARGS,
)
def s3_continuous_backup() -> None:
    S3EventsBatchOperator(
        task_id="apply_events",
        source_bucket=f"{{{{ var.value.{SOURCE_VARIABLE} }}}}",
        backup_bucket=f"{{{{ var.value.{BACKUP_VARIABLE} }}}}",
        queue_url=f"{{{{ var.value.{QUEUE_VARIABLE} }}}}",
        visibility_timeout=f"{{{{ var.value.get('{VISIBILITY_VARIABLE}', 300) }}}}",
    )


s3_continuous_backup()
