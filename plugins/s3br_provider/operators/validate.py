"""The first task of each DAG: turn Params into settings, check the buckets, write nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator, Variable
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from s3br_provider.core.manifest import run_folder
from s3br_provider.core.settings import SettingsError, backup_settings, restore_settings

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.s3_bucket import S3BucketHook

SOURCE_VARIABLE = "s3br_source_bucket"
BACKUP_VARIABLE = "s3br_backup_bucket"


class InvalidRunError(AirflowFailException):
    """Bad input: the run fails at once, without retries, before anything is written."""


def publish_each(context: Any, values: dict[str, Any]) -> None:
    """Push each setting as its own XCom key too, so ``validate.output["name"]`` works."""
    for key, value in values.items():
        context["ti"].xcom_push(key=key, value=value)


def _check_connection(conn_id: str, param: str) -> None:
    # The Amazon provider falls back to ambient credentials for an unknown connection id: a
    # typo would then quietly run against whatever account the worker happens to reach.
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise InvalidRunError(f"{param} {conn_id!r} is not an Airflow connection") from None


def _check_bucket(hook: S3BucketHook, bucket: str, param: str) -> None:
    status = hook.bucket_status(bucket)
    if status == "missing":
        raise InvalidRunError(f"{param} {bucket!r} does not exist (connection {hook.aws_conn_id!r})")
    if status == "forbidden":
        raise InvalidRunError(
            f"{param} {bucket!r}: access denied to connection {hook.aws_conn_id!r}; "
            "see the IAM policy in the README"
        )


def _same_endpoint(first: S3BucketHook, second: S3BucketHook, what: str) -> None:
    # A server-side copy is one request to one endpoint: both buckets must be reachable there.
    if first.endpoint_url != second.endpoint_url:
        raise InvalidRunError(
            f"{what} use different S3 endpoints ({first.endpoint_url or 'AWS'} and "
            f"{second.endpoint_url or 'AWS'}): server-side copies need one endpoint"
        )


class S3BackupValidateOperator(BaseOperator):
    """Validate the ``s3_backup`` Params and buckets; return the run's settings.

    Empty bucket Params fall back to the Variables ``s3br_source_bucket`` and
    ``s3br_backup_bucket``.
    """

    ui_color = "#fff3cd"

    def execute(self, context: Any) -> dict[str, Any]:
        params = dict(context["params"])
        params["source_bucket"] = params.get("source_bucket") or Variable.get(SOURCE_VARIABLE, None)
        params["backup_bucket"] = params.get("backup_bucket") or Variable.get(BACKUP_VARIABLE, None)
        try:
            settings = backup_settings(params)
        except SettingsError as error:
            raise InvalidRunError(str(error)) from None
        _check_connection(settings.source_aws_conn_id, "source_aws_conn_id")
        _check_connection(settings.backup_aws_conn_id, "backup_aws_conn_id")
        from s3br_provider.hooks.s3_bucket import S3BucketHook

        source = S3BucketHook(aws_conn_id=settings.source_aws_conn_id)
        backup = S3BucketHook(aws_conn_id=settings.backup_aws_conn_id)
        _check_bucket(source, settings.source_bucket, "source_bucket")
        _check_bucket(backup, settings.backup_bucket, "backup_bucket")
        _same_endpoint(source, backup, "source_aws_conn_id and backup_aws_conn_id")
        run_uri = run_folder(settings.backup_bucket, self.dag_id, context["run_id"])
        self.log.info(
            "Backing up s3://%s/%s into s3://%s/ (compare=%s, dry_run=%s); run files in %s",
            settings.source_bucket,
            settings.prefix,
            settings.backup_bucket,
            settings.compare,
            settings.dry_run,
            run_uri,
        )
        result = {**settings.to_dict(), "run_uri": run_uri}
        publish_each(context, result)
        return result


class S3RestoreValidateOperator(BaseOperator):
    """Validate the ``s3_restore`` Params, the backup bucket and the target; return settings."""

    ui_color = "#fff3cd"

    def execute(self, context: Any) -> dict[str, Any]:
        try:
            settings = restore_settings(dict(context["params"]))
        except SettingsError as error:
            raise InvalidRunError(str(error)) from None
        _check_connection(settings.backup_aws_conn_id, "backup_aws_conn_id")
        _check_connection(settings.target_aws_conn_id, "target_aws_conn_id")
        from s3br_provider.hooks.s3_bucket import S3BucketHook

        backup = S3BucketHook(aws_conn_id=settings.backup_aws_conn_id)
        target = S3BucketHook(aws_conn_id=settings.target_aws_conn_id)
        _check_bucket(backup, settings.backup_bucket, "backup_bucket")
        _same_endpoint(backup, target, "backup_aws_conn_id and target_aws_conn_id")
        if settings.as_of and not backup.is_versioned(settings.backup_bucket):
            raise InvalidRunError(
                f"as_of needs a versioned backup bucket, and {settings.backup_bucket!r} has "
                "never had versioning enabled"
            )
        target_status = target.bucket_status(settings.target_bucket)
        if target_status == "forbidden":
            raise InvalidRunError(
                f"target_bucket {settings.target_bucket!r} exists and connection "
                f"{target.aws_conn_id!r} may not read it"
            )
        if target_status == "ok" and target.has_objects(settings.target_bucket):
            raise InvalidRunError(
                f"target_bucket {settings.target_bucket!r} exists and is not empty: "
                "a restore never overwrites objects; choose a new bucket"
            )
        run_uri = run_folder(settings.backup_bucket, self.dag_id, context["run_id"])
        self.log.info(
            "Restoring s3://%s/%s into s3://%s/ (as_of=%s, include_deleted=%s, dry_run=%s)",
            settings.backup_bucket,
            settings.prefix,
            settings.target_bucket,
            settings.as_of,
            settings.include_deleted,
            settings.dry_run,
        )
        result = {
            **settings.to_dict(),
            "run_uri": run_uri,
            "restore_timeout_seconds": settings.restore_timeout_minutes * 60,
        }
        publish_each(context, result)
        return result
