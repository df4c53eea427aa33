"""The deleted-key index: where it lives, which one a restore may trust, which manifests it reads."""

from __future__ import annotations

import pytest

from s3br_provider.core.deleted_index import (
    INDEX_PREFIX,
    TAGGED_PREFIX,
    build_index,
    choose_index,
    index_key,
    manifests_in_range,
    tagged_marker_key,
)
from s3br_provider.core.partitions import KeyRange


def test_index_keys_are_per_prefix_and_under_the_reserved_prefix() -> None:
    assert index_key("") == f"{INDEX_PREFIX}prefix=.json"
    assert index_key("a b/é") == f"{INDEX_PREFIX}prefix=a%20b%2F%C3%A9.json"
    assert tagged_marker_key("manual__2026-01-01T00:00:00+00:00").startswith(TAGGED_PREFIX)
    assert "/" not in tagged_marker_key("scheduled/x").removeprefix(TAGGED_PREFIX)


@pytest.mark.parametrize(
    ("restore_prefix", "chosen"),
    [("", "whole"), ("logs/2026/", "logs"), ("logs", "whole"), ("other/", "whole")],
)
def test_the_newest_index_covering_the_restore_prefix_is_chosen(restore_prefix: str, chosen: str) -> None:
    listing = [(index_key(""), 100.0), (index_key("logs/"), 200.0), (f"{INDEX_PREFIX}junk.txt", 300.0)]
    found = choose_index(listing, restore_prefix)
    assert found == ((index_key(""), 100.0) if chosen == "whole" else (index_key("logs/"), 200.0))


def test_no_index_for_a_prefix_it_does_not_cover() -> None:
    assert choose_index([(index_key("logs/"), 100.0)], "") is None
    assert choose_index([], "x/") is None


def test_a_tagged_marker_as_new_as_the_index_retires_it() -> None:
    index = (index_key(""), 100.0)
    assert choose_index([index, (tagged_marker_key("r1"), 99.0)], "") == index
    assert choose_index([index, (tagged_marker_key("r1"), 100.0)], "") is None
    assert choose_index([index, (tagged_marker_key("r1"), 150.0)], "") is None


def test_manifests_of_overlapping_partitions_only() -> None:
    index = build_index(
        prefix="",
        source_bucket="src",
        dag_id="s3_backup",
        run_id="r",
        partitions=[
            {"start_after": None, "end": "c", "vanished_manifest": "s3://b/v0", "vanished": 2},
            {"start_after": "c", "end": "m", "vanished_manifest": "", "vanished": 0},
            {"start_after": "m", "end": None, "vanished_manifest": "s3://b/v2", "vanished": 1},
        ],
    )
    assert manifests_in_range(index, KeyRange()) == ["s3://b/v0", "s3://b/v2"]
    assert manifests_in_range(index, KeyRange("a", "b")) == ["s3://b/v0"]
    assert manifests_in_range(index, KeyRange("c", "m")) == []
    assert manifests_in_range(index, KeyRange("b", "n")) == ["s3://b/v0", "s3://b/v2"]
    assert manifests_in_range(index, KeyRange("m", None)) == ["s3://b/v2"]
    assert manifests_in_range({**index, "format": 99}, KeyRange()) is None
