"""Restores out of archive tiers, for the request_restore task, the sensor and the trigger.

The decision (ready / wait / request, expired: request again) is ``core.restore_state``'s
``next_action``; this hook only does the I/O, synchronously for tasks and asynchronously
(aiobotocore, through the Amazon provider's ``get_async_conn``) for the triggerer.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

from s3br_provider.core.manifest import split_s3_uri
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.restore_state import ARCHIVE_STATUS, RestoreAction, next_action, state_from_head
from s3br_provider.core.retrieval import restore_request
from s3br_provider.hooks.errors import error_code
from s3br_provider.hooks.s3_bucket import S3BucketHook

OUTCOMES = ("ready", "in_progress", "requested")
"""What ``ensure_restore`` reports per object."""


def _object_args(bucket: str, obj: ObjectInfo) -> dict[str, Any]:
    args: dict[str, Any] = {"Bucket": bucket, "Key": obj.key}
    if obj.version_id:
        args["VersionId"] = obj.version_id
    return args


def _outcome(head: dict[str, Any], obj: ObjectInfo) -> str | None:
    """``ready`` or ``in_progress`` from a HeadObject answer; None: a request is due."""
    state = state_from_head(head, obj.storage_class, obj.extra.get(ARCHIVE_STATUS), datetime.now(UTC))
    action = next_action(state)
    if action is RestoreAction.REQUEST:
        return None
    return "ready" if action is RestoreAction.READY else "in_progress"


class GlacierRestoreHook(S3BucketHook):
    """S3 restore requests and checks, sync and async, on an Airflow AWS connection."""

    def ensure_restore(self, bucket: str, obj: ObjectInfo, tier: str, days: int) -> str:
        """Request a restore unless one is in progress or done; return one of ``OUTCOMES``."""
        outcome = _outcome(self.head(bucket, obj.key, obj.version_id), obj)
        return outcome or self.request_restore(bucket, obj, tier=tier, days=days)

    async def ensure_restore_async(
        self, client: Any, bucket: str, obj: ObjectInfo, tier: str, days: int
    ) -> str:
        """``ensure_restore`` on an aiobotocore client (``async with await hook.get_async_conn()``)."""
        args = _object_args(bucket, obj)
        outcome = _outcome(await client.head_object(**args), obj)
        if outcome is not None:
            return outcome
        request = restore_request(obj.storage_class, tier, days)
        try:
            await client.restore_object(**args, RestoreRequest=request)
        except Exception as error:
            if error_code(error) == "RestoreAlreadyInProgress":
                return "in_progress"
            raise
        return "requested"

    async def read_manifest_async(self, client: Any, uri: str) -> list[ObjectInfo]:
        """The objects of a gzip JSON Lines manifest, read on an aiobotocore client."""
        bucket, key = split_s3_uri(uri)
        answer = await client.get_object(Bucket=bucket, Key=key)
        async with answer["Body"] as body:
            data = gzip.decompress(await body.read())
        return [ObjectInfo.from_record(json.loads(line)) for line in data.splitlines() if line.strip()]
