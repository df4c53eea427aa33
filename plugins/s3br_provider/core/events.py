"""S3 event notifications to per-key changes: parse, order by ``sequencer``, deduplicate.

A batch of SQS messages becomes one ``KeyChange`` per key: the key's latest object event
(created or removed, ordered by its ``sequencer`` as S3 documents) decides whether the backup
copies the object or marks it deleted; tagging events alone re-copy the tags. The executor
reads the source's current state first (HeadObject), so a stale or redelivered event never
writes an outdated state. No Airflow or boto3 import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from s3br_provider.core.keys import is_reserved
from s3br_provider.core.objects import epoch_seconds

CREATED = "ObjectCreated:"
REMOVED = "ObjectRemoved:"
TAGGING = "ObjectTagging:"
DELETE_MARKER = "ObjectRemoved:DeleteMarkerCreated"
TEST_EVENT = "s3:TestEvent"
NOTIFICATION_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*")
"""The event types the source bucket sends to the queue."""


class Change(StrEnum):
    """What a key's events ask of the backup."""

    COPY = "copy"  # the object (re)appeared or changed: copy its current state
    DELETE = "delete"  # the object is gone: mark the backup copy deleted
    TAGS = "tags"  # only its tags changed: re-copy them


class Verdict(StrEnum):
    """What one SQS message turned out to be."""

    EVENTS = "events"  # S3 event records of the source bucket
    TEST = "test"  # the s3:TestEvent S3 sends when a notification configuration is written
    UNKNOWN = "unknown"  # not an S3 event notification (or of another bucket): logged, dropped


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One S3 event record. ``arrival`` is its position in the batch (the last tie-break)."""

    key: str
    name: str
    event_time: float
    sequencer: str | None
    version_id: str | None
    message_id: str
    arrival: int

    @property
    def is_tagging(self) -> bool:
        return self.name.startswith(TAGGING)

    def change(self) -> Change:
        """The change this event alone asks for.

        A removal of one version (``ObjectRemoved:Delete`` with a ``versionId``) of a versioned
        bucket may uncover an older version: the key's current state is copied (or marked
        deleted if nothing is left). Without a version, or when a delete marker was created,
        the object is gone.
        """
        if self.name.startswith(CREATED):
            return Change.COPY
        if self.is_tagging:
            return Change.TAGS
        if self.name != DELETE_MARKER and self.version_id:
            return Change.COPY
        return Change.DELETE


@dataclass(frozen=True, slots=True)
class Message:
    """What one SQS message holds."""

    message_id: str
    verdict: Verdict
    events: tuple[ObjectEvent, ...] = ()
    reason: str = ""


@dataclass(slots=True)
class KeyChange:
    """The one action a batch takes for a key, and the events (and messages) it settles."""

    key: str
    change: Change
    event_times: list[float] = field(default_factory=list)
    message_ids: set[str] = field(default_factory=set)


def sequencer_value(sequencer: str) -> int:
    """A sequencer as a number: S3 compares sequencers of different lengths as hex strings
    after left-padding the shorter with zeros, which is the same as comparing their values."""
    return int(sequencer, 16)


def is_later(a: ObjectEvent, b: ObjectEvent) -> bool:
    """Whether ``a`` happened after ``b`` (events of the same key).

    By ``sequencer`` where both carry one (S3 gives one to every PUT and DELETE event);
    otherwise by event time, then by arrival.
    """
    if a.sequencer and b.sequencer:
        va, vb = sequencer_value(a.sequencer), sequencer_value(b.sequencer)
        if va != vb:
            return va > vb
    if a.event_time != b.event_time:
        return a.event_time > b.event_time
    return a.arrival > b.arrival


def parse_message(message_id: str, body: str, bucket: str, first_arrival: int = 0) -> Message:
    """Read one SQS message body: S3 event records (directly or inside an SNS envelope) of
    ``bucket``, the ``s3:TestEvent``, or anything else (``UNKNOWN`` with the reason)."""
    try:
        document = json.loads(body)
    except ValueError:
        return Message(message_id, Verdict.UNKNOWN, reason="not JSON")
    if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
        try:  # SNS fan-out: the S3 notification is the envelope's Message, as a JSON string
            document = json.loads(document["Message"])
        except (TypeError, ValueError):
            return Message(message_id, Verdict.UNKNOWN, reason="SNS message that is not JSON")
    if not isinstance(document, dict):
        return Message(message_id, Verdict.UNKNOWN, reason="not a JSON object")
    if document.get("Event") == TEST_EVENT:
        return Message(message_id, Verdict.TEST)
    records = document.get("Records")
    if not isinstance(records, list) or not records:
        return Message(message_id, Verdict.UNKNOWN, reason="no Records")
    events = []
    for position, record in enumerate(records):
        event = _parse_record(record, message_id, first_arrival + position)
        if isinstance(event, str):
            return Message(message_id, Verdict.UNKNOWN, reason=event)
        if _record_bucket(record) != bucket:
            return Message(message_id, Verdict.UNKNOWN, reason=f"event of bucket {_record_bucket(record)!r}")
        events.append(event)
    return Message(message_id, Verdict.EVENTS, tuple(events))


def _record_bucket(record: Mapping[str, Any]) -> str:
    return str(record["s3"]["bucket"]["name"])


def _parse_record(record: Any, message_id: str, arrival: int) -> ObjectEvent | str:
    """One record as an event, or the reason it is not an S3 object event."""
    if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
        return "a record whose eventSource is not aws:s3"
    name = str(record.get("eventName", "")).removeprefix("s3:")
    if not name.startswith((CREATED, REMOVED, TAGGING)):
        return f"event {name!r}"
    try:
        obj = record["s3"]["object"]
        _record_bucket(record)
        # Keys arrive URL-encoded the way HTML forms are: "+" is a space, "%2B" a plus.
        key = unquote_plus(str(obj["key"]))
        when = epoch_seconds(str(record["eventTime"]))
    except (KeyError, TypeError, ValueError) as error:
        return f"malformed S3 record ({type(error).__name__}: {error})"
    sequencer = obj.get("sequencer")
    if sequencer is not None:
        try:
            sequencer_value(str(sequencer))
        except ValueError:
            return f"sequencer {sequencer!r} is not hexadecimal"
    return ObjectEvent(
        key=key,
        name=name,
        event_time=when,
        sequencer=str(sequencer) if sequencer is not None else None,
        version_id=obj.get("versionId") or None,
        message_id=message_id,
        arrival=arrival,
    )


def plan_changes(events: Iterable[ObjectEvent]) -> list[KeyChange]:
    """One change per key, in key order: the latest object event decides (copy or mark
    deleted; a copy carries the tags too); a key with tagging events only gets its tags
    re-copied. Keys under the reserved prefix ``_s3br/`` are never backed up."""
    latest: dict[str, ObjectEvent] = {}
    changes: dict[str, KeyChange] = {}
    for event in events:
        if is_reserved(event.key):
            continue
        change = changes.setdefault(event.key, KeyChange(event.key, Change.TAGS))
        change.event_times.append(event.event_time)
        change.message_ids.add(event.message_id)
        if event.is_tagging:
            continue
        current = latest.get(event.key)
        if current is None or is_later(event, current):
            latest[event.key] = event
            change.change = event.change()
    return [changes[key] for key in sorted(changes)]


def settled_messages(messages: Sequence[Message], failed_keys: set[str]) -> list[str]:
    """The ids of messages that may leave the queue: every change they carry is done (test
    events and unknown messages carry none). A message with a failed key stays, to come back."""
    return [m.message_id for m in messages if not any(event.key in failed_keys for event in m.events)]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` (0-100) percentile of ``values`` by the nearest-rank rule; 0.0 if empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
