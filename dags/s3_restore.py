"""``s3_restore``: copy a backup (as it is, or as it was) into a new bucket, or put back only
what a bucket lacks."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from s3br_provider.params import DEFAULT_ARGS, from_params, restore_params
from s3br_provider.task_groups import restore_group

DOC = """
### S3 restore

Copies every object of `backup_bucket` that is not tagged `Deleted=True` into `target_bucket`,
a bucket the run creates (`target_mode="new_bucket"`: an existing bucket must be empty). With
`target_mode="missing_only"` the target exists (the source itself, say) and only the keys it
lacks are written: an existing key is never overwritten, and is counted as skipped. `keys`
restores only the named keys (at most 1,000), without listing the backup. Objects in GLACIER
or DEEP_ARCHIVE are restored first (`restore_tier`, `restore_days`) and a deferrable
`GlacierRestoreSensor` waits for them in the triggerer. With `as_of`, the backup is restored as
it stood at that instant (the backup bucket must be versioned).

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
    restore_group(group_id="restore", prefix_group_id=False, **from_params(PARAMS))


s3_restore()
