"""S3EventsSetupOperator: the queue, its policy and the bucket notification, idempotently."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from s3br_provider.core.events import NOTIFICATION_EVENTS
from s3br_provider.operators.base import InvalidArgumentsError, S3brBaseOperator

POLICY_SID = "s3br-s3-event-notifications"
NOTIFICATION_ID = "s3br-continuous-backup"


def queue_policy(current: str | None, queue_arn: str, bucket: str, account_id: str | None) -> dict[str, Any]:
    """The queue's access policy with one statement (ours, by Sid) that lets S3 send the
    bucket's notifications; every other statement is kept."""
    policy = json.loads(current) if current else {"Version": "2012-10-17", "Statement": []}
    condition: dict[str, Any] = {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}}
    if account_id:
        condition["StringEquals"] = {"aws:SourceAccount": account_id}
    ours = {
        "Sid": POLICY_SID,
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": condition,
    }
    others = [s for s in policy.get("Statement", []) if s.get("Sid") != POLICY_SID]
    return {**policy, "Statement": [*others, ours]}


def notification_configuration(
    current: dict[str, Any], queue_arn: str, prefix: str, notification_id: str
) -> dict[str, Any]:
    """The bucket's notification configuration with our queue configuration (by Id) set;
    topics, Lambda functions, EventBridge and other queues are kept as they are."""
    config = {k: v for k, v in current.items() if k != "ResponseMetadata"}
    ours: dict[str, Any] = {"Id": notification_id, "QueueArn": queue_arn, "Events": list(NOTIFICATION_EVENTS)}
    if prefix:
        ours["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    queues = [q for q in config.get("QueueConfigurations", []) if q.get("Id") != notification_id]
    return {**config, "QueueConfigurations": [*queues, ours]}


def same_configuration(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two queue configurations say the same (S3 may return events in another order)."""

    def normal(config: dict[str, Any]) -> Any:
        rules = config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        rules = sorted((rule["Name"].lower(), rule["Value"]) for rule in rules)  # AWS answers "Prefix"
        return {**config, "Events": sorted(config.get("Events", [])), "Filter": rules}

    return normal(a) == normal(b)


class S3EventsSetupOperator(S3brBaseOperator):
    """Create or check the SQS queue of a bucket's event notifications, its access policy
    for S3, and the bucket's notification configuration, idempotently.

    The queue is created if missing (an existing one keeps its attributes); the policy gets one
    statement of ours (Sid ``s3br-s3-event-notifications``) next to any others; the bucket gets
    one queue configuration of ours (Id ``notification_id``) for ``s3:ObjectCreated:*``,
    ``s3:ObjectRemoved:*`` and ``s3:ObjectTagging:*``, next to the topics, functions, queues and
    EventBridge setting it already has. Nothing is written where nothing changes. Returns the
    queue URL and ARN, for the Airflow Variable ``s3br_events_queue_url``.

    :param source_bucket: the bucket whose changes are backed up continuously.
    :param queue_name: name of the SQS queue (created if missing).
    :param prefix: only keys under this prefix notify; ``""``: every key.
    :param visibility_timeout: VisibilityTimeout of a new queue, seconds.
    :param message_retention_seconds: MessageRetentionPeriod of a new queue (default 14 days,
        SQS's maximum, so a long outage loses nothing).
    :param source_account_id: the bucket owner's account, added to the policy's condition.
    :param notification_id: Id of our queue configuration in the bucket.
    :param queue_aws_conn_id: connection of the queue; default ``aws_conn_id`` (the bucket's).
    """

    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "source_bucket",
        "queue_name",
        "prefix",
        "visibility_timeout",
        "message_retention_seconds",
        "source_account_id",
        "notification_id",
        "queue_aws_conn_id",
    )

    def __init__(
        self,
        *,
        source_bucket: str,
        queue_name: str,
        prefix: str = "",
        visibility_timeout: int | str = 300,
        message_retention_seconds: int | str = 1_209_600,
        source_account_id: str | None = None,
        notification_id: str = NOTIFICATION_ID,
        queue_aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_bucket = source_bucket
        self.queue_name = queue_name
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.message_retention_seconds = message_retention_seconds
        self.source_account_id = source_account_id
        self.notification_id = notification_id
        self.queue_aws_conn_id = queue_aws_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        if not self.queue_name or self.queue_name.endswith(".fifo"):
            raise InvalidArgumentsError(
                f"queue_name {self.queue_name!r}: give the name of a standard SQS queue "
                "(S3 does not notify FIFO queues)"
            )
        from s3br_provider.hooks.sqs_events import S3EventsQueueHook

        queue = S3EventsQueueHook(
            aws_conn_id=self.queue_aws_conn_id or self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )
        changed = []
        if self.hook.bucket_status(self.source_bucket) != "ok":
            raise InvalidArgumentsError(
                f"source_bucket {self.source_bucket!r} does not exist or is not readable"
            )
        queue_url = self._queue_url(queue, changed)
        attributes = queue.queue_attributes(queue_url, "QueueArn", "Policy")
        queue_arn = attributes["QueueArn"]
        policy = queue_policy(attributes.get("Policy"), queue_arn, self.source_bucket, self.source_account_id)
        if attributes.get("Policy") is None or json.loads(attributes["Policy"]) != policy:
            queue.conn.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
            changed.append("queue policy")
        s3 = self.hook.client
        current = s3.get_bucket_notification_configuration(Bucket=self.source_bucket)
        wanted = notification_configuration(current, queue_arn, self.prefix, self.notification_id)
        mine = [q for q in current.get("QueueConfigurations", []) if q.get("Id") == self.notification_id]
        if not (mine and same_configuration(mine[0], wanted["QueueConfigurations"][-1])):
            s3.put_bucket_notification_configuration(
                Bucket=self.source_bucket, NotificationConfiguration=wanted
            )
            changed.append("bucket notification")
        self.log.info(
            "s3://%s notifies %s (%s): %s",
            self.source_bucket,
            queue_url,
            ", ".join(NOTIFICATION_EVENTS),
            f"set {', '.join(changed)}" if changed else "already set up, nothing changed",
        )
        return {"queue_url": queue_url, "queue_arn": queue_arn, "changed": changed}

    def _queue_url(self, queue: Any, changed: list[str]) -> str:
        client = queue.conn
        try:
            return client.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        except client.exceptions.QueueDoesNotExist:
            pass
        url = queue.create_queue(
            self.queue_name,
            {
                "VisibilityTimeout": int(self.visibility_timeout),
                "MessageRetentionPeriod": int(self.message_retention_seconds),
            },
        )["QueueUrl"]
        changed.append("queue")
        return url
