"""``s3_restore_drill``: every week, prove that a backup restores, on a random sample."""

from __future__ import annotations

from airflow.sdk import dag

from s3br_provider.params import BACKUP_VARIABLE, DRILL_VARIABLE, drill_params, from_params, ready_dag
from s3br_provider.task_groups import drill_group

DOC = """
### S3 restore drill

Restores a random sample of `backup_bucket` (`sample_size` objects, drawn from its live objects
by partition, seeded by the run id) under `s3br-drill/<run_id>/` in `drill_bucket`, and checks
each restored object's bytes, Content-Type, user metadata and tags against the backup, and
against `source_bucket` where the source object has not changed since its backup. Any mismatch
fails the run naming the keys. The report (`_s3br/runs/s3_restore_drill/<run_id>/report.json`
in the backup bucket) gives sampled, verified, mismatched, seconds, bytes per second and the
estimated time of a full restore. The drill never deletes: `validate` requires a lifecycle rule
expiring `s3br-drill/` in the drill bucket (or adds one, with `drill_expiration_days`).

Buckets left empty are read from the Airflow Variables `s3br_backup_bucket` and
`s3br_drill_bucket`.

`validate -> plan_partitions -> partition[p](sample) -> choose -> request_restore ->
wait_for_restore -> restore_and_verify`
"""

PARAMS = drill_params()


@dag(
    dag_id="s3_restore_drill",
    description="Weekly proof of recoverability: restore a random sample of a backup and check it.",
    tags=["s3br", "restore", "drill"],
    params=PARAMS,
    doc_md=DOC,
    **ready_dag("@weekly"),
)
def s3_restore_drill() -> None:
    drill_group(
        group_id="drill",
        prefix_group_id=False,
        **from_params(PARAMS, backup_bucket=BACKUP_VARIABLE, drill_bucket=DRILL_VARIABLE),
    )


s3_restore_drill()
