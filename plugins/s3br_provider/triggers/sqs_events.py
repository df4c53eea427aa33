"""S3EventsQueueTrigger: fire when the event queue holds messages, without receiving them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


class S3EventsQueueTrigger(BaseEventTrigger):
    """Watch an SQS queue for an ``AssetWatcher``: yield an event while messages wait.

    It only reads ``ApproximateNumberOfMessages`` (GetQueueAttributes): it never receives,
    hides or deletes a message, so a message stays in the queue until the DAG run that it
    wakes has applied its change, and a killed triggerer loses nothing. (The Amazon
    provider's ``SqsSensorTrigger`` receives the messages, and by default deletes them.)
    After firing it waits ``cooldown`` seconds before it may fire again, so the messages
    that arrive while a batch works wake one more run, not one per poll.

    :param queue_url: URL of the queue; ``""``: the value of ``queue_url_variable``.
    :param queue_url_variable: Airflow Variable holding the URL, read at every poll.
    :param aws_conn_id: Airflow AWS connection of the queue.
    :param region_name: AWS region; default: the connection's.
    :param verify: TLS verification (False, or a CA bundle path); default: the connection's.
    :param botocore_config: botocore ``Config`` keyword arguments.
    :param poll_interval: seconds between polls.
    :param cooldown: seconds after an event before the next one.
    """

    def __init__(
        self,
        *,
        queue_url: str = "",
        queue_url_variable: str = "",
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        poll_interval: float = 5.0,
        cooldown: float = 20.0,
    ) -> None:
        super().__init__()
        if not queue_url and not queue_url_variable:
            raise ValueError("S3EventsQueueTrigger needs queue_url or queue_url_variable")
        self.queue_url = queue_url
        self.queue_url_variable = queue_url_variable
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.poll_interval = poll_interval
        self.cooldown = cooldown
        self._warned = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        names = ("queue_url", "queue_url_variable", "aws_conn_id", "region_name", "verify")
        names += ("botocore_config", "poll_interval", "cooldown")
        return (
            "s3br_provider.triggers.sqs_events.S3EventsQueueTrigger",
            {name: getattr(self, name) for name in names},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        while True:
            try:
                queue_url, waiting = await sync_to_async(self._poll)()
            except Exception:  # a poll that fails (throttling, a network blip) is retried
                self.log.warning("Could not read the message count of the event queue", exc_info=True)
                queue_url, waiting = "", 0
            if waiting:
                self.log.info("%d message(s) wait in %s", waiting, queue_url)
                yield TriggerEvent({"status": "messages", "queue_url": queue_url, "waiting": waiting})
                await asyncio.sleep(self.cooldown)
            else:
                await asyncio.sleep(self.poll_interval)

    def _poll(self) -> tuple[str, int]:
        """The queue's URL and its waiting messages; in a thread (the SDK's import, the
        connection lookup and the request all block)."""
        queue_url = self.queue_url
        if not queue_url:
            from airflow.sdk import Variable

            queue_url = Variable.get(self.queue_url_variable, default="")
            if not queue_url:
                if not self._warned:  # once, not at every poll
                    self.log.warning(
                        "Airflow Variable %s is not set: no queue to watch", self.queue_url_variable
                    )
                self._warned = True
                return "", 0
            self._warned = False
        return queue_url, self._hook.visible_messages(queue_url)

    @cached_property
    def _hook(self) -> Any:
        from s3br_provider.hooks.sqs_events import S3EventsQueueHook

        return S3EventsQueueHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )
