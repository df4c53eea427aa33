"""The DAG Params of ``s3_backup`` and ``s3_restore``, defined once, defaults from ``core.settings``.

``as_templates(params)`` turns a Params block into the keyword arguments of a factory
(``{"prefix": "{{ params.prefix }}", ...}``), so a DAG is its Params plus one factory call.
"""

from __future__ import annotations

from copy import copy
from dataclasses import fields
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param

from s3br_provider.core.diff import Compare
from s3br_provider.core.retrieval import TIERS
from s3br_provider.core.settings import (
    ARCHIVED_SOURCE_CHOICES,
    BACKUP_STORAGE_CLASSES,
    DRILL_DEFAULTS,
    LISTING_SOURCES,
    MAX_COPY_OBJECT_MB,
    MAX_DRILL_SAMPLE,
    MAX_RESTORE_KEYS,
    MIN_PART_MB,
    RETENTION_MODES,
    STORAGE_CLASSES,
    TARGET_MODES,
)
from s3br_provider.core.settings import BACKUP_DEFAULTS as B
from s3br_provider.core.settings import RESTORE_DEFAULTS as R

DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True}
"""Task retries of the ready DAGs: transient S3 trouble gets two more tries, backing off."""
SOURCE_VARIABLE = "s3br_source_bucket"
BACKUP_VARIABLE = "s3br_backup_bucket"
DRILL_VARIABLE = "s3br_drill_bucket"


def ready_dag(schedule: Any) -> dict[str, Any]:
    """How the ready DAGs run (``@dag(..., **ready_dag("@daily"))``): on ``schedule``, one run
    at a time, a missed run not caught up (the next one does everything that changed since)."""
    return {
        "schedule": schedule,
        "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": DEFAULT_ARGS,
    }


DAILY_BACKUP = ready_dag("@daily")


def _text(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


def _choice(choices: Any, description: str) -> dict[str, Any]:
    return {"type": "string", "enum": [str(choice) for choice in choices], "description": description}


def _flag(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _whole(minimum: int, description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "description": description, **schema}


SCHEMAS: dict[str, dict[str, Any]] = {
    "source_bucket": _text(
        f"Bucket to back up. Empty: the Airflow Variable {SOURCE_VARIABLE}.", title="Source bucket"
    ),
    "backup_bucket": _text(
        f"Bucket receiving the copies. Empty: the Airflow Variable {BACKUP_VARIABLE}.", title="Backup bucket"
    ),
    "target_bucket": _text(
        "New bucket to restore into; created by the run. An existing bucket must be empty.",
        title="Target bucket",
        minLength=3,
    ),
    "prefix": _text("Only keys under this prefix."),
    "compare": _choice(
        Compare,
        "size_mtime: copy when missing, size differs, or the source is newer than the copy. "
        "checksum: also when content fingerprints differ (full-object checksums, else "
        "single-part ETags), so a copy changed in place is caught.",
    ),
    "tag_deleted": _flag("Tag backup objects whose source vanished."),
    "dry_run": _flag("Plan and report only; write nothing."),
    "multipart_threshold_mb": _whole(
        MIN_PART_MB,
        "Objects larger than this (MiB) are copied in parts (UploadPartCopy).",
        maximum=MAX_COPY_OBJECT_MB,
    ),
    "max_partitions": _whole(1, "Upper bound on mapped key partitions."),
    "cloudwatch_namespace": _text("CloudWatch namespace for metrics; empty turns them off."),
    "source_aws_conn_id": _text("AWS connection for the source."),
    "backup_aws_conn_id": _text("AWS connection for the backup bucket."),
    "target_aws_conn_id": _text("AWS connection for the target bucket."),
    "verify": _flag("After copying, compare size and fingerprint of each copy."),
    "backup_storage_class": _choice(
        BACKUP_STORAGE_CLASSES,
        "Storage class of new backup copies; a class difference alone is never a change.",
    ),
    "archived_source": _choice(
        ARCHIVED_SOURCE_CHOICES,
        "Source objects in GLACIER / DEEP_ARCHIVE the backup lacks: skip (counted and named, the run "
        "succeeds) or restore (a Bulk restore for 7 days is requested in the source; a later run "
        "copies them once readable).",
    ),
    "retention_mode": _choice(
        RETENTION_MODES, "S3 Object Lock mode of each copy (needs Object Lock on the bucket); empty: none."
    ),
    "retention_days": _whole(
        0, "With a retention_mode: each copy is retained until its copy time plus these days."
    ),
    "backup_kms_key_id": _text(
        "Encrypt new copies with SSE-KMS under this key of the backup account (key ID, ARN or "
        "alias); empty: the backup bucket's default encryption."
    ),
    "listing_source": _choice(
        LISTING_SOURCES,
        "list: list the source (ListObjectsV2). inventory: read the source's latest S3 Inventory "
        "report under inventory_uri instead (no LIST on the source); objects written after its "
        "snapshot are caught by the next run or the continuous backup.",
    ),
    "inventory_uri": _text(
        "With listing_source inventory: the inventory's destination folder for this source and "
        "configuration, s3://<destination-bucket>/<prefix>/<source-bucket>/<config-id>/."
    ),
    "inventory_max_age_hours": _whole(
        1, "With listing_source inventory: validate fails when the latest report is older (hours)."
    ),
    "keys": {
        "type": "array",
        "items": {"type": "string"},
        "description": f"Restore only these keys (at most {MAX_RESTORE_KEYS:,}, each in the backup, "
        "one per line). Empty: every key under prefix.",
    },
    "target_mode": _choice(
        TARGET_MODES,
        "new_bucket: the target must be new or empty. missing_only: the target exists (the source "
        "itself, say) and only the keys it lacks are written; an existing key is never overwritten.",
    ),
    "include_deleted": _flag("Also restore objects tagged Deleted=True (their source was deleted)."),
    "restore_tier": _choice(
        TIERS,
        "Glacier retrieval tier. GLACIER: Expedited 1-5 min, Standard 3-5 h, Bulk 5-12 h. "
        "DEEP_ARCHIVE: Standard within 12 h, Bulk within 48 h (Expedited falls back to Standard).",
    ),
    "restore_days": _whole(1, "Days a restored archive copy stays readable."),
    "as_of": {
        "type": ["null", "string"],
        "description": "ISO-8601 instant (e.g. 2026-01-31T12:00:00Z): restore the backup as it stood "
        "then. Needs a versioned backup bucket. Empty: the latest state.",
    },
    "storage_class": _choice(STORAGE_CLASSES, "Storage class of restored objects."),
    "copy_versioning": _flag("Enable versioning on the target when the backup bucket is versioned."),
    "poll_interval_seconds": _whole(1, "How often the sensor checks restores."),
    "restore_timeout_minutes": _whole(1, "Fail if archive restores take longer than this (minutes)."),
    "drill_bucket": _text(
        "Scratch bucket the drill restores into, under s3br-drill/<run_id>/; it never deletes there. "
        f"Empty: the Airflow Variable {DRILL_VARIABLE}.",
        title="Drill bucket",
    ),
    "sample_size": _whole(
        1, "Objects the drill restores and checks, drawn at random from the backup.", maximum=MAX_DRILL_SAMPLE
    ),
    "include_archived": _flag(
        "Also sample objects in GLACIER / DEEP_ARCHIVE (they are restored first: hours); "
        "otherwise they are skipped and counted."
    ),
    "drill_expiration_days": _whole(
        0,
        "0: validate requires a lifecycle rule expiring s3br-drill/ in the drill bucket. "
        "N: validate adds one (objects expire after N days) if there is none.",
    ),
    "drill_aws_conn_id": _text("AWS connection for the drill bucket."),
}
"""The JSON schema of every Param by name; a name means the same in each DAG that has it."""


def _params(defaults: Any, **changes: dict[str, Any]) -> dict[str, Param]:
    """One Param per option of ``defaults``, in its order; ``changes`` adjust a Param's schema
    for this DAG, and ``"required": True`` leaves it without a default."""
    params = {}
    for field in fields(defaults):
        schema = SCHEMAS[field.name] | changes.get(field.name, {})
        if schema.pop("required", False):
            params[field.name] = Param(**schema)
        else:
            params[field.name] = Param(copy(getattr(defaults, field.name)), **schema)
    return params


def backup_params() -> dict[str, Param]:
    """The Params of ``s3_backup`` (new objects each call: a DAG run may write into them)."""
    return _params(B)


def restore_params() -> dict[str, Param]:
    """The Params of ``s3_restore`` (new objects each call); both buckets are required."""
    return _params(
        R,
        backup_bucket={"required": True, "minLength": 3, "description": "Where the backup lives."},
        target_bucket={"required": True},
    )


def drill_params() -> dict[str, Param]:
    """The Params of ``s3_restore_drill`` (new objects each call). A scheduled DAG needs a
    default for every Param: empty buckets fall back on the Airflow Variables."""
    return _params(
        DRILL_DEFAULTS,
        backup_bucket={
            "description": f"Where the backup lives. Empty: the Airflow Variable {BACKUP_VARIABLE}."
        },
        source_bucket={
            "description": "The backed-up bucket: restored objects it still holds unchanged since their "
            "backup are checked against it too. Empty: check against the backup only."
        },
    )


def as_templates(params: dict[str, Param]) -> dict[str, str]:
    """Each Param as the template that renders it: the keyword arguments of a factory."""
    return {name: f"{{{{ {_param_expression(name)} }}}}" for name in params}


def _param_expression(name: str) -> str:
    """``params.name``, or ``params['name']`` where the name is a mapping's method (``keys``)."""
    return f"params[{name!r}]" if hasattr(dict, name) else f"params.{name}"


def from_params(params: dict[str, Param], **variables: str) -> dict[str, Any]:
    """What a ready DAG passes its factory: every Param as its template (``as_templates``), a
    bucket named in ``variables`` falling back on that Airflow Variable (and the Variable named
    for validate's error), and the Param names as ``known_params``."""
    keywords: dict[str, Any] = as_templates(params)
    for param, variable in variables.items():
        keywords[param] = param_or_variable(param, variable)
        keywords[f"{param}_variable"] = variable
    return keywords | {"known_params": list(params)}


def param_or_variable(param: str, variable: str) -> str:
    """A template of a Param that falls back on an Airflow Variable when empty."""
    return f"{{{{ params.{param} or var.value.get('{variable}', '') }}}}"
