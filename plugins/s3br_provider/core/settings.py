"""Validation of DAG Params into typed settings, before anything touches S3."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from s3br_provider.core.diff import Compare
from s3br_provider.core.keys import RESERVED_PREFIX
from s3br_provider.core.retrieval import TIERS

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "REDUCED_REDUNDANCY",
)
MAX_S3_PARTS = 10_000
MIN_PART_MB = 5
MAX_COPY_OBJECT_MB = 5 * 1024


class SettingsError(ValueError):
    """A Param is missing, of the wrong type, or out of range; the message names it."""


@dataclass(frozen=True, slots=True)
class BackupSettings:
    source_bucket: str
    backup_bucket: str
    prefix: str = ""
    compare: str = Compare.SIZE_MTIME.value
    tag_deleted: bool = True
    dry_run: bool = False
    multipart_threshold_mb: int = MAX_COPY_OBJECT_MB
    max_partitions: int = 64
    cloudwatch_namespace: str = "BackupRecovery"
    source_aws_conn_id: str = "aws_default"
    backup_aws_conn_id: str = "aws_default"
    verify: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RestoreSettings:
    backup_bucket: str
    target_bucket: str
    prefix: str = ""
    include_deleted: bool = False
    restore_tier: str = "Standard"
    restore_days: int = 1
    as_of: str | None = None
    dry_run: bool = False
    storage_class: str = "STANDARD"
    copy_versioning: bool = False
    poll_interval_seconds: int = 300
    restore_timeout_minutes: int = 48 * 60
    max_partitions: int = 64
    multipart_threshold_mb: int = MAX_COPY_OBJECT_MB
    cloudwatch_namespace: str = "BackupRecovery"
    backup_aws_conn_id: str = "aws_default"
    target_aws_conn_id: str = "aws_default"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def as_of_epoch(self) -> float | None:
        return None if self.as_of is None else parse_instant(self.as_of, "as_of").timestamp()


def check_bucket_name(value: Any, param: str) -> str:
    """Return a valid bucket name or raise naming the Param."""
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{param} is required: give the name of an S3 bucket")
    if not _BUCKET.fullmatch(value) or ".." in value:
        raise SettingsError(f"{param} {value!r} is not a valid S3 bucket name")
    return value


def check_prefix(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SettingsError(f"prefix must be a string, got {type(value).__name__}")
    if value.startswith(RESERVED_PREFIX):
        raise SettingsError(f"prefix {value!r} lies in s3br's reserved prefix {RESERVED_PREFIX!r}")
    if len(value.encode("utf-8")) > 1024:
        raise SettingsError("prefix is longer than S3's 1024-byte key limit")
    return value


def check_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    raise SettingsError(f"{param} must be true or false, got {value!r}")


def check_int(value: Any, param: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{param} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise SettingsError(f"{param} must be {bound}, got {value}")
    return value


def check_choice(value: Any, param: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingsError(f"{param} {value!r} is not one of {', '.join(choices)}")
    return value


def check_conn_id(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{param} must name an Airflow connection")
    return value


def check_namespace(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 255 or value.startswith("AWS/"):
        raise SettingsError(f"cloudwatch_namespace {value!r} is not a usable CloudWatch namespace")
    return value


def parse_instant(value: str, param: str) -> datetime:
    """Parse an ISO-8601 instant; a value without a zone is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise SettingsError(
            f"{param} {value!r} is not an ISO-8601 instant such as 2026-01-31T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_unknown(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise SettingsError(f"unknown Param(s): {', '.join(unknown)}")


def backup_settings(params: dict[str, Any]) -> BackupSettings:
    """Validate the ``s3_backup`` Params; bucket names must already be resolved."""
    _check_unknown(params, set(BackupSettings.__dataclass_fields__))
    settings = BackupSettings(
        source_bucket=check_bucket_name(params.get("source_bucket"), "source_bucket"),
        backup_bucket=check_bucket_name(params.get("backup_bucket"), "backup_bucket"),
        prefix=check_prefix(params.get("prefix", "")),
        compare=check_choice(params.get("compare", "size_mtime"), "compare", tuple(Compare)),
        tag_deleted=check_bool(params.get("tag_deleted", True), "tag_deleted"),
        dry_run=check_bool(params.get("dry_run", False), "dry_run"),
        multipart_threshold_mb=check_int(
            params.get("multipart_threshold_mb", MAX_COPY_OBJECT_MB),
            "multipart_threshold_mb",
            MIN_PART_MB,
            MAX_COPY_OBJECT_MB,
        ),
        max_partitions=check_int(params.get("max_partitions", 64), "max_partitions", 1, 100_000),
        cloudwatch_namespace=check_namespace(params.get("cloudwatch_namespace", "BackupRecovery")),
        source_aws_conn_id=check_conn_id(
            params.get("source_aws_conn_id", "aws_default"), "source_aws_conn_id"
        ),
        backup_aws_conn_id=check_conn_id(
            params.get("backup_aws_conn_id", "aws_default"), "backup_aws_conn_id"
        ),
        verify=check_bool(params.get("verify", False), "verify"),
    )
    if settings.source_bucket == settings.backup_bucket:
        raise SettingsError(
            f"source_bucket and backup_bucket are both {settings.source_bucket!r}: "
            "a bucket cannot be its own backup"
        )
    return settings


def restore_settings(params: dict[str, Any]) -> RestoreSettings:
    """Validate the ``s3_restore`` Params."""
    _check_unknown(params, set(RestoreSettings.__dataclass_fields__))
    as_of = params.get("as_of")
    if isinstance(as_of, str) and not as_of.strip():
        as_of = None  # the UI form sends an empty field as ""
    if as_of is not None:
        if not isinstance(as_of, str):
            raise SettingsError(f"as_of {as_of!r} is not an ISO-8601 instant")
        instant = parse_instant(as_of, "as_of").astimezone(UTC)
        if instant > datetime.now(UTC):
            raise SettingsError(f"as_of {as_of!r} is in the future")
        as_of = instant.isoformat()
    settings = RestoreSettings(
        backup_bucket=check_bucket_name(params.get("backup_bucket"), "backup_bucket"),
        target_bucket=check_bucket_name(params.get("target_bucket"), "target_bucket"),
        prefix=check_prefix(params.get("prefix", "")),
        include_deleted=check_bool(params.get("include_deleted", False), "include_deleted"),
        restore_tier=check_choice(params.get("restore_tier", "Standard"), "restore_tier", TIERS),
        restore_days=check_int(params.get("restore_days", 1), "restore_days", 1, 30_000),
        as_of=as_of,
        dry_run=check_bool(params.get("dry_run", False), "dry_run"),
        storage_class=check_choice(params.get("storage_class", "STANDARD"), "storage_class", STORAGE_CLASSES),
        copy_versioning=check_bool(params.get("copy_versioning", False), "copy_versioning"),
        poll_interval_seconds=check_int(
            params.get("poll_interval_seconds", 300), "poll_interval_seconds", 1, 86_400
        ),
        restore_timeout_minutes=check_int(
            params.get("restore_timeout_minutes", 48 * 60), "restore_timeout_minutes", 1, 60 * 24 * 30
        ),
        max_partitions=check_int(params.get("max_partitions", 64), "max_partitions", 1, 100_000),
        multipart_threshold_mb=check_int(
            params.get("multipart_threshold_mb", MAX_COPY_OBJECT_MB),
            "multipart_threshold_mb",
            MIN_PART_MB,
            MAX_COPY_OBJECT_MB,
        ),
        cloudwatch_namespace=check_namespace(params.get("cloudwatch_namespace", "BackupRecovery")),
        backup_aws_conn_id=check_conn_id(
            params.get("backup_aws_conn_id", "aws_default"), "backup_aws_conn_id"
        ),
        target_aws_conn_id=check_conn_id(
            params.get("target_aws_conn_id", "aws_default"), "target_aws_conn_id"
        ),
    )
    if settings.backup_bucket == settings.target_bucket:
        raise SettingsError(
            f"target_bucket is the backup bucket {settings.backup_bucket!r}: restore into a new bucket"
        )
    return settings
