"""The DAG Params of ``s3_backup`` and ``s3_restore``, defined once, defaults from ``core.settings``.

``as_templates(params)`` turns a Params block into the keyword arguments of a factory
(``{"prefix": "{{ params.prefix }}", ...}``), so a DAG is its Params plus one factory call.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param

from s3br_provider.core.diff import Compare
from s3br_provider.core.retrieval import TIERS
from s3br_provider.core.settings import (
    ARCHIVED_SOURCE_CHOICES,
    BACKUP_STORAGE_CLASSES,
    MAX_COPY_OBJECT_MB,
    MIN_PART_MB,
    RETENTION_MODES,
    STORAGE_CLASSES,
)
from s3br_provider.core.settings import BACKUP_DEFAULTS as B
from s3br_provider.core.settings import RESTORE_DEFAULTS as R

DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True}
"""Task retries of the ready DAGs: transient S3 trouble gets two more tries, backing off."""
SOURCE_VARIABLE = "s3br_source_bucket"
BACKUP_VARIABLE = "s3br_backup_bucket"


def _shared(defaults: Any) -> dict[str, Param]:
    """Params both DAGs have, with the same meaning."""
    return {
        "prefix": Param(defaults.prefix, type="string", description="Only keys under this prefix."),
        "dry_run": Param(
            defaults.dry_run, type="boolean", description="Plan and report only; write nothing."
        ),
        "multipart_threshold_mb": Param(
            defaults.multipart_threshold_mb,
            type="integer",
            minimum=MIN_PART_MB,
            maximum=MAX_COPY_OBJECT_MB,
            description="Objects larger than this (MiB) are copied in parts (UploadPartCopy).",
        ),
        "max_partitions": Param(
            defaults.max_partitions,
            type="integer",
            minimum=1,
            description="Upper bound on mapped key partitions.",
        ),
        "cloudwatch_namespace": Param(
            defaults.cloudwatch_namespace,
            type="string",
            description="CloudWatch namespace for metrics; empty turns them off.",
        ),
        "backup_aws_conn_id": Param(
            defaults.backup_aws_conn_id, type="string", description="AWS connection for the backup bucket."
        ),
    }


def backup_params() -> dict[str, Param]:
    """The Params of ``s3_backup`` (new objects each call: a DAG run may write into them)."""
    return {
        "source_bucket": Param(
            B.source_bucket,
            type="string",
            title="Source bucket",
            description=f"Bucket to back up. Empty: the Airflow Variable {SOURCE_VARIABLE}.",
        ),
        "backup_bucket": Param(
            B.backup_bucket,
            type="string",
            title="Backup bucket",
            description=f"Bucket receiving the copies. Empty: the Airflow Variable {BACKUP_VARIABLE}.",
        ),
        **_shared(B),
        "compare": Param(
            B.compare,
            type="string",
            enum=[rule.value for rule in Compare],
            description=(
                "size_mtime: copy when missing, size differs, or the source is newer than the copy. "
                "checksum: also when ETags differ (single-part objects)."
            ),
        ),
        "tag_deleted": Param(
            B.tag_deleted, type="boolean", description="Tag backup objects whose source vanished."
        ),
        "source_aws_conn_id": Param(
            B.source_aws_conn_id, type="string", description="AWS connection for the source."
        ),
        "backup_storage_class": Param(
            B.backup_storage_class,
            type="string",
            enum=list(BACKUP_STORAGE_CLASSES),
            description="Storage class of new backup copies; a class difference alone is never a change.",
        ),
        "archived_source": Param(
            B.archived_source,
            type="string",
            enum=list(ARCHIVED_SOURCE_CHOICES),
            description=(
                "Source objects in GLACIER / DEEP_ARCHIVE the backup lacks: skip (counted and named, "
                "the run succeeds) or restore (a Bulk restore for 7 days is requested in the source; "
                "a later run copies them once readable)."
            ),
        ),
        "retention_mode": Param(
            B.retention_mode,
            type="string",
            enum=list(RETENTION_MODES),
            description="S3 Object Lock mode of each copy (needs Object Lock on the bucket); empty: none.",
        ),
        "retention_days": Param(
            B.retention_days,
            type="integer",
            minimum=0,
            description="With a retention_mode: each copy is retained until its copy time plus these days.",
        ),
        "verify": Param(
            B.verify,
            type="boolean",
            description="After copying, compare size and fingerprint of each copy.",
        ),
    }


def restore_params() -> dict[str, Param]:
    """The Params of ``s3_restore`` (new objects each call)."""
    return {
        "backup_bucket": Param(
            type="string", minLength=3, title="Backup bucket", description="Where the backup lives."
        ),
        "target_bucket": Param(
            type="string",
            minLength=3,
            title="Target bucket",
            description="New bucket to restore into; created by the run. An existing bucket must be empty.",
        ),
        **_shared(R),
        "include_deleted": Param(
            R.include_deleted,
            type="boolean",
            description="Also restore objects tagged Deleted=True (their source was deleted).",
        ),
        "restore_tier": Param(
            R.restore_tier,
            type="string",
            enum=list(TIERS),
            description=(
                "Glacier retrieval tier. GLACIER: Expedited 1-5 min, Standard 3-5 h, Bulk 5-12 h. "
                "DEEP_ARCHIVE: Standard within 12 h, Bulk within 48 h (Expedited falls back to Standard)."
            ),
        ),
        "restore_days": Param(
            R.restore_days,
            type="integer",
            minimum=1,
            description="Days a restored archive copy stays readable.",
        ),
        "as_of": Param(
            R.as_of,
            type=["null", "string"],
            description="ISO-8601 instant (e.g. 2026-01-31T12:00:00Z): restore the backup as it stood then. "
            "Needs a versioned backup bucket. Empty: the latest state.",
        ),
        "storage_class": Param(
            R.storage_class,
            type="string",
            enum=list(STORAGE_CLASSES),
            description="Storage class of restored objects.",
        ),
        "copy_versioning": Param(
            R.copy_versioning,
            type="boolean",
            description="Enable versioning on the target when the backup bucket is versioned.",
        ),
        "poll_interval_seconds": Param(
            R.poll_interval_seconds,
            type="integer",
            minimum=1,
            description="How often the sensor checks restores.",
        ),
        "restore_timeout_minutes": Param(
            R.restore_timeout_minutes,
            type="integer",
            minimum=1,
            description="Fail if archive restores take longer than this (minutes).",
        ),
        "target_aws_conn_id": Param(
            R.target_aws_conn_id, type="string", description="AWS connection for the target bucket."
        ),
    }


def as_templates(params: dict[str, Param]) -> dict[str, str]:
    """Each Param as the template that renders it: the keyword arguments of a factory."""
    return {name: f"{{{{ params.{name} }}}}" for name in params}


def param_or_variable(param: str, variable: str) -> str:
    """A template of a Param that falls back on an Airflow Variable when empty."""
    return f"{{{{ params.{param} or var.value.get('{variable}', '') }}}}"
