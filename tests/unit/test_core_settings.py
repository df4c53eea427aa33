"""Validation of the DAG Params, before anything touches S3."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from s3br_provider.core.settings import (
    BACKUP_DEFAULTS,
    RESTORE_DEFAULTS,
    BackupSettings,
    RestoreSettings,
    SettingsError,
    backup_settings,
    check_argument,
    restore_settings,
)

BACKUP = {"source_bucket": "source-bucket", "backup_bucket": "backup-bucket"}
RESTORE = {"backup_bucket": "backup-bucket", "target_bucket": "restore-2024.06"}
MISSING = object()


def with_params(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    params = {**base, **changes}
    return {name: value for name, value in params.items() if value is not MISSING}


def test_backup_defaults() -> None:
    settings = backup_settings(BACKUP)
    assert settings == BackupSettings(**BACKUP)
    assert settings.to_dict() == {
        **BACKUP,
        "prefix": "",
        "compare": "size_mtime",
        "tag_deleted": True,
        "dry_run": False,
        "multipart_threshold_mb": 5120,
        "max_partitions": 64,
        "cloudwatch_namespace": "BackupRecovery",
        "source_aws_conn_id": "aws_default",
        "backup_aws_conn_id": "aws_default",
        "verify": False,
        "backup_storage_class": "STANDARD",
        "archived_source": "skip",
        "retention_mode": "",
        "retention_days": 0,
        "backup_kms_key_id": "",
        "listing_source": "list",
        "inventory_uri": "",
        "inventory_max_age_hours": 48,
    }


def test_restore_defaults() -> None:
    settings = restore_settings(RESTORE)
    assert settings == RestoreSettings(**RESTORE)
    assert (settings.prefix, settings.include_deleted, settings.restore_tier, settings.restore_days) == (
        "",
        False,
        "Standard",
        1,
    )
    assert (settings.as_of, settings.as_of_epoch, settings.dry_run) == (None, None, False)
    assert (settings.cloudwatch_namespace, settings.backup_aws_conn_id, settings.target_aws_conn_id) == (
        "BackupRecovery",
        "aws_default",
        "aws_default",
    )


def test_backup_accepts_every_param() -> None:
    params = {
        **BACKUP,
        "prefix": "photos/é 😀/",
        "compare": "checksum",
        "tag_deleted": False,
        "dry_run": True,
        "multipart_threshold_mb": 5,
        "max_partitions": 1,
        "cloudwatch_namespace": "",
        "source_aws_conn_id": "aws_source",
        "backup_aws_conn_id": "aws_backup",
        "verify": True,
        "backup_storage_class": "DEEP_ARCHIVE",
        "archived_source": "restore",
        "retention_mode": "COMPLIANCE",
        "retention_days": 3650,
        "backup_kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "listing_source": "inventory",
        "inventory_uri": f"s3://inventories/daily/{BACKUP['source_bucket']}/s3br/",
        "inventory_max_age_hours": 24,
    }
    assert backup_settings(params).to_dict() == params


def test_none_prefix_and_namespace_mean_empty() -> None:
    settings = backup_settings({**BACKUP, "prefix": None, "cloudwatch_namespace": None})
    assert (settings.prefix, settings.cloudwatch_namespace) == ("", "")


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"source_bucket": MISSING}, "source_bucket"),
        ({"source_bucket": ""}, "source_bucket"),
        ({"source_bucket": None}, "source_bucket"),
        ({"backup_bucket": MISSING}, "backup_bucket"),
        ({"source_bucket": "Source_Bucket"}, "source_bucket"),
        ({"source_bucket": "ab"}, "source_bucket"),
        ({"source_bucket": "a" * 64}, "source_bucket"),
        ({"source_bucket": "-bucket"}, "source_bucket"),
        ({"backup_bucket": "bucket-"}, "backup_bucket"),
        ({"backup_bucket": "my..bucket"}, "backup_bucket"),
        ({"backup_bucket": "s3://backup-bucket"}, "backup_bucket"),
        ({"backup_bucket": 42}, "backup_bucket"),
        ({"backup_bucket": "source-bucket"}, "source_bucket"),
        ({"prefix": "_s3br/"}, "prefix"),
        ({"prefix": "_s3br/runs/x"}, "prefix"),
        ({"prefix": 5}, "prefix"),
        ({"prefix": "x" * 1025}, "prefix"),
        ({"compare": "md5"}, "compare"),
        ({"compare": "SIZE_MTIME"}, "compare"),
        ({"tag_deleted": "yes"}, "tag_deleted"),
        ({"dry_run": "maybe"}, "dry_run"),
        ({"dry_run": 1}, "dry_run"),
        ({"verify": None}, "verify"),
        ({"multipart_threshold_mb": 4}, "multipart_threshold_mb"),
        ({"multipart_threshold_mb": 6000}, "multipart_threshold_mb"),
        ({"multipart_threshold_mb": "100 MiB"}, "multipart_threshold_mb"),
        ({"multipart_threshold_mb": 100.0}, "multipart_threshold_mb"),
        ({"max_partitions": 0}, "max_partitions"),
        ({"max_partitions": -1}, "max_partitions"),
        ({"max_partitions": True}, "max_partitions"),
        ({"cloudwatch_namespace": "AWS/S3"}, "cloudwatch_namespace"),
        ({"cloudwatch_namespace": "n" * 256}, "cloudwatch_namespace"),
        ({"source_aws_conn_id": ""}, "source_aws_conn_id"),
        ({"backup_aws_conn_id": None}, "backup_aws_conn_id"),
        ({"bucket": "x"}, "bucket"),
        ({"restore_tier": "Standard"}, "restore_tier"),
    ],
)
def test_bad_backup_params_name_the_param(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(SettingsError, match=rf"\b{re.escape(param)}\b"):
        backup_settings(with_params(BACKUP, **changes))


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"backup_bucket": MISSING}, "backup_bucket"),
        ({"target_bucket": MISSING}, "target_bucket"),
        ({"target_bucket": "Target"}, "target_bucket"),
        ({"target_bucket": "backup-bucket"}, "target_bucket"),
        ({"prefix": "_s3br/stats/"}, "prefix"),
        ({"include_deleted": "yes"}, "include_deleted"),
        ({"restore_tier": "Fast"}, "restore_tier"),
        ({"restore_tier": "standard"}, "restore_tier"),
        ({"restore_days": 0}, "restore_days"),
        ({"restore_days": "7.5"}, "restore_days"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"as_of": "2024-13-01T00:00:00Z"}, "as_of"),
        ({"as_of": "2999-01-01T00:00:00Z"}, "as_of"),
        ({"as_of": 1717243200}, "as_of"),
        ({"dry_run": "no"}, "dry_run"),
        ({"storage_class": "GLACIER"}, "storage_class"),
        ({"storage_class": "DEEP_ARCHIVE"}, "storage_class"),
        ({"copy_versioning": 0}, "copy_versioning"),
        ({"poll_interval_seconds": 0}, "poll_interval_seconds"),
        ({"restore_timeout_minutes": 0}, "restore_timeout_minutes"),
        ({"restore_timeout_minutes": "2h"}, "restore_timeout_minutes"),
        ({"max_partitions": 0}, "max_partitions"),
        ({"multipart_threshold_mb": 4}, "multipart_threshold_mb"),
        ({"cloudwatch_namespace": "AWS/Backup"}, "cloudwatch_namespace"),
        ({"target_aws_conn_id": "  "}, "target_aws_conn_id"),
        ({"tier": "Bulk"}, "tier"),
        ({"compare": "checksum"}, "compare"),
    ],
)
def test_bad_restore_params_name_the_param(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(SettingsError, match=rf"\b{re.escape(param)}\b"):
        restore_settings(with_params(RESTORE, **changes))


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize(
    ("as_of", "normalised"),
    [
        ("2024-06-01T12:00:00", "2024-06-01T12:00:00+00:00"),
        ("2024-06-01T12:00:00Z", "2024-06-01T12:00:00+00:00"),
        ("2024-06-01T14:00:00+02:00", "2024-06-01T12:00:00+00:00"),
        ("2024-06-01T07:30:00.250-04:30", "2024-06-01T12:00:00.250000+00:00"),
        ("2024-06-01", "2024-06-01T00:00:00+00:00"),
    ],
)
def test_as_of_is_normalised_to_utc(as_of: str, normalised: str) -> None:
    settings = restore_settings({**RESTORE, "as_of": as_of})
    assert settings.as_of == normalised
    assert settings.as_of_epoch == datetime.fromisoformat(normalised).timestamp()


def test_as_of_without_zone_is_utc_not_local_time() -> None:
    settings = restore_settings({**RESTORE, "as_of": "2024-06-01T12:00:00"})
    assert settings.as_of_epoch == datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("tier", ["Expedited", "Standard", "Bulk"])
def test_every_tier_is_accepted(tier: str) -> None:
    assert restore_settings({**RESTORE, "restore_tier": tier}).restore_tier == tier


@pytest.mark.parametrize("storage_class", ["STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"])
def test_readable_storage_classes_are_accepted(storage_class: str) -> None:
    assert restore_settings({**RESTORE, "storage_class": storage_class}).storage_class == storage_class


@pytest.mark.parametrize("threshold", [5, 5120])
def test_multipart_threshold_bounds_are_inclusive(threshold: int) -> None:
    assert (
        backup_settings({**BACKUP, "multipart_threshold_mb": threshold}).multipart_threshold_mb == threshold
    )


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my.bucket-1", "0-backup"])
def test_valid_bucket_names(name: str) -> None:
    assert backup_settings({**BACKUP, "source_bucket": name}).source_bucket == name


@pytest.mark.parametrize("name", ["source-bucket\n", " source-bucket", "source-bucket\t"])
def test_bucket_name_must_match_whole(name: str) -> None:
    # a pattern ending in "$" alone would also accept a name followed by a newline
    with pytest.raises(SettingsError, match="source_bucket"):
        backup_settings({**BACKUP, "source_bucket": name})


def test_empty_as_of_means_latest() -> None:
    assert restore_settings({**RESTORE, "as_of": "  "}).as_of is None


def test_rendered_templates_are_converted() -> None:
    """Templated arguments render to strings unless the DAG renders native objects."""
    settings = backup_settings(
        {**BACKUP, "dry_run": "True", "tag_deleted": "false", "max_partitions": "8", "verify": "FALSE"}
    )
    assert (settings.dry_run, settings.tag_deleted, settings.max_partitions, settings.verify) == (
        True,
        False,
        8,
        False,
    )
    restore = restore_settings({**RESTORE, "restore_days": "7", "as_of": "None"})
    assert (restore.restore_days, restore.as_of) == (7, None)


def test_each_argument_has_one_rule() -> None:
    assert check_argument("max_partitions", "12") == 12
    assert check_argument("prefix", None) == ""
    with pytest.raises(SettingsError, match="target_bucket is required"):
        check_argument("target_bucket", "")
    with pytest.raises(SettingsError, match="restore_tier 'Fast'"):
        check_argument("restore_tier", "Fast")


def test_defaults_are_written_once() -> None:
    assert BACKUP_DEFAULTS == BackupSettings() and RESTORE_DEFAULTS == RestoreSettings()
    assert (BACKUP_DEFAULTS.compare, BACKUP_DEFAULTS.max_partitions) == ("size_mtime", 64)
    assert (RESTORE_DEFAULTS.restore_tier, RESTORE_DEFAULTS.poll_interval_seconds) == ("Standard", 300)


def test_an_optional_count_accepts_nothing_or_a_whole_number() -> None:
    assert [check_argument("expected", v) for v in (None, "", "None", "12", 3)] == [None, None, None, 12, 3]
    with pytest.raises(SettingsError, match="expected must be at least 0"):
        check_argument("expected", -1)


def test_storage_classes_of_backups_and_restores() -> None:
    assert backup_settings({**BACKUP, "backup_storage_class": "GLACIER"}).backup_storage_class == "GLACIER"
    with pytest.raises(SettingsError, match="backup_storage_class 'REDUCED_REDUNDANCY'"):
        backup_settings({**BACKUP, "backup_storage_class": "REDUCED_REDUNDANCY"})
    with pytest.raises(SettingsError, match="storage_class 'GLACIER'"):
        restore_settings({**RESTORE, "storage_class": "GLACIER"})  # a restore writes readable copies


@pytest.mark.parametrize(
    ("mode", "days", "problem"),
    [
        ("GOVERNANCE", 0, "needs retention_days of at least 1"),
        ("", 7, "needs a retention_mode"),
        ("LEGAL", 1, "retention_mode 'LEGAL'"),
    ],
)
def test_retention_mode_and_days_go_together(mode: str, days: int, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        backup_settings({**BACKUP, "retention_mode": mode, "retention_days": days})


@pytest.mark.parametrize(
    "key",
    [
        "",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/backups",
        "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/backup/keys",
    ],
)
def test_backup_kms_key_id_takes_every_form_s3_does(key: str) -> None:
    assert backup_settings({**BACKUP, "backup_kms_key_id": key}).backup_kms_key_id == key


@pytest.mark.parametrize("key", ["with space", "arn:aws:s3:::bucket", "alias/", 42])
def test_backup_kms_key_id_must_name_a_key(key: object) -> None:
    with pytest.raises(SettingsError, match="backup_kms_key_id .* is no KMS key"):
        backup_settings({**BACKUP, "backup_kms_key_id": key})
