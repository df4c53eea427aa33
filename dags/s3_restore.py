"""``s3_restore``: copy a backup bucket (as it is, or as it was) into a new bucket."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from s3br_provider.params import DEFAULT_ARGS, as_templates, restore_params
from s3br_provider.task_groups import restore_group

DOC = """
### S3 restore

Copies every object of `backup_bucket` that is not tagged `Deleted=True` into `target_bucket`,
a bucket the run creates (an existing bucket must be empty: a restore never overwrites).
Objects in GLACIER or DEEP_ARCHIVE are restored first (`restore_tier`, `restore_days`) and a
deferrable `GlacierRestoreSensor` waits for them in the triggerer. With `as_of`, the backup is
restored as it stood at that instant (the backup bucket must be versioned).

`validate -> create_target -> plan_partitions -> partition[p](select -> request_restore ->
wait_for_restore -> copy_batch) -> verify_and_report`

Use `dry_run` first: it reports objects and bytes per storage class, the restore requests that
would be made and the expected retrieval time, and writes nothing.
"""

PARAMS = restore_params()


@dag(
    dag_id="s3_restore",
    description="Restore a backup bucket (optionally as of an instant) into a new bucket.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    doc_md=DOC,
    tags=["s3br", "restore"],
    default_args=DEFAULT_ARGS,
)
def s3_restore() -> None:
    restore_group(
        group_id="restore", prefix_group_id=False, known_params=list(PARAMS), **as_templates(PARAMS)
    )


s3_restore()
