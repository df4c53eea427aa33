"""What a listing says about one object, and its compact manifest record."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from s3br_provider.core.objects import ObjectInfo

JUNE_1_NOON_UTC = 1717243200.0


@pytest.fixture
def new_york_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local zone that is not UTC, so naive times taken as local would show."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_from_listing_of_a_boto3_contents_entry() -> None:
    item = {
        "Key": "photos/é 😀.jpg",
        "LastModified": datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        "ETag": '"9b2cf535f27731c974343645a3985328"',
        "Size": 1234,
        "StorageClass": "GLACIER",
    }
    obj = ObjectInfo.from_listing(item)
    assert obj == ObjectInfo(
        key="photos/é 😀.jpg",
        size=1234,
        etag="9b2cf535f27731c974343645a3985328",
        last_modified=JUNE_1_NOON_UTC,
        storage_class="GLACIER",
    )
    assert obj.is_archived


def test_from_listing_of_a_versions_entry() -> None:
    item = {
        "Key": "k",
        "LastModified": datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        "ETag": '"abc-3"',
        "Size": 0,
        "VersionId": "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        "IsLatest": True,
    }
    obj = ObjectInfo.from_listing(item)
    assert obj.version_id == "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    assert obj.etag == "abc-3"
    assert obj.storage_class == "STANDARD"
    assert not obj.is_archived


@pytest.mark.parametrize(
    "last_modified",
    [
        datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 6, 1, 12, 0),
        "2024-06-01T12:00:00Z",
        "2024-06-01T08:00:00-04:00",
        "2024-06-01T12:00:00",
        JUNE_1_NOON_UTC,
    ],
)
@pytest.mark.usefixtures("new_york_time")
def test_last_modified_is_epoch_seconds_utc(last_modified: object) -> None:
    item = {"Key": "k", "LastModified": last_modified, "ETag": '"e"', "Size": 1}
    assert ObjectInfo.from_listing(item).last_modified == JUNE_1_NOON_UTC


@pytest.mark.parametrize("storage_class", [None, ""])
def test_missing_storage_class_means_standard(storage_class: str | None) -> None:
    item = {"Key": "k", "LastModified": JUNE_1_NOON_UTC, "StorageClass": storage_class}
    obj = ObjectInfo.from_listing(item)
    assert (obj.storage_class, obj.size, obj.etag) == ("STANDARD", 0, "")


@pytest.mark.parametrize(
    "obj",
    [
        ObjectInfo("a", 1, "e", 1.5),
        ObjectInfo("dir/é 😀+%//", 5 * 1024**3, "abc-12", JUNE_1_NOON_UTC, storage_class="DEEP_ARCHIVE"),
        ObjectInfo("v", 2, "e", 3.0, version_id="null"),
        ObjectInfo("t", 2, "e", 3.0, tags={"Team": "a b", "Deleted": "True"}),
        ObjectInfo("x", 2, "e", 3.0, tags={}, extra={"ContentType": "text/plain", "Metadata": {"k": "v"}}),
        ObjectInfo("all", 9, "e", 3.0, "GLACIER", "v1", {"a": "1"}, {"restore": "ready"}),
    ],
)
def test_record_round_trip(obj: ObjectInfo) -> None:
    assert ObjectInfo.from_record(obj.to_record()) == obj
    assert ObjectInfo.from_record(json.loads(json.dumps(obj.to_record()))) == obj


def test_record_is_compact_for_a_plain_object() -> None:
    assert ObjectInfo("a", 1, "e", 1.5).to_record() == {"k": "a", "s": 1, "e": "e", "m": 1.5}


@pytest.mark.parametrize(
    ("storage_class", "archived"),
    [
        ("GLACIER", True),
        ("DEEP_ARCHIVE", True),
        ("GLACIER_IR", False),
        ("STANDARD_IA", False),
        ("INTELLIGENT_TIERING", False),
    ],
)
def test_is_archived(storage_class: str, archived: bool) -> None:
    assert ObjectInfo("k", 1, "e", 1.0, storage_class=storage_class).is_archived is archived
