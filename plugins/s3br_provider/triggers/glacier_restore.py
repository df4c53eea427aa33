"""GlacierRestoreTrigger: wait in the triggerer until archived objects are readable."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from s3br_provider.core.manifest import split_s3_uri
from s3br_provider.core.restore_state import RestoreStatus, parse_restore_header
from s3br_provider.core.retrieval import TIERS, restore_request

CONCURRENT_HEADS = 32


class GlacierRestoreTrigger(BaseTrigger):
    """Poll HeadObject's ``x-amz-restore`` asynchronously until every object is readable.

    Restores that expired (or were never requested) are requested again. Yields one
    TriggerEvent: ``success``, ``timeout`` (with the objects still pending) or ``error``.

    :param bucket: bucket holding the archived objects.
    :param manifest_uri: gzip JSON Lines manifest of the objects (``k`` key, ``v`` version).
    :param aws_conn_id: Airflow AWS connection.
    :param restore_tier: tier for re-requested restores.
    :param restore_days: days for re-requested restores.
    :param poll_interval: seconds between polls.
    :param deadline: epoch seconds after which a ``timeout`` event is sent; None waits forever.
    """

    def __init__(
        self,
        *,
        bucket: str,
        manifest_uri: str,
        aws_conn_id: str | None = "aws_default",
        restore_tier: str = "Standard",
        restore_days: int = 1,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        if restore_tier not in TIERS:
            raise ValueError(f"restore_tier {restore_tier!r} is not one of {', '.join(TIERS)}")
        self.bucket = bucket
        self.manifest_uri = manifest_uri
        self.aws_conn_id = aws_conn_id
        self.restore_tier = restore_tier
        self.restore_days = restore_days
        self.poll_interval = poll_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "s3br_provider.triggers.glacier_restore.GlacierRestoreTrigger",
            {
                "bucket": self.bucket,
                "manifest_uri": self.manifest_uri,
                "aws_conn_id": self.aws_conn_id,
                "restore_tier": self.restore_tier,
                "restore_days": self.restore_days,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=self.aws_conn_id)
        try:
            async with await hook.get_async_conn() as client:
                pending = await self._load_manifest(client)
                total = len(pending)
                while True:
                    pending = await self._still_pending(client, pending, total)
                    if not pending:
                        yield TriggerEvent({"status": "success", "ready": total})
                        return
                    if self.deadline is not None and time.time() >= self.deadline:
                        yield TriggerEvent(
                            {
                                "status": "timeout",
                                "pending": len(pending),
                                "total": total,
                                "examples": [key for key, _, _ in pending[:5]],
                            }
                        )
                        return
                    await asyncio.sleep(self.poll_interval)
        except Exception as error:  # reported to the task, which fails with the message
            self.log.exception("Waiting for restores in s3://%s failed", self.bucket)
            yield TriggerEvent({"status": "error", "message": f"{type(error).__name__}: {error}"})

    async def _load_manifest(self, client: Any) -> list[tuple[str, str | None, str]]:
        bucket, key = split_s3_uri(self.manifest_uri)
        answer = await client.get_object(Bucket=bucket, Key=key)
        async with answer["Body"] as body:
            data = gzip.decompress(await body.read())
        records = [json.loads(line) for line in data.splitlines() if line.strip()]
        return [(r["k"], r.get("v"), r.get("c", "STANDARD")) for r in records]

    async def _still_pending(
        self, client: Any, objects: list[tuple[str, str | None, str]], total: int
    ) -> list[tuple[str, str | None, str]]:
        limit = asyncio.Semaphore(CONCURRENT_HEADS)

        async def check(obj: tuple[str, str | None, str]) -> RestoreStatus:
            async with limit:
                return await self._check(client, *obj)

        states = await asyncio.gather(*(check(obj) for obj in objects))
        counts = Counter(states)
        ready = total - len(objects) + counts[RestoreStatus.READY] + counts[RestoreStatus.NOT_ARCHIVED]
        self.log.info(
            "s3://%s: %d/%d archived objects readable, %d restores in progress, %d (re)requested",
            self.bucket,
            ready,
            total,
            counts[RestoreStatus.IN_PROGRESS],
            counts[RestoreStatus.NOT_REQUESTED] + counts[RestoreStatus.EXPIRED],
        )
        return [obj for obj, state in zip(objects, states, strict=True) if state not in _READABLE]

    async def _check(
        self, client: Any, key: str, version_id: str | None, storage_class: str
    ) -> RestoreStatus:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        head = await client.head_object(**kwargs)
        state = parse_restore_header(
            head.get("Restore"),
            head.get("StorageClass") or storage_class,
            datetime.now(UTC),
            head.get("ArchiveStatus"),
        )
        if state.status in (RestoreStatus.NOT_REQUESTED, RestoreStatus.EXPIRED):
            request = restore_request(storage_class, self.restore_tier, self.restore_days)
            try:
                await client.restore_object(**kwargs, RestoreRequest=request)
            except Exception as error:
                if "RestoreAlreadyInProgress" not in str(error):
                    raise
        return state.status


_READABLE = (RestoreStatus.READY, RestoreStatus.NOT_ARCHIVED)
