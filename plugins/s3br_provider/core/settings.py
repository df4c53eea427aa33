"""Checks of s3br's options (DAG Params, operator arguments), before anything touches S3.

Operators render their templated arguments, then check each by its name's rule here, so a
rule is written once whichever operator or DAG uses it."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

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
"""Storage classes a restore writes (every one readable at once)."""
BACKUP_STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
)
"""Storage classes of new backup copies (DESIGN.md); a class difference alone is never a change."""
RETENTION_MODES = ("", "GOVERNANCE", "COMPLIANCE")
"""S3 Object Lock retention modes of backup copies; "" writes copies without retention."""
ARCHIVED_SOURCE_CHOICES = ("skip", "restore")
"""What a backup does with source objects in GLACIER / DEEP_ARCHIVE that it has to copy."""
LISTING_SOURCES = ("list", "inventory")
"""How a backup learns the source's keys: ListObjectsV2, or the source's latest S3 Inventory report."""
ARCHIVED_SOURCE_RESTORE = {"tier": "Bulk", "days": 7}
"""The restore ``archived_source="restore"`` requests in the source: cheapest tier, a week to copy."""
COPY_STORAGE_CLASSES = tuple(dict.fromkeys(STORAGE_CLASSES + BACKUP_STORAGE_CLASSES))
MAX_S3_PARTS = 10_000
MIN_PART_MB = 5
MAX_COPY_OBJECT_MB = 5 * 1024
TARGET_MODES = ("new_bucket", "missing_only")
"""Where a restore writes: a new (or empty) bucket, or an existing one, only the keys it lacks."""
MAX_RESTORE_KEYS = 1000
"""Keys a restore of named keys (``keys``) may name at most."""


class SettingsError(ValueError):
    """A Param is missing, of the wrong type, or out of range; the message names it."""


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """The options of a backup, each default written once: the DAG Params, the factory's
    keyword arguments and the operators' defaults all read them from ``BACKUP_DEFAULTS``."""

    source_bucket: str = ""
    backup_bucket: str = ""
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
    backup_storage_class: str = "STANDARD"
    archived_source: str = "skip"
    retention_mode: str = ""
    retention_days: int = 0
    backup_kms_key_id: str = ""
    listing_source: str = "list"
    inventory_uri: str = ""
    inventory_max_age_hours: int = 48

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RestoreSettings:
    """The options of a restore; ``RESTORE_DEFAULTS`` holds each default once."""

    backup_bucket: str = ""
    target_bucket: str = ""
    prefix: str = ""
    keys: list[str] = field(default_factory=list)
    target_mode: str = TARGET_MODES[0]
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
        return as_of_epoch(self.as_of)


@dataclass(frozen=True, slots=True)
class DrillSettings:
    """The options of a restore drill (``s3_restore_drill``); ``DRILL_DEFAULTS`` holds each default."""

    backup_bucket: str = ""
    source_bucket: str = ""
    drill_bucket: str = ""
    sample_size: int = 100
    include_archived: bool = False
    drill_expiration_days: int = 0
    poll_interval_seconds: int = 300
    restore_timeout_minutes: int = 48 * 60
    backup_aws_conn_id: str = "aws_default"
    source_aws_conn_id: str = "aws_default"
    drill_aws_conn_id: str = "aws_default"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BackupArguments(TypedDict, total=False):
    """The options of a backup as keyword arguments (``backup_group``, ``S3BackupValidateOperator``);
    each may also be a template string. Defaults: ``BACKUP_DEFAULTS``."""

    prefix: str
    compare: str
    tag_deleted: bool | str
    dry_run: bool | str
    multipart_threshold_mb: int | str
    max_partitions: int | str
    cloudwatch_namespace: str
    source_aws_conn_id: str
    backup_aws_conn_id: str
    backup_storage_class: str
    archived_source: str
    retention_mode: str
    retention_days: int | str
    backup_kms_key_id: str
    listing_source: str
    inventory_uri: str
    inventory_max_age_hours: int | str


class RestoreArguments(TypedDict, total=False):
    """The options of a restore as keyword arguments (``restore_group``,
    ``S3RestoreValidateOperator``). Defaults: ``RESTORE_DEFAULTS``."""

    prefix: str
    keys: list[str] | str
    target_mode: str
    include_deleted: bool | str
    restore_tier: str
    restore_days: int | str
    as_of: str | None
    dry_run: bool | str
    storage_class: str
    copy_versioning: bool | str
    poll_interval_seconds: int | str
    restore_timeout_minutes: int | str
    max_partitions: int | str
    multipart_threshold_mb: int | str
    cloudwatch_namespace: str
    backup_aws_conn_id: str
    target_aws_conn_id: str


class DrillArguments(TypedDict, total=False):
    """The options of a drill as keyword arguments (``drill_group``, ``S3DrillValidateOperator``).
    Defaults: ``DRILL_DEFAULTS``."""

    source_bucket: str
    sample_size: int | str
    include_archived: bool | str
    drill_expiration_days: int | str
    poll_interval_seconds: int | str
    restore_timeout_minutes: int | str
    backup_aws_conn_id: str
    source_aws_conn_id: str
    drill_aws_conn_id: str


BACKUP_DEFAULTS = BackupSettings()
RESTORE_DEFAULTS = RestoreSettings()
DRILL_DEFAULTS = DrillSettings()
MAX_DRILL_SAMPLE = 100_000


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


def check_keys(value: Any, param: str = "keys") -> list[str]:
    """Return the named keys, sorted and without repeats; a rendered template (the text of a
    list) counts as one. Empty (``[]``, ``""``, None): no keys named."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None"):
            return []
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise SettingsError(f"{param} must be a list of keys, got {value!r:.200}") from None
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(k, str) and k for k in value):
        raise SettingsError(f"{param} must be a list of non-empty keys, got {value!r:.200}")
    keys = sorted(set(value))
    if len(keys) > MAX_RESTORE_KEYS:
        raise SettingsError(
            f"{param} names {len(keys)} keys, more than {MAX_RESTORE_KEYS:,}: restore a prefix "
            "instead, or split the keys over several runs"
        )
    reserved = [key for key in keys if key.startswith(RESERVED_PREFIX)]
    if reserved:
        raise SettingsError(
            f"{param} names keys in s3br's reserved prefix {RESERVED_PREFIX!r}: {reserved[:5]}"
        )
    return keys


def check_bool(value: Any, param: str) -> bool:
    """Return a boolean; a rendered template (``"True"``, ``"false"``) counts as one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SettingsError(f"{param} must be true or false, got {value!r}")


def check_int(value: Any, param: str, low: int, high: int | None = None) -> int:
    """Return a whole number within bounds; a rendered template (``"64"``) counts as one."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{param} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise SettingsError(f"{param} must be {bound}, got {value}")
    return value


def check_count(value: Any, param: str) -> int | None:
    """An optional count (progress totals): None, or a rendered empty/None, means unknown."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return check_int(value, param, 0)


def check_retention(mode: str, days: int) -> None:
    """A retention mode needs at least one day, and days need a mode."""
    if mode and days < 1:
        raise SettingsError(f"retention_mode {mode} needs retention_days of at least 1, got {days}")
    if days and not mode:
        raise SettingsError(f"retention_days {days} needs a retention_mode (GOVERNANCE or COMPLIANCE)")


def check_choice(value: Any, param: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingsError(f"{param} {value!r} is not one of {', '.join(choices)}")
    return value


def check_conn_id(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{param} must name an Airflow connection")
    return value


_KMS_KEY = re.compile(r"^(arn:[\w-]+:kms:[\w-]+:\d{12}:(key|alias)/[\w/-]+|alias/[\w/-]+|[\w-]+)$")


def check_kms_key_id(value: Any, param: str) -> str:
    """``""`` or a KMS key as S3 takes it: a key ID, a key ARN, an alias name or an alias ARN."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 2048 or not _KMS_KEY.match(value):
        raise SettingsError(
            f"{param} {value!r} is no KMS key: give its key ID, key ARN, alias/<name> or alias ARN"
        )
    return value


_INVENTORY_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<folder>.+/)$")


def check_inventory_uri(value: Any, param: str = "inventory_uri") -> str:
    """``""`` or the S3 URI of an inventory configuration's folder for one source bucket and
    configuration id (``s3://bucket/prefix/source-bucket/config-id/``); a missing final ``/``
    is added."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return ""
    if not isinstance(value, str):
        raise SettingsError(f"{param} must be a string, got {type(value).__name__}")
    uri = value.strip()
    uri = uri if uri.endswith("/") else uri + "/"
    match = _INVENTORY_URI.fullmatch(uri)
    if match is None or "//" in match["folder"] or len(match["folder"].strip("/").split("/")) < 2:
        raise SettingsError(
            f"{param} {value!r} is not the folder of an S3 Inventory configuration: give "
            "s3://<destination-bucket>/<prefix>/<source-bucket>/<config-id>/"
        )
    return uri


def check_inventory(settings: BackupSettings) -> None:
    """``listing_source="inventory"`` needs ``inventory_uri``, naming the source bucket."""
    if settings.listing_source != "inventory":
        return
    if not settings.inventory_uri:
        raise SettingsError(
            'listing_source "inventory" needs inventory_uri: the S3 Inventory destination folder '
            "of the source, s3://<destination-bucket>/<prefix>/<source-bucket>/<config-id>/"
        )
    source = settings.inventory_uri.rstrip("/").split("/")[-2]
    if source != settings.source_bucket:
        raise SettingsError(
            f"inventory_uri {settings.inventory_uri!r} is the folder of bucket {source!r}'s "
            f"inventory, not of source_bucket {settings.source_bucket!r}"
        )


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


def check_as_of(value: Any) -> str | None:
    """Return ``as_of`` as an ISO-8601 UTC instant, or None (also for an empty form field)."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None  # the UI form sends an empty field as "", a rendered None is "None"
    if not isinstance(value, str):
        raise SettingsError(f"as_of {value!r} is not an ISO-8601 instant")
    instant = parse_instant(value, "as_of").astimezone(UTC)
    if instant > datetime.now(UTC):
        raise SettingsError(f"as_of {value!r} is in the future")
    return instant.isoformat()


def as_of_epoch(as_of: str | None) -> float | None:
    """Seconds since the epoch of a checked ``as_of``, or None."""
    return None if as_of is None else parse_instant(as_of, "as_of").timestamp()


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    return lambda value, name: check_choice(value, name, choices)


def _bounded(low: int, high: int) -> Callable[[Any, str], int]:
    return lambda value, name: check_int(value, name, low, high)


RULES: dict[str, Callable[[Any, str], Any]] = {
    "source_bucket": check_bucket_name,
    "backup_bucket": check_bucket_name,
    "target_bucket": check_bucket_name,
    "drill_bucket": check_bucket_name,
    "bucket": check_bucket_name,
    "stats_bucket": check_bucket_name,
    "prefix": lambda value, name: check_prefix(value),
    "keys": check_keys,
    "target_mode": _choice(TARGET_MODES),
    "compare": _choice(tuple(Compare)),
    "tag_deleted": check_bool,
    "dry_run": check_bool,
    "verify": check_bool,
    "include_deleted": check_bool,
    "copy_versioning": check_bool,
    "multipart_threshold_mb": _bounded(MIN_PART_MB, MAX_COPY_OBJECT_MB),
    "max_partitions": _bounded(1, 100_000),
    "cloudwatch_namespace": lambda value, name: check_namespace(value),
    "source_aws_conn_id": check_conn_id,
    "backup_aws_conn_id": check_conn_id,
    "target_aws_conn_id": check_conn_id,
    "aws_conn_id": check_conn_id,
    "restore_tier": _choice(TIERS),
    "restore_days": _bounded(1, 30_000),
    "as_of": lambda value, name: check_as_of(value),
    "storage_class": _choice(COPY_STORAGE_CLASSES),
    "backup_storage_class": _choice(BACKUP_STORAGE_CLASSES),
    "archived_source": _choice(ARCHIVED_SOURCE_CHOICES),
    "listing_source": _choice(LISTING_SOURCES),
    "inventory_uri": check_inventory_uri,
    "inventory_max_age_hours": _bounded(1, 24 * 366),
    "retention_mode": _choice(RETENTION_MODES),
    "retention_days": _bounded(0, 36_500),
    "backup_kms_key_id": check_kms_key_id,
    "kms_key_id": check_kms_key_id,
    "poll_interval_seconds": _bounded(1, 86_400),
    "sample_size": _bounded(1, MAX_DRILL_SAMPLE),
    "include_archived": check_bool,
    "drill_expiration_days": _bounded(0, 36_500),
    "drill_aws_conn_id": check_conn_id,
    "restore_timeout_minutes": _bounded(1, 60 * 24 * 30),
    "verify_copies": check_bool,
    "expected": lambda value, name: check_count(value, name),
}
"""One rule per argument name, shared by every operator that takes that argument."""


def check_argument(name: str, value: Any) -> Any:
    """Check one argument by its name's rule; return it converted (``"64"`` -> 64)."""
    return RULES[name](value, name)


def _checked(cls: type, params: dict[str, Any], optional: tuple[str, ...] = ()) -> Any:
    """Check every option of ``cls`` by its rule; an ``optional`` one may be empty (``""``)."""
    unknown = sorted(set(params) - set(cls.__dataclass_fields__))
    if unknown:
        raise SettingsError(f"unknown Param(s): {', '.join(unknown)}")
    defaults = cls()
    values = {}
    for name in cls.__dataclass_fields__:
        value = params.get(name, getattr(defaults, name))
        values[name] = "" if name in optional and value in ("", None) else check_argument(name, value)
    return cls(**values)


def backup_settings(params: dict[str, Any]) -> BackupSettings:
    """Validate the options of a backup; bucket names must already be resolved."""
    settings = _checked(BackupSettings, params)
    if settings.source_bucket == settings.backup_bucket:
        raise SettingsError(
            f"source_bucket and backup_bucket are both {settings.source_bucket!r}: "
            "a bucket cannot be its own backup"
        )
    check_retention(settings.retention_mode, settings.retention_days)
    check_inventory(settings)
    return settings


def restore_settings(params: dict[str, Any]) -> RestoreSettings:
    """Validate the options of a restore."""
    settings = _checked(RestoreSettings, params)
    if settings.backup_bucket == settings.target_bucket:
        raise SettingsError(
            f"target_bucket is the backup bucket {settings.backup_bucket!r}: restore into a new bucket"
        )
    check_choice(settings.storage_class, "storage_class", STORAGE_CLASSES)
    outside = [key for key in settings.keys if not key.startswith(settings.prefix)]
    if outside:
        raise SettingsError(f"keys not under prefix {settings.prefix!r}: {outside[:5]}")
    return settings


def drill_settings(params: dict[str, Any]) -> DrillSettings:
    """Validate the options of a restore drill; ``source_bucket`` may be empty (no source check)."""
    settings = _checked(DrillSettings, params, optional=("source_bucket",))
    buckets = {"backup_bucket": settings.backup_bucket, "source_bucket": settings.source_bucket}
    for param, bucket in buckets.items():
        if bucket == settings.drill_bucket:
            raise SettingsError(
                f"drill_bucket is the {param.split('_')[0]} bucket {bucket!r}: a drill writes into a "
                "scratch bucket of its own"
            )
    if settings.source_bucket == settings.backup_bucket:
        raise SettingsError(f"source_bucket and backup_bucket are both {settings.backup_bucket!r}")
    return settings
