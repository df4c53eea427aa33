"""GlacierRestoreTrigger and GlacierRestoreSensor against the session's moto S3 server.

moto restores archived objects at once unless told otherwise; the ``slow_restores`` fixture
makes them take a few seconds. moto's timed restores count from the object's last state
change (its creation, at first), so tests let the objects age past that delay before the
first restore request: then a restore really is "in progress" for the whole delay.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred

from s3br_provider.core.manifest import writing_manifest
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.hooks.s3_bucket import S3BucketHook
from s3br_provider.sensors.glacier_restore import GlacierRestoreSensor
from s3br_provider.triggers.glacier_restore import GlacierRestoreTrigger
from tests.support.s3 import set_restore_transition

TRIGGER_PATH = "s3br_provider.triggers.glacier_restore.GlacierRestoreTrigger"
RESTORE_SECONDS = 4
RESTORE_REQUEST = {"Days": 1, "GlacierJobParameters": {"Tier": "Standard"}}


# Helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def slow_restores(endpoint: str) -> Iterator[int]:
    """Restores take RESTORE_SECONDS for the duration of one test."""
    set_restore_transition(endpoint, {"progression": "time", "seconds": RESTORE_SECONDS})
    try:
        yield RESTORE_SECONDS
    finally:
        set_restore_transition(endpoint, {"progression": "immediate"})


@pytest.fixture
def glacier_bucket(s3: Any, bucket_names: Any) -> str:
    bucket = bucket_names("glacier")
    s3.create_bucket(Bucket=bucket)
    return bucket


def put_archived(s3: Any, bucket: str, objects: dict[str, str]) -> float:
    """Put ``{key: storage_class}`` with small bodies; return when (monotonic) they were made."""
    for key, storage_class in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode(), StorageClass=storage_class)
    return time.monotonic()


def let_age(created: float, seconds: float) -> None:
    """Wait until objects made at ``created`` are older than moto's restore delay."""
    time.sleep(max(0.0, created + seconds + 0.3 - time.monotonic()))


def write_manifest(s3: Any, bucket: str, keys: list[str], name: str = "archived") -> str:
    """Write the archived-objects manifest of ``keys`` (as select does); return its URI."""
    listing = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    uri = f"s3://{bucket}/_s3br/runs/test/{name}.jsonl.gz"
    with writing_manifest(S3BucketHook(), uri) as writer:
        for key in keys:
            writer.write(ObjectInfo.from_listing(listing[key]).to_record())
    return uri


def restore_header(s3: Any, bucket: str, key: str) -> str | None:
    return s3.head_object(Bucket=bucket, Key=key).get("Restore")


def first_event(trigger: GlacierRestoreTrigger) -> dict[str, Any]:
    """Run the trigger until its first event and return the event's payload."""

    async def run() -> dict[str, Any]:
        events = trigger.run()
        try:
            event = await anext(events)
        finally:
            await events.aclose()
        return event.payload

    return asyncio.run(run())


def make_sensor(bucket: str, manifest_uri: str | None, **kwargs: Any) -> GlacierRestoreSensor:
    kwargs = {"deferrable": False, "poll_interval": 1, "restore_timeout": 60, **kwargs}
    return GlacierRestoreSensor(
        task_id="wait_for_restore", bucket=bucket, manifest_uri=manifest_uri, **kwargs
    )


# GlacierRestoreTrigger ---------------------------------------------------------------------------


def test_trigger_serializes_to_its_import_path_and_rebuilds() -> None:
    trigger = GlacierRestoreTrigger(
        bucket="bak-bucket",
        manifest_uri="s3://bak-bucket/_s3br/runs/x/archived/p00001.jsonl.gz",
        aws_conn_id="backup_conn",
        restore_tier="Bulk",
        restore_days=3,
        poll_interval=2.5,
        deadline=1_900_000_000.5,
    )
    path, kwargs = trigger.serialize()
    assert path == TRIGGER_PATH
    assert json.loads(json.dumps(kwargs)) == kwargs  # stored as JSON by the triggerer
    module, _, name = path.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert type(rebuilt) is GlacierRestoreTrigger
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs == {
        "bucket": "bak-bucket",
        "manifest_uri": "s3://bak-bucket/_s3br/runs/x/archived/p00001.jsonl.gz",
        "aws_conn_id": "backup_conn",
        "region_name": None,
        "verify": None,
        "botocore_config": None,
        "restore_tier": "Bulk",
        "restore_days": 3,
        "poll_interval": 2.5,
        "deadline": 1_900_000_000.5,
    }


def test_trigger_rejects_an_unknown_tier() -> None:
    with pytest.raises(ValueError, match="Fast"):
        GlacierRestoreTrigger(bucket="b-bucket", manifest_uri="s3://b-bucket/m", restore_tier="Fast")


def test_trigger_waits_for_restores_and_requests_missing_ones(
    s3: Any, glacier_bucket: str, slow_restores: int
) -> None:
    created = put_archived(s3, glacier_bucket, {"g/requested": "GLACIER", "g/never-requested": "GLACIER"})
    manifest = write_manifest(s3, glacier_bucket, ["g/never-requested", "g/requested"])
    let_age(created, slow_restores)
    s3.restore_object(Bucket=glacier_bucket, Key="g/requested", RestoreRequest=RESTORE_REQUEST)
    assert restore_header(s3, glacier_bucket, "g/never-requested") is None

    trigger = GlacierRestoreTrigger(bucket=glacier_bucket, manifest_uri=manifest, poll_interval=0.5)
    started = time.monotonic()
    event = first_event(trigger)
    took = time.monotonic() - started

    assert event == {"status": "success", "ready": 2}
    assert took >= RESTORE_SECONDS - 1, f"the trigger did not wait for the restores ({took:.1f}s)"
    for key in ("g/requested", "g/never-requested"):
        header = restore_header(s3, glacier_bucket, key)
        assert header is not None and 'ongoing-request="false"' in header, (key, header)


def test_trigger_times_out_with_the_pending_objects(s3: Any, glacier_bucket: str) -> None:
    put_archived(s3, glacier_bucket, {"a": "GLACIER", "b/deep": "DEEP_ARCHIVE"})
    manifest = write_manifest(s3, glacier_bucket, ["a", "b/deep"])
    trigger = GlacierRestoreTrigger(
        bucket=glacier_bucket, manifest_uri=manifest, poll_interval=0.2, deadline=time.time() - 1
    )

    event = first_event(trigger)

    assert event["status"] == "timeout", event
    assert event["pending"] == 2 and event["total"] == 2, event
    assert sorted(event["examples"]) == ["a", "b/deep"]


def test_trigger_reports_a_missing_manifest_as_an_error(glacier_bucket: str) -> None:
    uri = f"s3://{glacier_bucket}/_s3br/runs/test/does-not-exist.jsonl.gz"
    trigger = GlacierRestoreTrigger(bucket=glacier_bucket, manifest_uri=uri, poll_interval=0.2)

    event = first_event(trigger)

    assert event["status"] == "error", event
    assert isinstance(event.get("message"), str) and event["message"], event
    assert "NoSuchKey" in event["message"] or "Not Found" in event["message"], event


# GlacierRestoreSensor ----------------------------------------------------------------------------


def test_sensor_poke_is_false_while_restoring_and_true_when_done(
    s3: Any, glacier_bucket: str, slow_restores: int
) -> None:
    keys = {"x/glacier": "GLACIER", "y/deep": "DEEP_ARCHIVE"}
    created = put_archived(s3, glacier_bucket, keys)
    sensor = make_sensor(glacier_bucket, write_manifest(s3, glacier_bucket, sorted(keys)))
    let_age(created, slow_restores)

    pokes: list[bool] = []
    seen_in_progress = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pokes.append(sensor.poke({}))
        headers = [restore_header(s3, glacier_bucket, key) or "" for key in keys]
        seen_in_progress |= any('ongoing-request="true"' in h for h in headers)
        if pokes[-1]:
            break
        time.sleep(1)

    assert pokes[-1] is True, f"restores did not complete within 15 s: {pokes}"
    assert pokes[0] is False and pokes.count(False) >= 2, pokes
    assert seen_in_progress, "moto never showed a restore in progress: the test proved nothing"
    assert all(not p for p in pokes[:-1]), pokes


def test_sensor_poke_requests_a_restore_never_requested(s3: Any, glacier_bucket: str) -> None:
    put_archived(s3, glacier_bucket, {"never/asked": "GLACIER"})
    sensor = make_sensor(glacier_bucket, write_manifest(s3, glacier_bucket, ["never/asked"]))
    assert restore_header(s3, glacier_bucket, "never/asked") is None

    assert sensor.poke({}) is False  # the restore was only just requested

    assert restore_header(s3, glacier_bucket, "never/asked") is not None
    assert sensor.poke({}) is True  # moto restores at once by default


@pytest.mark.parametrize("manifest_uri", [None, ""])
def test_sensor_without_manifest_is_done_at_once(manifest_uri: str | None) -> None:
    sensor = make_sensor("no-such-bucket-s3br", manifest_uri)
    assert sensor.poke({}) is True


def test_deferrable_sensor_defers_to_the_trigger(s3: Any, glacier_bucket: str) -> None:
    put_archived(s3, glacier_bucket, {"d/one": "GLACIER"})
    manifest = write_manifest(s3, glacier_bucket, ["d/one"])
    sensor = make_sensor(
        glacier_bucket, manifest, deferrable=True, restore_tier="Bulk", restore_days=2, partition_name="p0"
    )

    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    assert deferred.value.method_name == "execute_complete"
    path, kwargs = deferred.value.trigger.serialize()
    assert path == TRIGGER_PATH
    assert kwargs["bucket"] == glacier_bucket and kwargs["manifest_uri"] == manifest
    assert (kwargs["restore_tier"], kwargs["restore_days"], kwargs["poll_interval"]) == ("Bulk", 2, 1.0)
    assert before + 60 - 5 <= kwargs["deadline"] <= time.time() + 60 + 5


def test_execute_complete_returns_on_success() -> None:
    sensor = make_sensor("bak-bucket", "s3://bak-bucket/m.jsonl.gz")
    assert sensor.execute_complete({}, {"status": "success", "ready": 7}) is None


def test_execute_complete_raises_sensor_timeout_naming_the_pending_count() -> None:
    sensor = make_sensor("bak-bucket", "s3://bak-bucket/m.jsonl.gz")
    event = {"status": "timeout", "pending": 3, "total": 5, "examples": ["a", "b", "c"]}
    with pytest.raises(AirflowSensorTimeout, match=r"\b3 of 5\b"):
        sensor.execute_complete({}, event)


def test_timeout_message_names_the_configured_timeout() -> None:
    """execute_complete runs on a fresh operator after the deferral, where ``execute`` never
    set ``self.timeout``: the message must still name the sensor's ``restore_timeout``."""
    sensor = make_sensor("bak-bucket", "s3://bak-bucket/m.jsonl.gz", deferrable=True, restore_timeout=5400)
    event = {"status": "timeout", "pending": 1, "total": 1, "examples": ["a"]}
    with pytest.raises(AirflowSensorTimeout) as raised:
        sensor.execute_complete({}, event)
    assert re.search(r"5400|90 ?min|1\.5 ?h", str(raised.value)), str(raised.value)


def test_execute_complete_raises_on_an_error_event() -> None:
    sensor = make_sensor("bak-bucket", "s3://bak-bucket/m.jsonl.gz")
    event = {"status": "error", "message": "ClientError: NoSuchKey: manifest gone"}
    with pytest.raises(AirflowException, match="manifest gone") as raised:
        sensor.execute_complete({}, event)
    assert not isinstance(raised.value, AirflowSensorTimeout)
