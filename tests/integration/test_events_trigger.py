"""S3EventsQueueTrigger against moto's SQS: it fires while messages wait and takes none."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from s3br_provider.triggers.sqs_events import S3EventsQueueTrigger
from tests.support.s3 import local_client


@pytest.fixture
def sqs(endpoint: str) -> Any:
    return local_client("sqs", endpoint)


async def first_event(trigger: S3EventsQueueTrigger, timeout: float) -> Any:
    events = trigger.run()
    try:
        return await asyncio.wait_for(anext(events), timeout)
    finally:
        await events.aclose()


def test_serializes_to_its_import_path() -> None:
    trigger = S3EventsQueueTrigger(queue_url_variable="s3br_events_queue_url", poll_interval=2)
    path, kwargs = trigger.serialize()
    assert path == "s3br_provider.triggers.sqs_events.S3EventsQueueTrigger"
    assert S3EventsQueueTrigger(**kwargs).serialize() == (path, kwargs)
    with pytest.raises(ValueError, match="queue_url"):
        S3EventsQueueTrigger()


def test_fires_while_messages_wait_and_leaves_them(sqs: Any, bucket_names: Any) -> None:
    url = sqs.create_queue(QueueName=bucket_names("trigger"))["QueueUrl"]
    trigger = S3EventsQueueTrigger(queue_url=url, poll_interval=0.2)
    with pytest.raises(TimeoutError):
        asyncio.run(first_event(trigger, timeout=1.5))  # an empty queue: no event
    sqs.send_message(QueueUrl=url, MessageBody="m")
    event = asyncio.run(first_event(trigger, timeout=10))
    assert event.payload == {"status": "messages", "queue_url": url, "waiting": 1}
    [message] = sqs.receive_message(
        QueueUrl=url, MessageSystemAttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=1
    )["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # the trigger received nothing


def test_reads_the_queue_url_from_a_variable(
    sqs: Any, bucket_names: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqs.create_queue(QueueName=bucket_names("trigger-var"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    trigger = S3EventsQueueTrigger(queue_url_variable="s3br_test_events_queue", poll_interval=0.2)
    with pytest.raises(TimeoutError):
        asyncio.run(first_event(trigger, timeout=1.0))  # no Variable yet: nothing to watch
    monkeypatch.setenv("AIRFLOW_VAR_S3BR_TEST_EVENTS_QUEUE", url)
    assert asyncio.run(first_event(trigger, timeout=10)).payload["queue_url"] == url
