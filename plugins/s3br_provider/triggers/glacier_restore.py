"""GlacierRestoreTrigger: wait in the triggerer until archived objects are readable."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from s3br_provider.core.retrieval import TIERS
from s3br_provider.core.settings import RESTORE_DEFAULTS

CONCURRENT_HEADS = 32


class GlacierRestoreTrigger(BaseTrigger):
    """Poll the restores of a manifest's objects asynchronously until every one is readable.

    Each poll applies the same rule as the sensor's poke (``GlacierRestoreHook.ensure_restore``:
    restores that expired, or were never requested, are requested again), on the hook's async
    methods. Yields one TriggerEvent: ``success``, ``timeout`` (with the objects still pending)
    or ``error`` (with the message).

    :param bucket: bucket holding the archived objects.
    :param manifest_uri: gzip JSON Lines manifest of the objects.
    :param aws_conn_id: Airflow AWS connection.
    :param region_name: AWS region; default: the connection's.
    :param verify: TLS verification (False, or a CA bundle path); default: the connection's.
    :param botocore_config: botocore ``Config`` keyword arguments.
    :param restore_tier: tier for (re-)requested restores.
    :param restore_days: days for (re-)requested restores.
    :param poll_interval: seconds between polls.
    :param deadline: epoch seconds after which a ``timeout`` event is sent; None waits forever.
    """

    ARGUMENTS = ("bucket", "manifest_uri", "aws_conn_id", "region_name", "verify", "botocore_config")
    ARGUMENTS += ("restore_tier", "restore_days", "poll_interval", "deadline")

    def __init__(
        self,
        *,
        bucket: str,
        manifest_uri: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        restore_tier: str = RESTORE_DEFAULTS.restore_tier,
        restore_days: int = RESTORE_DEFAULTS.restore_days,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        if restore_tier not in TIERS:
            raise ValueError(f"restore_tier {restore_tier!r} is not one of {', '.join(TIERS)}")
        arguments = locals()
        for name in self.ARGUMENTS:  # kept under their own names: serialize() returns them
            setattr(self, name, arguments[name])

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "s3br_provider.triggers.glacier_restore.GlacierRestoreTrigger",
            {name: getattr(self, name) for name in self.ARGUMENTS},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from s3br_provider.hooks.glacier_restore import GlacierRestoreHook

        hook = GlacierRestoreHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )
        try:
            async with await hook.get_async_conn() as client:
                pending = await hook.read_manifest_async(client, self.manifest_uri)
                total = len(pending)
                while True:
                    pending = await self._still_pending(hook, client, pending, total)
                    if not pending:
                        yield TriggerEvent({"status": "success", "ready": total})
                        return
                    if self.deadline is not None and time.time() >= self.deadline:
                        examples = [obj.key for obj in pending[:5]]
                        yield TriggerEvent(
                            {
                                "status": "timeout",
                                "pending": len(pending),
                                "total": total,
                                "examples": examples,
                            }
                        )
                        return
                    await asyncio.sleep(self.poll_interval)
        except Exception as error:  # reported to the task, which fails with the message
            self.log.exception("Waiting for restores in s3://%s failed", self.bucket)
            yield TriggerEvent({"status": "error", "message": f"{type(error).__name__}: {error}"})

    async def _still_pending(self, hook: Any, client: Any, objects: list, total: int) -> list:
        limit = asyncio.Semaphore(CONCURRENT_HEADS)

        async def check(obj: Any) -> str:
            async with limit:
                return await hook.ensure_restore_async(
                    client, self.bucket, obj, self.restore_tier, int(self.restore_days)
                )

        outcomes = await asyncio.gather(*(check(obj) for obj in objects))
        counts = Counter(outcomes)
        self.log.info(
            "s3://%s: %d/%d archived objects readable, %d restores in progress, %d (re)requested",
            self.bucket,
            total - len(objects) + counts["ready"],
            total,
            counts["in_progress"],
            counts["requested"],
        )
        return [obj for obj, outcome in zip(objects, outcomes, strict=True) if outcome != "ready"]
