"""The deleted marker on backup objects, within S3's limit of 10 tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from s3br_provider.core.tags import (
    DELETED_AT_TAG,
    DELETED_TAG,
    MAX_TAGS,
    TagMerge,
    format_deleted_at,
    from_tag_set,
    is_marked_deleted,
    mark_deleted,
    strip_marker,
    to_tag_set,
)

WHEN = datetime(2024, 6, 1, 12, 34, 56, tzinfo=UTC)


def user_tags(count: int) -> dict[str, str]:
    return {f"tag{i:02d}": f"value {i}" for i in range(count)}


def test_mark_keeps_existing_tags_and_adds_the_marker() -> None:
    merge = mark_deleted({"Team": "data", "Owner": "é 😀"}, WHEN)
    assert merge == TagMerge(
        {"Team": "data", "Owner": "é 😀", DELETED_TAG: "True", DELETED_AT_TAG: "2024-06-01T12:34"}
    )
    assert merge.dropped == {}


def test_mark_of_an_untagged_object() -> None:
    assert mark_deleted({}, WHEN).tags == {"Deleted": "True", "DeletedAt": "2024-06-01T12:34"}


def test_deleted_at_is_utc_minutes() -> None:
    # 23:59 on Dec 31 at UTC-5 is already the next year in UTC
    new_york = datetime(2024, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))
    assert mark_deleted({}, new_york).tags[DELETED_AT_TAG] == "2025-01-01T04:59"
    tokyo = datetime(2024, 6, 1, 8, 5, tzinfo=timezone(timedelta(hours=9)))
    assert format_deleted_at(tokyo) == "2024-05-31T23:05"


def test_deleted_at_is_set_once() -> None:
    first = mark_deleted({"Team": "data"}, WHEN).tags
    again = mark_deleted(first, WHEN + timedelta(days=3))
    assert again.tags == first
    assert again.dropped == {}


def test_marker_without_deleted_at_gets_one() -> None:
    merge = mark_deleted({DELETED_TAG: "True", "Team": "data"}, WHEN)
    assert merge.tags == {"Team": "data", DELETED_TAG: "True", DELETED_AT_TAG: "2024-06-01T12:34"}


def test_eight_user_tags_fit_with_the_marker() -> None:
    merge = mark_deleted(user_tags(8), WHEN)
    assert len(merge.tags) == MAX_TAGS
    assert merge.dropped == {}


@pytest.mark.parametrize(("count", "dropped"), [(9, ["tag08"]), (10, ["tag08", "tag09"])])
def test_marker_wins_over_user_tags_sorting_last(count: int, dropped: list[str]) -> None:
    existing = dict(reversed(user_tags(count).items()))  # the order S3 returns them in does not matter
    merge = mark_deleted(existing, WHEN)
    assert len(merge.tags) == MAX_TAGS
    assert is_marked_deleted(merge.tags)
    assert merge.tags[DELETED_AT_TAG] == "2024-06-01T12:34"
    assert sorted(merge.dropped) == dropped
    assert merge.dropped == {k: existing[k] for k in dropped}
    assert {k: v for k, v in merge.tags.items() if k not in (DELETED_TAG, DELETED_AT_TAG)} == {
        k: v for k, v in existing.items() if k not in dropped
    }


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mark_deleted({"Team": "data"}, datetime(2024, 6, 1, 12, 0))


@pytest.mark.parametrize(
    ("tags", "marked"),
    [
        ({DELETED_TAG: "True"}, True),
        ({DELETED_TAG: "False"}, False),
        ({DELETED_TAG: "true"}, False),
        ({}, False),
    ],
)
def test_is_marked_deleted(tags: dict[str, str], marked: bool) -> None:
    assert is_marked_deleted(tags) is marked


def test_strip_marker_restores_the_user_tags() -> None:
    original = {"Team": "data", "Deletedness": "x"}
    assert strip_marker(mark_deleted(original, WHEN).tags) == original
    assert strip_marker({}) == {}


def test_tag_set_round_trip() -> None:
    tags = {"Team": "data", "Owner": "é 😀", "Empty": ""}
    tag_set = to_tag_set(tags)
    assert tag_set == [
        {"Key": "Team", "Value": "data"},
        {"Key": "Owner", "Value": "é 😀"},
        {"Key": "Empty", "Value": ""},
    ]
    assert from_tag_set(tag_set) == tags
    assert to_tag_set({}) == [] and from_tag_set([]) == {}
