"""``s3_backup``: keep a backup bucket in step with a source bucket, server-side, in parallel."""

from __future__ import annotations

from airflow.sdk import dag

from s3br_provider.params import BACKUP_VARIABLE, DAILY_BACKUP, SOURCE_VARIABLE, backup_params, from_params
from s3br_provider.task_groups import backup_group

DOC = """
### S3 backup

Copies new and changed objects of `source_bucket` into `backup_bucket` server-side, one mapped
task per key partition. Objects that vanished from the source are **never deleted** from the
backup: they are tagged `Deleted=True` and `DeletedAt=YYYY-MM-DDTHH:MM` (UTC).

`validate -> plan_partitions -> partition[p](diff -> copy_batch -> tag_deleted) -> report`

Mapped tasks are named by their key range `(start_after, end]`. Manifests and the run report
(`report.json`) live in the backup bucket under `_s3br/runs/s3_backup/<run_id>/`.
"""

PARAMS = backup_params()


@dag(
    dag_id="s3_backup",
    description="Back up an S3 bucket into a backup bucket; vanished objects are tagged, never deleted.",
    tags=["s3br", "backup"],
    params=PARAMS,
    doc_md=DOC,
    **DAILY_BACKUP,
)
def s3_backup() -> None:
    backup_group(
        group_id="backup",
        prefix_group_id=False,
        **from_params(PARAMS, source_bucket=SOURCE_VARIABLE, backup_bucket=BACKUP_VARIABLE),
    )


s3_backup()
