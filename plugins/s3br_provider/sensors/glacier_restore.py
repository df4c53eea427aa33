"""GlacierRestoreSensor: wait until the archived objects of a partition are readable."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from s3br_provider.core.manifest import read_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import bounded_map
from s3br_provider.core.settings import RESTORE_DEFAULTS, SettingsError, check_argument
from s3br_provider.triggers.glacier_restore import GlacierRestoreTrigger

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.glacier_restore import GlacierRestoreHook


class GlacierRestoreSensor(BaseSensorOperator):
    """Wait until every object of an archived-objects manifest has been restored.

    Pokes HeadObject for each object, requests restores that expired or were never requested,
    and logs progress (ready / in progress). Deferrable (the default): after one poke it
    hands the wait to :class:`GlacierRestoreTrigger` in the triggerer, so no worker slot is
    held for hours. Also works in ``poke`` and ``reschedule`` mode with ``deferrable=False``.

    :param bucket: bucket holding the archived objects.
    :param manifest_uri: gzip JSON Lines manifest of the objects; None or empty: nothing to wait for.
    :param aws_conn_id: Airflow AWS connection.
    :param region_name: AWS region; default: the connection's.
    :param verify: TLS verification (False, or a CA bundle path); default: the connection's.
    :param botocore_config: botocore ``Config`` keyword arguments.
    :param restore_tier: tier for (re-)requested restores.
    :param restore_days: days a restored copy stays readable.
    :param poll_interval: seconds between checks (templated; overrides ``poke_interval``).
    :param restore_timeout: seconds to wait in all (templated; overrides ``timeout``).
    :param deferrable: wait in the triggerer instead of a worker.
    :param partition_name: optional name for the UI (the mapped partition's key range).
    """

    template_fields = (
        "bucket",
        "manifest_uri",
        "aws_conn_id",
        "region_name",
        "verify",
        "botocore_config",
        "restore_tier",
        "restore_days",
        "poll_interval",
        "restore_timeout",
        "partition_name",
    )
    ui_color = "#cfe2ff"

    def __init__(
        self,
        *,
        bucket: str,
        manifest_uri: str | None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        restore_tier: str = RESTORE_DEFAULTS.restore_tier,
        restore_days: int | str = RESTORE_DEFAULTS.restore_days,
        poll_interval: float | str = 60,
        restore_timeout: float | str = 48 * 3600,
        deferrable: bool = True,
        partition_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("map_index_template", "{{ partition_label }}")
        super().__init__(**kwargs)
        self.bucket = bucket
        self.manifest_uri = manifest_uri
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.restore_tier = restore_tier
        self.restore_days = restore_days
        self.poll_interval = poll_interval
        self.restore_timeout = restore_timeout
        self.deferrable = deferrable
        self.partition_name = partition_name

    def execute(self, context: Any) -> Any:
        context["partition_label"] = self.partition_name or ""
        try:
            self.restore_tier = check_argument("restore_tier", self.restore_tier)
            self.restore_days = check_argument("restore_days", self.restore_days)
        except SettingsError as error:
            raise AirflowFailException(str(error)) from None  # bad input: no retry
        self.poke_interval = float(self.poll_interval)
        self.timeout = float(self.restore_timeout)
        self._started = time.time()
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.log.info("Deferring: the triggerer polls the restores every %ss", self.poke_interval)
        self.defer(
            trigger=GlacierRestoreTrigger(
                bucket=self.bucket,
                manifest_uri=self.manifest_uri,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
                restore_tier=self.restore_tier,
                restore_days=int(self.restore_days),
                poll_interval=float(self.poke_interval),
                deadline=self._started + float(self.timeout),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def poke(self, context: Any) -> bool:
        if not self.manifest_uri:
            self.log.info("No archived objects: nothing to wait for")
            return True
        hook = self.hook
        objects = (ObjectInfo.from_record(r) for r in read_manifest(hook, self.manifest_uri))

        def check(obj: ObjectInfo) -> str:
            return hook.ensure_restore(self.bucket, obj, self.restore_tier, int(self.restore_days))

        states: Counter[str] = Counter()
        for obj, state, error in bounded_map(check, objects, workers=16):
            if error is not None:
                raise AirflowException(f"checking restore of s3://{self.bucket}/{obj.key} failed: {error}")
            states[state] += 1
        total = sum(states.values())
        self.log.info(
            "s3://%s: %d/%d archived objects readable, %d in progress, %d restore(s) (re)requested",
            self.bucket,
            states["ready"],
            total,
            states["in_progress"],
            states["requested"],
        )
        return states["ready"] == total

    @cached_property
    def hook(self) -> GlacierRestoreHook:
        from s3br_provider.hooks.glacier_restore import GlacierRestoreHook

        return GlacierRestoreHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        context["partition_label"] = self.partition_name or ""
        status = event.get("status")
        if status == "success":
            self.log.info("All %s archived objects of s3://%s are readable", event.get("ready"), self.bucket)
            return
        if status == "timeout":
            raise AirflowSensorTimeout(
                f"GlacierRestoreSensor timed out after {float(self.restore_timeout):.0f}s: "
                f"{event['pending']} of {event['total']} archived objects in s3://{self.bucket} "
                f"are still being restored (e.g. {event['examples']}); restores keep going in S3, "
                "re-run the task to wait again"
            )
        raise AirflowException(f"waiting for restores in s3://{self.bucket} failed: {event.get('message')}")
