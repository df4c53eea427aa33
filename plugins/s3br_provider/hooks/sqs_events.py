"""The SQS queue of a source bucket's event notifications, on the Amazon provider's SqsHook."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook

from s3br_provider.hooks.sdk_cache import FastClientSetupMixin

MAX_BATCH = 10
"""SQS receives, deletes and changes visibility of at most 10 messages per request."""


class S3EventsQueueHook(FastClientSetupMixin, SqsHook):
    """Receive, keep and delete event messages; a message is deleted only when asked.

    :param aws_conn_id: Airflow AWS connection of the queue.
    :param region_name: AWS region; default: the connection's.
    :param verify: TLS verification (False, or a CA bundle path); default: the connection's.
    :param config: botocore ``Config`` (or its keyword arguments).
    """

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        *,
        region_name: str | None = None,
        verify: bool | str | None = None,
        config: Any = None,
    ) -> None:
        super().__init__(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, config=config)

    def receive(
        self, queue_url: str, *, max_messages: int, wait_seconds: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        """One ReceiveMessage (long poll of ``wait_seconds``); the messages stay hidden from
        other receivers for ``visibility_timeout`` seconds, then come back unless deleted."""
        response = self.conn.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(max_messages, MAX_BATCH),
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return list(response.get("Messages", []))

    def extend(self, queue_url: str, receipts: Sequence[str], visibility_timeout: int) -> list[str]:
        """Hide messages ``visibility_timeout`` seconds longer from now; return the receipt
        handles SQS refused (a message whose visibility already ran out, say)."""
        entries = [{"ReceiptHandle": r, "VisibilityTimeout": visibility_timeout} for r in receipts]
        return self._batched("change_message_visibility_batch", queue_url, entries)

    def delete(self, queue_url: str, receipts: Sequence[str]) -> list[str]:
        """Delete messages by receipt handle; return the handles SQS could not delete."""
        return self._batched("delete_message_batch", queue_url, [{"ReceiptHandle": r} for r in receipts])

    def _batched(self, operation: str, queue_url: str, entries: list[dict[str, Any]]) -> list[str]:
        refused = []
        call = getattr(self.conn, operation)
        for start in range(0, len(entries), MAX_BATCH):
            chunk = {str(n): entry for n, entry in enumerate(entries[start : start + MAX_BATCH])}
            response = call(QueueUrl=queue_url, Entries=[{"Id": i, **e} for i, e in chunk.items()])
            for failure in response.get("Failed", []):
                self.log.warning(
                    "SQS %s refused a message of %s: %s %s",
                    operation,
                    queue_url,
                    failure.get("Code"),
                    failure.get("Message", ""),
                )
                refused.append(chunk[failure["Id"]]["ReceiptHandle"])
        return refused

    def visible_messages(self, queue_url: str) -> int:
        """ApproximateNumberOfMessages: messages waiting to be received (not the hidden ones)."""
        attributes = self.conn.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def queue_arn(self, queue_url: str) -> str:
        return self.queue_attributes(queue_url, "QueueArn")["QueueArn"]

    def queue_attributes(self, queue_url: str, *names: str) -> dict[str, str]:
        return self.conn.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names)).get(
            "Attributes", {}
        )
