"""apply_events: one batch of the source bucket's event notifications, applied to the backup.

A message leaves the queue only after its change is in the backup: messages are received
hidden (``visibility_timeout``), kept hidden while the batch works, and deleted once every key
they name is done. A batch that fails, or a worker that dies, leaves its messages to come back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException

from s3br_provider.core.deleted_index import tagged_marker_key
from s3br_provider.core.events import (
    Change,
    KeyChange,
    Message,
    Verdict,
    parse_message,
    percentile,
    plan_changes,
    settled_messages,
)
from s3br_provider.core.objects import ARCHIVE_CLASSES, ObjectInfo, epoch_seconds
from s3br_provider.core.pool import bounded_map
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.settings import BACKUP_DEFAULTS as B
from s3br_provider.core.settings import SettingsError, check_int
from s3br_provider.core.sizes import MiB
from s3br_provider.core.tags import mark_deleted
from s3br_provider.hooks.errors import error_code
from s3br_provider.hooks.tag_probe import probed_exact_tag_copy
from s3br_provider.operators.base import (
    DEFAULT_COPY_THREADS,
    MAX_REPORTED_FAILURES,
    InvalidArgumentsError,
    S3brBaseOperator,
)

if TYPE_CHECKING:
    from s3br_provider.hooks.s3_bucket import S3BucketHook
    from s3br_provider.hooks.sqs_events import S3EventsQueueHook

NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
MAX_LOGGED_UNKNOWN = 20
RECEIVE_PAGE = 10  # SQS hands out at most 10 messages per ReceiveMessage
OUTCOMES = ("copied", "tagged_deleted", "already_deleted", "tags_copied", "absent", "skipped_archived")


class VisibilityKeeper:
    """Keep received messages hidden while a batch works: every half visibility timeout,
    hide them one timeout longer (ChangeMessageVisibilityBatch). A short batch sends none."""

    def __init__(self, queue: S3EventsQueueHook, queue_url: str, receipts: list[str], timeout: int) -> None:
        self.events_queue, self.queue_url, self.receipts, self.timeout = queue, queue_url, receipts, timeout
        self.extensions = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="s3br-visibility", daemon=True)

    def __enter__(self) -> VisibilityKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.timeout / 2):
            try:
                self.events_queue.extend(self.queue_url, self.receipts, self.timeout)
                self.extensions += 1
            except Exception:  # the batch goes on; at worst its messages come back early
                self.events_queue.log.warning(
                    "Could not extend the visibility of %d messages", len(self.receipts), exc_info=True
                )


class S3EventsBatchOperator(S3brBaseOperator):
    """Apply one batch of S3 event notifications from an SQS queue to the backup.

    Receives up to ``max_messages`` messages, reads them as S3 events (``s3:TestEvent`` and
    messages that are not S3 events of ``source_bucket`` are counted, logged and dropped),
    keeps one change per key (the latest by ``sequencer``), and applies it from the source's
    current state: HeadObject, then a server-side copy with metadata and tags (the hook's copy,
    as ``copy_batch``), or, when the object is gone, the ``Deleted``/``DeletedAt`` tags (the
    rules of ``tag_deleted``; nothing is deleted); a tagging change alone re-copies the tags.
    Messages are deleted only once all their keys are done; the task fails at the end naming
    the keys that failed, and their messages come back after the visibility timeout.
    Publishes ``ObjectsBackedUp``, ``ObjectsTaggedDeleted``, ``ObjectsFailed`` and
    ``ReplicationLagSeconds`` (event time to change done, p95 of the batch).

    :param source_bucket: the bucket whose notifications the queue receives.
    :param backup_bucket: the backup bucket (``aws_conn_id``'s).
    :param queue_url: URL of the SQS queue.
    :param max_messages: messages per batch at most.
    :param visibility_timeout: seconds the batch's messages stay hidden from other receivers,
        renewed every half of it while the batch works.
    :param wait_time_seconds: long poll of the first receive.
    :param multipart_threshold_mb: objects larger than this are copied in parts.
    :param storage_class: storage class of new copies; default STANDARD.
    :param cloudwatch_namespace: CloudWatch namespace; ``""`` turns metrics off.
    :param source_aws_conn_id: connection of the source bucket; default ``aws_conn_id``.
    :param queue_aws_conn_id: connection of the queue; default ``aws_conn_id``.
    :param threads: changes applied in parallel.
    :return: the batch's counts (messages, events, keys, bytes, failed, each outcome, test and
        unknown messages, deleted messages, visibility extensions), its lag percentiles and the
        failures, named by key.
    """

    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "queue_url",
        "max_messages",
        "visibility_timeout",
        "wait_time_seconds",
        "source_bucket",
        "backup_bucket",
        "multipart_threshold_mb",
        "storage_class",
        "cloudwatch_namespace",
        "source_aws_conn_id",
        "queue_aws_conn_id",
    )

    def __init__(
        self,
        *,
        source_bucket: str,
        backup_bucket: str,
        queue_url: str,
        max_messages: int | str = 2000,
        visibility_timeout: int | str = 300,
        wait_time_seconds: int | str = 5,
        multipart_threshold_mb: int | str = B.multipart_threshold_mb,
        storage_class: str | None = None,
        cloudwatch_namespace: str = B.cloudwatch_namespace,
        source_aws_conn_id: str | None = None,
        queue_aws_conn_id: str | None = None,
        threads: int = DEFAULT_COPY_THREADS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_bucket = source_bucket
        self.backup_bucket = backup_bucket
        self.queue_url = queue_url
        self.max_messages = max_messages
        self.visibility_timeout = visibility_timeout
        self.wait_time_seconds = wait_time_seconds
        self.multipart_threshold_mb = multipart_threshold_mb
        self.storage_class = storage_class
        self.cloudwatch_namespace = cloudwatch_namespace
        self.source_aws_conn_id = source_aws_conn_id
        self.queue_aws_conn_id = queue_aws_conn_id
        self.threads = threads

    @cached_property
    def events_queue(self) -> S3EventsQueueHook:
        from s3br_provider.hooks.sqs_events import S3EventsQueueHook

        return S3EventsQueueHook(
            aws_conn_id=self.queue_aws_conn_id or self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    @cached_property
    def source_hook(self) -> S3BucketHook:
        return self.hook_for(self.source_aws_conn_id or self.aws_conn_id)

    def check_arguments(self) -> None:
        super().check_arguments()
        if self.source_bucket == self.backup_bucket:
            raise InvalidArgumentsError(
                f"source_bucket and backup_bucket are both {self.source_bucket!r}: "
                "a bucket cannot be its own backup"
            )
        if not str(self.queue_url or "").startswith(("https://", "http://")):
            raise InvalidArgumentsError(
                f"queue_url {self.queue_url!r} is not an SQS queue URL "
                "(set the Airflow Variable s3br_events_queue_url)"
            )
        bounds = {
            "max_messages": (1, 100_000),
            "visibility_timeout": (10, 43_200),
            "wait_time_seconds": (0, 20),
        }
        try:
            for name, (low, high) in bounds.items():
                setattr(self, name, check_int(getattr(self, name), name, low, high))
        except SettingsError as error:
            raise InvalidArgumentsError(str(error)) from None

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        self._run_id, self._index_lock, self._index_retired = context["run_id"], threading.Lock(), False
        self._probe_lock, self._exact = threading.Lock(), None
        result: dict[str, Any] = dict.fromkeys(("messages", "events", "keys", "bytes", "failed"), 0)
        result |= dict.fromkeys((*OUTCOMES, "test_events", "unknown", "deleted_messages", "extensions"), 0)
        result |= {"lag_p50": 0.0, "lag_p95": 0.0, "lag_max": 0.0, "failures": []}
        received = self._receive()
        result["messages"] = len(received)
        if not received:
            self.log.info("No messages in %s", self.queue_url)
            return result
        receipts = {m["MessageId"]: m["ReceiptHandle"] for m in received}
        with VisibilityKeeper(
            self.events_queue, self.queue_url, list(receipts.values()), self.visibility_timeout
        ) as keeper:
            messages = self._parse(received, result)
            changes = plan_changes(event for m in messages for event in m.events)
            result["keys"] = len(changes)
            lags, failed_keys = self._apply(changes, result)
        result["extensions"] = keeper.extensions
        settled = [receipts[i] for i in settled_messages(messages, failed_keys)]
        refused = self.events_queue.delete(self.queue_url, settled)
        result["deleted_messages"] = len(settled) - len(refused)
        result |= {
            "lag_p50": percentile(lags, 50),
            "lag_p95": percentile(lags, 95),
            "lag_max": max(lags, default=0.0),
        }
        self._publish(result)
        self._log_summary(result)
        if result["failed"]:
            context["ti"].xcom_push(key="return_value", value=result)
            shown = ", ".join(f"{f['key']!r} ({f['error']})" for f in result["failures"][:5])
            raise AirflowException(
                f"{result['failed']} change(s) could not be applied to s3://{self.backup_bucket}; "
                f"their messages stay in the queue: {shown}"
            )
        return result

    def _log_summary(self, result: dict[str, Any]) -> None:
        """The batch's one log line."""
        self.log.info(
            "Batch of %d messages (%d events, %d keys): copied %d (%s), tagged deleted %d (already %d), "
            "tags copied %d, gone before backed up %d, archived skipped %d, failed %d; test events %d, "
            "unknown %d; deleted %d messages; lag p50 %.1f s, p95 %.1f s, max %.1f s",
            result["messages"],
            result["events"],
            result["keys"],
            result["copied"],
            format_bytes(result["bytes"]),
            result["tagged_deleted"],
            result["already_deleted"],
            result["tags_copied"],
            result["absent"],
            result["skipped_archived"],
            result["failed"],
            result["test_events"],
            result["unknown"],
            result["deleted_messages"],
            result["lag_p50"],
            result["lag_p95"],
            result["lag_max"],
        )

    def _receive(self) -> list[dict[str, Any]]:
        """Receive until ``max_messages``, or until a receive returns a short page (the queue
        is drained for now: one more, empty, receive per batch would cost a request)."""
        messages: dict[str, dict[str, Any]] = {}
        wait = self.wait_time_seconds
        while len(messages) < self.max_messages:
            page = self.events_queue.receive(
                self.queue_url,
                max_messages=self.max_messages - len(messages),
                wait_seconds=wait,
                visibility_timeout=self.visibility_timeout,
            )
            messages |= {m["MessageId"]: m for m in page}  # a redelivery: its newest receipt
            if len(page) < RECEIVE_PAGE:
                break
            wait = 1
        return list(messages.values())

    def _parse(self, received: list[dict[str, Any]], result: dict[str, Any]) -> list[Message]:
        messages = []
        for raw in received:
            message = parse_message(
                raw["MessageId"], raw.get("Body", ""), self.source_bucket, result["events"]
            )
            result["events"] += len(message.events)
            if message.verdict is Verdict.TEST:
                result["test_events"] += 1
            elif message.verdict is Verdict.UNKNOWN:
                result["unknown"] += 1
                if result["unknown"] <= MAX_LOGGED_UNKNOWN:
                    self.log.warning(
                        "Dropping message %s of %s: %s: %.200s",
                        message.message_id,
                        self.queue_url,
                        message.reason,
                        raw.get("Body", ""),
                    )
            messages.append(message)
        return messages

    def _apply(self, changes: list[KeyChange], result: dict[str, Any]) -> tuple[list[float], set[str]]:
        """Apply every change in parallel; return the lags of the events applied, and the
        keys that failed (logged with their bucket and error)."""
        lags: list[float] = []
        failed: set[str] = set()
        for change, outcome, error in bounded_map(self._apply_one, changes, workers=self.threads):
            if error is not None:
                failed.add(change.key)
                result["failed"] += 1
                self.log.warning(
                    "Change %s of s3://%s/%s failed: %s: %s",
                    change.change,
                    self.source_bucket,
                    change.key,
                    error_code(error),
                    error,
                )
                if len(result["failures"]) < MAX_REPORTED_FAILURES:
                    result["failures"].append({"key": change.key, "error": error_code(error)})
                continue
            name, size, done = outcome
            result[name] += 1
            result["bytes"] += size
            lags += [max(0.0, done - when) for when in change.event_times]
        return lags, failed

    def _apply_one(self, change: KeyChange) -> tuple[str, int, float]:
        """(outcome, bytes copied, when it was done) of one key's change."""
        if change.change is Change.TAGS:
            outcome = self._copy_tags(change.key)
            if outcome is not None:
                return outcome, 0, time.time()
        outcome, size = self._sync(change.key)
        return outcome, size, time.time()

    def _sync(self, key: str) -> tuple[str, int]:
        """Make the backup of ``key`` what the source holds now: a copy, or the deleted marker."""
        try:
            head = self.source_hook.head(self.source_bucket, key)
        except Exception as error:
            if error_code(error) not in NOT_FOUND:
                raise
            return self._mark_deleted(key), 0
        obj = ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            etag=head.get("ETag", "").strip('"'),
            last_modified=epoch_seconds(head["LastModified"]),
            storage_class=head.get("StorageClass") or "STANDARD",
            version_id=head.get("VersionId"),
        )
        if obj.storage_class in ARCHIVE_CLASSES:
            return "skipped_archived", 0  # unreadable until restored: s3_backup's archived_source decides
        # HeadObject says how many tags there are: an untagged object's copy gets none (REPLACE
        # with nothing), with no GetObjectTagging. A tagged one's copy takes the source's tags
        # with TaggingDirective=COPY where s3_backup's tag probe found that exact; elsewhere the
        # tags are read and given (REPLACE): some endpoints (moto, unversioned) merge a
        # re-created object's tags with its copy's old Deleted marker.
        tags: dict[str, str] | None = {}
        if head.get("TagCount"):
            exact = self._exact_tag_copy()
            tags = None if exact else self.source_hook.get_tags(self.source_bucket, key, obj.version_id)
        self.hook.copy(
            obj,
            self.source_bucket,
            self.backup_bucket,
            multipart_threshold=int(self.multipart_threshold_mb) * MiB,
            tags=tags,
            storage_class=self.storage_class or None,
        )
        return "copied", obj.size

    def _exact_tag_copy(self) -> bool:
        """``probed_exact_tag_copy`` of the backup bucket, read once per batch, at its first
        tagged copy (one GetObjectTagging instead of one per tagged object)."""
        with self._probe_lock:
            if self._exact is None:
                self._exact = probed_exact_tag_copy(self.hook, self.backup_bucket)
                how = "with TaggingDirective=COPY" if self._exact else "with the tags read first"
                self.log.info("Tagged objects are copied %s (s3_backup's tag probe)", how)
            return self._exact

    def _mark_deleted(self, key: str) -> str:
        """Add ``Deleted``/``DeletedAt`` to the backup copy (the rules of ``tag_deleted``)."""
        try:
            existing = self.hook.get_tags(self.backup_bucket, key)
        except Exception as error:
            if error_code(error) not in NOT_FOUND:
                raise
            return "absent"  # created and removed before it was ever backed up
        merge = mark_deleted(existing, datetime.now(UTC))
        if merge.tags == existing:
            return "already_deleted"
        self._retire_deleted_index()
        self.hook.put_tags(self.backup_bucket, key, merge.tags)
        if merge.dropped:
            self.log.warning(
                "s3://%s/%s had %d tags: dropped %s to make room for the Deleted marker",
                self.backup_bucket,
                key,
                len(existing),
                sorted(merge.dropped),
            )
        return "tagged_deleted"

    def _retire_deleted_index(self) -> None:
        """Before the batch's first deleted marker: a marker under ``_s3br/index/deleted/tagged/``
        that retires the backup's deleted-key index (``core.deleted_index``), which cannot know
        of this tagging, until the next ``s3_backup`` writes a new one. Once per batch."""
        with self._index_lock:
            if self._index_retired:
                return
            uri = f"s3://{self.backup_bucket}/{tagged_marker_key(self._run_id)}"
            body = {"run_id": self._run_id, "at": datetime.now(UTC).isoformat()}
            self.hook.put_json(uri, json.dumps(body).encode())
            self._index_retired = True

    def _copy_tags(self, key: str) -> str | None:
        """Give the backup copy the source's tags; None if either object is missing (then the
        key is synced whole: copied, or marked deleted)."""
        try:
            tags = self.source_hook.get_tags(self.source_bucket, key)
            self.hook.put_tags(self.backup_bucket, key, tags)
        except Exception as error:
            if error_code(error) not in NOT_FOUND:
                raise
            return None
        return "tags_copied"

    def _publish(self, result: dict[str, Any]) -> None:
        metrics = self.metrics_hook(self.cloudwatch_namespace)
        metrics.publish(
            {
                "ObjectsBackedUp": result["copied"],
                "BytesBackedUp": result["bytes"],
                "ObjectsTaggedDeleted": result["tagged_deleted"],
                "ObjectsFailed": result["failed"],
                "ReplicationLagSeconds": result["lag_p95"],
            },
            {"SourceBucket": self.source_bucket, "BackupBucket": self.backup_bucket},
        )
