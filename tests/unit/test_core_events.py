from __future__ import annotations

import json
from typing import Any

import pytest

from s3br_provider.core.events import (
    Change,
    Verdict,
    is_later,
    parse_message,
    percentile,
    plan_changes,
    settled_messages,
)

BUCKET = "src"


def record(
    key: str,
    name: str = "ObjectCreated:Put",
    *,
    sequencer: str | None = None,
    time: str = "2026-12-01T10:00:00.000Z",
    version_id: str | None = None,
    bucket: str = BUCKET,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "size": 1, "eTag": "e"}
    if sequencer is not None:
        obj["sequencer"] = sequencer
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": time,
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }


def body(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def events_of(*bodies: str) -> list[Any]:
    events = []
    for n, text in enumerate(bodies):
        events += parse_message(f"m{n}", text, BUCKET, first_arrival=len(events)).events
    return events


def test_keys_are_url_decoded_with_plus_as_space() -> None:
    message = parse_message("m", body(record("a+b%2Bc%2F%C3%BC.txt")), BUCKET)
    assert message.verdict is Verdict.EVENTS
    assert [e.key for e in message.events] == ["a b+c/ü.txt"]


def test_test_event_and_unknown_messages() -> None:
    test = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    assert parse_message("t", test, BUCKET).verdict is Verdict.TEST
    for text in ("not json", "[1]", '{"hello": 1}', '{"Records": []}', body({"eventSource": "aws:sns"})):
        message = parse_message("u", text, BUCKET)
        assert message.verdict is Verdict.UNKNOWN and message.reason and not message.events
    other = parse_message("o", body(record("k", bucket="elsewhere")), BUCKET)
    assert other.verdict is Verdict.UNKNOWN and "elsewhere" in other.reason
    bad_sequencer = parse_message("s", body(record("k", sequencer="xyz")), BUCKET)
    assert bad_sequencer.verdict is Verdict.UNKNOWN


def test_sns_envelope_is_unwrapped() -> None:
    envelope = json.dumps({"Type": "Notification", "Message": body(record("k"))})
    message = parse_message("m", envelope, BUCKET)
    assert message.verdict is Verdict.EVENTS and message.events[0].key == "k"


def test_sequencers_of_different_lengths_compare_as_left_padded_hex() -> None:
    short, long = events_of(
        body(record("k", sequencer="FF")), body(record("k", "ObjectRemoved:Delete", sequencer="0100"))
    )
    assert is_later(long, short) and not is_later(short, long)
    # "FF" sorts after "0100" as a plain string; padded to "00FF" it is earlier.
    assert plan_changes([long, short])[0].change is Change.DELETE


def test_out_of_order_delivery_latest_sequencer_wins() -> None:
    events = events_of(
        body(record("k", "ObjectRemoved:Delete", sequencer="0A", time="2026-12-01T10:00:02Z")),
        body(record("k", sequencer="05", time="2026-12-01T10:00:01Z")),
    )
    [change] = plan_changes(events)
    assert change.change is Change.DELETE and change.message_ids == {"m0", "m1"}


def test_delete_then_recreate_copies() -> None:
    events = events_of(
        body(record("k", sequencer="01")),
        body(record("k", "ObjectRemoved:DeleteMarkerCreated", sequencer="02")),
        body(record("k", sequencer="03")),
    )
    assert [(c.key, c.change) for c in plan_changes(events)] == [("k", Change.COPY)]


def test_duplicates_become_one_change_per_key() -> None:
    same = body(record("k", sequencer="01"))
    events = events_of(same, same, body(record("j")), same)
    changes = plan_changes(events)
    assert [(c.key, c.change, len(c.event_times)) for c in changes] == [
        ("j", Change.COPY, 1),
        ("k", Change.COPY, 3),
    ]


def test_without_sequencers_event_time_then_arrival_order() -> None:
    events = events_of(
        body(record("k", "ObjectRemoved:Delete", time="2026-12-01T10:00:05Z")),
        body(record("k", time="2026-12-01T10:00:01Z")),
        body(record("j", time="2026-12-01T10:00:01Z")),
        body(record("j", "ObjectRemoved:Delete", time="2026-12-01T10:00:01Z")),
    )
    assert {c.key: c.change for c in plan_changes(events)} == {"k": Change.DELETE, "j": Change.DELETE}


@pytest.mark.parametrize(
    ("name", "version_id", "expected"),
    [
        ("ObjectRemoved:Delete", None, Change.DELETE),
        ("ObjectRemoved:DeleteMarkerCreated", "v2", Change.DELETE),
        # One version removed from a versioned bucket: an older one may be current now.
        ("ObjectRemoved:Delete", "v1", Change.COPY),
        ("ObjectCreated:CompleteMultipartUpload", "v1", Change.COPY),
        ("s3:ObjectCreated:Copy", None, Change.COPY),
    ],
)
def test_removals_and_versions(name: str, version_id: str | None, expected: Change) -> None:
    [change] = plan_changes(events_of(body(record("k", name, version_id=version_id))))
    assert change.change is expected


def test_tagging_alone_recopies_tags_and_with_a_copy_is_covered_by_it() -> None:
    events = events_of(
        body(record("t", "ObjectTagging:Put")),
        body(record("t", "ObjectTagging:Delete")),
        body(record("c", sequencer="01"), record("c", "ObjectTagging:Put")),
        body(record("_s3br/runs/x", sequencer="01")),
    )
    assert {c.key: c.change for c in plan_changes(events)} == {"c": Change.COPY, "t": Change.TAGS}


def test_messages_with_a_failed_key_stay() -> None:
    messages = [
        parse_message("a", body(record("x"), record("y")), BUCKET),
        parse_message("b", body(record("z")), BUCKET),
        parse_message("c", json.dumps({"Event": "s3:TestEvent"}), BUCKET),
        parse_message("d", "garbage", BUCKET),
    ]
    assert settled_messages(messages, {"y"}) == ["b", "c", "d"]
    assert settled_messages(messages, set()) == ["a", "b", "c", "d"]


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 95) == 95.0
    assert percentile([5.0], 95) == 5.0
