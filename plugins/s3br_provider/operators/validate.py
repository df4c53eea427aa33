"""The first task of a backup or restore: check the arguments and the buckets, write nothing
(but, where ``backup_group`` asks for it, the two objects of the tag probe)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from s3br_provider.core.inventory import (
    InventoryError,
    check_configuration,
    check_manifest,
    iso_minute,
    split_inventory_uri,
)
from s3br_provider.core.keys import RESERVED_PREFIX, TAG_PROBE_TARGET, reaches_reserved
from s3br_provider.core.pool import bounded_map_ordered
from s3br_provider.core.settings import BACKUP_DEFAULTS as B
from s3br_provider.core.settings import RESTORE_DEFAULTS as R
from s3br_provider.core.settings import (
    BackupSettings,
    RestoreSettings,
    SettingsError,
    backup_settings,
    check_bool,
    restore_settings,
)
from s3br_provider.core.tags import is_marked_deleted
from s3br_provider.hooks.tag_probe import PROBE_SOURCE_TAGS, copies_tags_exactly, probe_tag_copy
from s3br_provider.operators.base import InvalidArgumentsError as InvalidRunError
from s3br_provider.operators.base import S3brBaseOperator

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.s3_bucket import S3BucketHook

__all__ = ["InvalidRunError", "S3BackupValidateOperator", "S3RestoreValidateOperator"]

EXACT_TAG_COPY_XCOM = "exact_tag_copy"
"""XCom key of the tag probe's answer (a bool), for each diff's ``exact_tag_copy``."""


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


def _check_no_reserved_keys(hook: S3BucketHook, bucket: str, prefix: str) -> None:
    """A source key under ``_s3br/`` would never be copied (s3br lists that prefix as its own
    run files): refuse the source rather than lose such keys silently. One LIST, MaxKeys=1
    (more only where S3 answers a truncated page without keys)."""
    if not reaches_reserved(prefix):
        return
    first = hook.first_key(bucket, RESERVED_PREFIX)
    if first is not None:
        raise InvalidRunError(
            f"source_bucket {bucket!r} holds keys under {RESERVED_PREFIX!r} (first: "
            f"{first!r}), the prefix where s3br keeps its run files, and "
            "a backup never copies them. Is it an s3br backup bucket? Keep a second copy of a "
            "backup with S3 Replication (see the README), or set prefix to the keys to back up."
        )


class _KeyUse(NamedTuple):
    """A KMS key a run writes under: ``name`` and ``key``, what it encrypts, and the connection
    (its Param and hook) that encrypts with it."""

    name: str
    key: str | None
    encrypts: str
    param: str
    hook: S3BucketHook


def _connection_key(hook: S3BucketHook, param: str) -> _KeyUse:
    """The connection extra ``s3br_kms_key_id``: every object the run writes through the
    connection without a key of its own carries it."""
    from s3br_provider.hooks.s3_bucket import KMS_KEY_EXTRA

    extra = f"the connection extra {KMS_KEY_EXTRA}"
    return _KeyUse(extra, hook.connection_kms_key_id, "the objects the run writes", param, hook)


def _check_kms_keys(*uses: _KeyUse) -> None:
    """Every key set must be one its connection may encrypt with, asked once per (connection,
    key) with one GenerateDataKey: a key shared by two uses, or two Params on one connection,
    costs one request."""
    asked: set[tuple[str | None, str]] = set()
    for use in uses:
        if not use.key or (use.hook.aws_conn_id, use.key) in asked:
            continue
        asked.add((use.hook.aws_conn_id, use.key))
        problem = use.hook.kms_key_problem(use.key)
        if problem:
            raise InvalidRunError(
                f"{use.name} {use.key!r} cannot encrypt {use.encrypts} with {use.param} "
                f"{use.hook.aws_conn_id!r}: {problem} (it must be a key that connection's account "
                "may use: see the README, Encryption)"
            )


def _empty_bucket(values: dict[str, Any], variables: dict[str, str | None]) -> None:
    """Name the Variable a bucket argument fell back on when both are empty."""
    for param, variable in variables.items():
        if variable and not values.get(param):
            raise InvalidRunError(f"{param} is empty and the Variable {variable} is not set")


class _ValidateOperator(S3brBaseOperator):
    """Shared steps of the two validate operators: arguments, then connections.

    The options (``BackupArguments`` / ``RestoreArguments`` in ``core.settings``) are keyword
    arguments declared once there, not again in each signature; every one is a template field
    and is checked by its rule when the task runs. An unknown keyword fails in ``BaseOperator``.
    """

    ui_color = "#fff3cd"
    options_class: type
    defaults: Any  # BACKUP_DEFAULTS or RESTORE_DEFAULTS
    declared: tuple[str, ...]  # options the subclass's own signature names
    connection_params: tuple[str, ...]
    check_options: Any  # the pure check of the whole set: backup_settings or restore_settings

    def __init__(self, *, known_params: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)  # bad input does not get better by trying again
        names = [name for name in self.options_class.__dataclass_fields__ if name not in self.declared]
        options = {name: kwargs.pop(name, getattr(self.defaults, name)) for name in names}
        super().__init__(**kwargs)
        self.known_params = known_params
        for name, value in options.items():
            setattr(self, name, value)

    def check_run_params(self, context: Any) -> None:
        """With ``known_params``, a run whose conf names another Param fails (a typo in conf
        would otherwise be ignored and the run would use the default)."""
        if self.known_params is None:
            return
        unknown = sorted(set(context.get("params") or {}) - set(self.known_params))
        if unknown:
            raise InvalidRunError(f"unknown Param(s): {', '.join(unknown)}")

    def option_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.options_class.__dataclass_fields__}

    def options(self, context: Any, variables: dict[str, str | None]) -> Any:
        self.check_run_params(context)
        values = self.option_values()
        _empty_bucket(values, variables)
        try:
            checked = type(self).check_options(values)
        except SettingsError as error:
            raise InvalidRunError(str(error)) from None
        for param in self.connection_params:
            _check_connection(getattr(checked, param), param)
        return checked


class S3BackupValidateOperator(_ValidateOperator):
    """Check a backup's arguments, connections and buckets before anything is written.

    Every argument of :func:`s3br_provider.task_groups.backup_group` is checked here once, so
    a run with bad input fails in its first task with one message naming the problem.

    :param source_bucket: bucket to back up.
    :param backup_bucket: bucket that receives the copies.
    :param verify_copies: the backup's ``verify`` option (``verify`` is the base's TLS setting).
    :param source_bucket_variable: Airflow Variable the DAG falls back on when
        ``source_bucket`` renders empty; only named in the error message.
    :param backup_bucket_variable: the same for ``backup_bucket``.
    :param known_params: the DAG's Params: a run conf naming another one fails (the ready DAGs
        pass theirs).
    :param probe_tag_copy: after the checks, learn whether the backup endpoint's CopyObject with
        TaggingDirective=COPY gives a copy exactly its source's tags (the function
        ``probe_tag_copy``: two fixed objects under ``_s3br/probe/``; not in a dry run) and push
        the answer as XCom ``exact_tag_copy`` for the diffs (``backup_group`` sets it); False on
        any doubt or error. Default False: nothing is written, no such XCom.
    :param kwargs: the backup's options (``core.settings.BackupArguments``: prefix, compare,
        tag_deleted, dry_run, ...), as ``backup_group`` takes them, and BaseOperator's.
    """

    options_class = BackupSettings
    defaults = B
    declared = ("source_bucket", "backup_bucket", "verify")
    connection_params = ("source_aws_conn_id", "backup_aws_conn_id")
    check_options = staticmethod(backup_settings)
    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        *(name for name in BackupSettings.__dataclass_fields__ if name != "verify"),
        "verify_copies",
        "probe_tag_copy",
    )

    def __init__(
        self,
        *,
        source_bucket: str,
        backup_bucket: str,
        verify_copies: bool | str = B.verify,
        source_bucket_variable: str | None = None,
        backup_bucket_variable: str | None = None,
        probe_tag_copy: bool | str = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("aws_conn_id", kwargs.get("backup_aws_conn_id", B.backup_aws_conn_id))
        super().__init__(**kwargs)
        self.source_bucket = source_bucket
        self.backup_bucket = backup_bucket
        self.verify_copies = verify_copies
        self.source_bucket_variable = source_bucket_variable
        self.backup_bucket_variable = backup_bucket_variable
        self.probe_tag_copy = probe_tag_copy

    def option_values(self) -> dict[str, Any]:
        # The option named verify is the copies' (``verify`` is the TLS setting of the base).
        return {**super().option_values(), "verify": self.verify_copies}

    def execute(self, context: Any) -> dict[str, Any]:
        settings: BackupSettings = self.options(
            context,
            {"source_bucket": self.source_bucket_variable, "backup_bucket": self.backup_bucket_variable},
        )
        source = self.hook_for(settings.source_aws_conn_id)
        backup = self.hook_for(settings.backup_aws_conn_id)
        _check_bucket(source, settings.source_bucket, "source_bucket")
        _check_bucket(backup, settings.backup_bucket, "backup_bucket")
        _same_endpoint(source, backup, "source_aws_conn_id and backup_aws_conn_id")
        if settings.listing_source == "inventory":
            self._check_inventory(source, settings)  # plan refuses reserved keys the report lists
        else:
            _check_no_reserved_keys(source, settings.source_bucket, settings.prefix)
        if settings.retention_mode and not backup.object_lock_enabled(settings.backup_bucket):
            raise InvalidRunError(
                f"retention_mode {settings.retention_mode} needs S3 Object Lock, and backup_bucket "
                f"{settings.backup_bucket!r} does not have it enabled (see the README: Object Lock)"
            )
        if not settings.dry_run:
            _check_kms_keys(
                _KeyUse(
                    "backup_kms_key_id",
                    settings.backup_kms_key_id,
                    "copies",
                    "backup_aws_conn_id",
                    backup,
                ),
                _connection_key(backup, "backup_aws_conn_id"),
            )
        try:
            probing = check_bool(self.probe_tag_copy, "probe_tag_copy")
        except SettingsError as error:
            raise InvalidRunError(str(error)) from None
        self.log.info(
            "Backing up s3://%s/%s into s3://%s/ (compare=%s, dry_run=%s, listing_source=%s)",
            settings.source_bucket,
            settings.prefix,
            settings.backup_bucket,
            settings.compare,
            settings.dry_run,
            settings.listing_source,
        )
        if probing:
            exact = not settings.dry_run and self._exact_tag_copy(backup, settings.backup_bucket)
            context["ti"].xcom_push(key=EXACT_TAG_COPY_XCOM, value=exact)
        return settings.to_dict()

    def _exact_tag_copy(self, backup: S3BucketHook, bucket: str) -> bool:
        """``probe_tag_copy``'s answer, logged; False (each changed object's tags are then read
        and set explicitly, as without the probe) where it is not exactly the source's tags,
        or the probe fails. AccessDenied to its first write fails the run: nothing can be written."""
        from botocore.exceptions import ClientError

        from s3br_provider.hooks.errors import error_code
        from s3br_provider.hooks.s3_bucket import WRITES_REFUSED_HINT

        where = f"s3://{bucket}/{TAG_PROBE_TARGET}"
        try:
            tags = probe_tag_copy(backup, bucket)
        except ClientError as error:
            if error_code(error) != "AccessDenied" or error.operation_name != "PutObject":
                return self._probe_failed(where, error)
            raise InvalidRunError(
                f"backup_bucket {bucket!r} refuses s3br's writes (AccessDenied to PutObject of "
                f"{where} with connection {backup.aws_conn_id!r}), so the run could write neither "
                f"copies nor its manifests and report. {WRITES_REFUSED_HINT}"
            ) from None
        except Exception as error:  # any doubt: the safe way, which costs a request per change
            return self._probe_failed(where, error)
        if copies_tags_exactly(tags):
            self.log.info(
                "Tag probe at %s: a copy with TaggingDirective=COPY carries exactly its source's "
                "tags; changed objects are copied so, without reading their tags first",
                where,
            )
            return True
        self.log.info(
            "Tag probe at %s: a copy with TaggingDirective=COPY was left with tags %s, not exactly "
            "its source's %s; each changed object's tags will be read and set explicitly",
            where,
            tags,
            PROBE_SOURCE_TAGS,
        )
        return False

    def _probe_failed(self, where: str, error: Exception) -> bool:
        self.log.warning(
            "Tag probe at %s failed (%s: %s): each changed object's tags will be read and set",
            where,
            type(error).__name__,
            error,
        )
        return False

    def _check_inventory(self, source: S3BucketHook, settings: BackupSettings) -> None:
        """The latest report under ``inventory_uri`` exists, is of the source bucket, young
        enough, readable and has the fields a listing needs (read with the source's connection)."""
        from s3br_provider.hooks.s3_inventory import S3InventoryReader

        try:
            self._check_configuration(source, settings)
            report = S3InventoryReader(source, settings.inventory_uri).latest()
            check_manifest(
                report.manifest,
                source_bucket=settings.source_bucket,
                max_age_hours=settings.inventory_max_age_hours,
                now=datetime.now(UTC),
            )
        except InventoryError as error:
            raise InvalidRunError(f"listing_source inventory: {error}") from None
        if report.manifest.file_format in ("Parquet", "ORC"):
            try:
                import pyarrow.orc  # noqa: F401
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise InvalidRunError(
                    f"listing_source inventory: the report is in {report.manifest.file_format} and "
                    "pyarrow (with ORC and Parquet) is not installed on the workers (pip install pyarrow)"
                ) from None
        self.log.info(
            "Inventory report %s: %s, %d data file(s), snapshot %s",
            report.uri,
            report.manifest.file_format,
            len(report.manifest.files),
            iso_minute(report.manifest.snapshot),
        )

    @staticmethod
    def _check_configuration(source: S3BucketHook, settings: BackupSettings) -> None:
        """The source's inventory configuration (the id ending ``inventory_uri``) exists,
        delivers there, and its filter covers ``prefix``."""
        from botocore.exceptions import ClientError

        from s3br_provider.hooks.errors import error_code

        destination, folder = split_inventory_uri(settings.inventory_uri)
        config_id = folder.rstrip("/").rsplit("/", 1)[-1]
        try:
            reply = source.client.get_bucket_inventory_configuration(
                Bucket=settings.source_bucket, Id=config_id
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                raise InventoryError(
                    f"source_bucket {settings.source_bucket!r} has no inventory configuration "
                    f"{config_id!r} (the last folder of inventory_uri)"
                ) from None
            if status == 403:
                raise InventoryError(
                    f"connection {source.aws_conn_id!r} may not read the inventory configuration "
                    f"{config_id!r} of {settings.source_bucket!r}: it needs s3:GetInventoryConfiguration"
                ) from None
            raise InventoryError(
                f"inventory configuration {config_id!r} unread: {error_code(error)}"
            ) from None
        check_configuration(
            reply["InventoryConfiguration"],
            config_id=config_id,
            prefix=settings.prefix,
            destination=destination,
        )


class S3RestoreValidateOperator(_ValidateOperator):
    """Check a restore's arguments, the backup bucket and the target before anything is written.

    :param backup_bucket: where the backup lives.
    :param target_bucket: bucket to restore into; must not exist, or be empty.
    :param known_params: the DAG's Params: a run conf naming another one fails.
    :param kwargs: the restore's options (``core.settings.RestoreArguments``: prefix,
        include_deleted, as_of, ...), as ``restore_group`` takes them, and BaseOperator's.
    """

    options_class = RestoreSettings
    defaults = R
    declared = ("backup_bucket", "target_bucket")
    connection_params = ("backup_aws_conn_id", "target_aws_conn_id")
    check_options = staticmethod(restore_settings)
    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        *RestoreSettings.__dataclass_fields__,
    )

    def __init__(self, *, backup_bucket: str, target_bucket: str, **kwargs: Any) -> None:
        kwargs.setdefault("aws_conn_id", kwargs.get("backup_aws_conn_id", R.backup_aws_conn_id))
        super().__init__(**kwargs)
        self.backup_bucket = backup_bucket
        self.target_bucket = target_bucket

    def execute(self, context: Any) -> dict[str, Any]:
        settings: RestoreSettings = self.options(context, {})
        backup = self.hook_for(settings.backup_aws_conn_id)
        target = self.hook_for(settings.target_aws_conn_id)
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
        if settings.target_mode == "missing_only" and target_status != "ok":
            raise InvalidRunError(
                f"target_bucket {settings.target_bucket!r} does not exist: target_mode missing_only "
                "restores into an existing bucket (new_bucket creates one)"
            )
        if not settings.dry_run:
            _check_kms_keys(
                _connection_key(backup, "backup_aws_conn_id"),
                _connection_key(target, "target_aws_conn_id"),
            )
        if settings.keys:
            self._check_keys(backup, settings)
        if (
            settings.target_mode == "new_bucket"
            and target_status == "ok"
            and target.has_objects(settings.target_bucket)
        ):
            raise InvalidRunError(
                f"target_bucket {settings.target_bucket!r} exists and is not empty: "
                "a restore never overwrites objects; choose a new bucket"
            )
        self.log.info(
            "Restoring s3://%s/%s into s3://%s/ (as_of=%s, include_deleted=%s, dry_run=%s, %s, %s)",
            settings.backup_bucket,
            settings.prefix,
            settings.target_bucket,
            settings.as_of,
            settings.include_deleted,
            settings.dry_run,
            settings.target_mode,
            f"{len(settings.keys)} named key(s)" if settings.keys else "every key",
        )
        return settings.to_dict()

    def _check_keys(self, backup: S3BucketHook, settings: RestoreSettings) -> None:
        """Every named key must be in the backup (as of ``as_of``); those tagged deleted are
        named in a warning (select leaves them out unless ``include_deleted``)."""
        bucket, as_of = settings.backup_bucket, settings.as_of_epoch

        def look_up(key: str) -> tuple[bool, bool]:
            if backup.object_info(bucket, key, as_of) is None:
                return False, False
            return True, is_marked_deleted(backup.get_tags(bucket, key))

        found = {}
        for key, answer, error in bounded_map_ordered(look_up, settings.keys, workers=16):
            if error is not None:
                raise InvalidRunError(f"could not read s3://{bucket}/{key}: {error}") from error
            found[key] = answer
        missing = [key for key, (exists, _) in found.items() if not exists]
        if missing:
            raise InvalidRunError(
                f"{len(missing)} of the keys are not in the backup s3://{bucket}"
                f"{' as of ' + settings.as_of if settings.as_of else ''}: "
                + ", ".join(repr(key) for key in missing[:20])
                + (" ..." if len(missing) > 20 else "")
            )
        deleted = [key for key, (_, marked) in found.items() if marked]
        if deleted and not settings.include_deleted:
            self.log.warning(
                "%d of the keys are tagged Deleted=True (their source was deleted) and will be left "
                "out; set include_deleted to restore them: %s",
                len(deleted),
                ", ".join(repr(key) for key in deleted[:20]),
            )
