"""core.drill: the seeded bottom-k sample, the expiration rule's coverage, the checks of a
restored object and the estimate of a full restore."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from s3br_provider.core.drill import (
    BottomK,
    differences,
    drill_key,
    expiration_covers,
    expiration_rule,
    full_restore_estimate,
    priority,
    smallest,
    unchanged_since_backup,
)


def test_priorities_are_seeded_uniform_and_reproducible() -> None:
    keys = [f"k/{i:05d}" for i in range(4000)]
    ranks = [priority("run-1", key) for key in keys]
    assert ranks == [priority("run-1", key) for key in keys]
    assert ranks != [priority("run-2", key) for key in keys]
    assert all(0 <= rank < 1 for rank in ranks)
    assert 0.45 < sum(ranks) / len(ranks) < 0.55


def test_bottom_k_of_partitions_merged_is_the_bottom_k_of_the_whole() -> None:
    keys = [f"k/{i:05d}" for i in range(3000)]
    random.Random(7).shuffle(keys)
    whole, parts = BottomK(50), [BottomK(50) for _ in range(7)]
    for i, key in enumerate(keys):
        rank = priority("seed", key)
        whole.add(rank, key, key)
        parts[i % 7].add(rank, key, key)
    merged = smallest((pair for part in parts for pair in part.items()), 50)
    assert merged == [item for _, item in whole.items()]
    assert len(set(merged)) == 50


def test_bottom_k_needs_room() -> None:
    with pytest.raises(ValueError):
        BottomK(0)


@pytest.mark.parametrize(
    ("rules", "covered"),
    [
        ([expiration_rule(7)], True),
        ([{"Status": "Enabled", "Filter": {}, "Expiration": {"Days": 30}}], True),
        ([{"Status": "Enabled", "Prefix": "", "Expiration": {"Days": 30}}], True),
        ([{"Status": "Enabled", "Filter": {"Prefix": "s3br-"}, "Expiration": {"Date": "2030-01-01"}}], True),
        ([{**expiration_rule(7), "Status": "Disabled"}], False),
        ([{"Status": "Enabled", "Filter": {"Prefix": "s3br-drill/x/"}, "Expiration": {"Days": 1}}], False),
        (
            [{"Status": "Enabled", "Filter": {"Tag": {"Key": "a", "Value": "b"}}, "Expiration": {"Days": 1}}],
            False,
        ),
        ([{"Status": "Enabled", "Filter": {"Prefix": "s3br-drill/"}, "Transitions": []}], False),
        ([], False),
    ],
)
def test_expiration_covers_every_drill_object_or_not(rules: list, covered: bool) -> None:
    assert expiration_covers(rules) is covered


def head(body_crc: str = "AAAA", **changes: object) -> dict:
    found = {
        "ContentLength": 5,
        "ChecksumCRC64NVME": body_crc,
        "ChecksumType": "FULL_OBJECT",
        "ContentType": "text/plain",
        "Metadata": {"m": "1"},
        "LastModified": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return found | changes


def test_differences_name_what_a_restored_object_lacks() -> None:
    assert differences(head(), head(), {"t": "1"}, {"t": "1"}) == []
    assert differences(head(), head(), {"t": "1", "Deleted": "True"}, {"t": "1"}) == []
    found = differences(head(), head("BBBB", ContentType="x/y", Metadata={}), {"t": "1"}, {})
    assert found == ["bytes differ", "Content-Type 'x/y' != 'text/plain'", "metadata differs", "tags differ"]
    assert differences(head(), head(ContentLength=6), {}, {})[0] == "size 6 != 5"
    unknown = {"ChecksumCRC64NVME": None, "ETag": '"abc-2"'}
    assert differences(head(**unknown), head(**unknown), {}, {}) == ["bytes unknown"]


def test_the_source_counts_when_not_modified_after_its_backup() -> None:
    backup = head(LastModified=datetime(2026, 1, 2, tzinfo=UTC))
    assert unchanged_since_backup(head(), backup)
    assert unchanged_since_backup(head(ContentLength=9), backup)  # the backup changed, not the source
    assert not unchanged_since_backup(head(LastModified=datetime(2026, 1, 3, tzinfo=UTC)), backup)
    assert not unchanged_since_backup(None, backup)


def test_full_restore_estimate_adds_the_archived_tiers_retrieval() -> None:
    classes = {"STANDARD": {"objects": 1000, "bytes": 10_000_000}, "GLACIER": {"objects": 10, "bytes": 1000}}
    estimate = full_restore_estimate(classes, seconds=2.0, objects=100, size=1_000_000)
    assert (estimate["bytes_per_second"], estimate["objects_per_second"]) == (500_000.0, 50.0)
    assert estimate["copy_seconds"] == pytest.approx(20.2)  # 1,010 objects at 50/s > 10 MB at 0.5 MB/s
    assert estimate["retrieval_seconds"] == 5 * 3600
    assert estimate["full_restore_seconds"] == pytest.approx(20.2 + 5 * 3600)
    assert full_restore_estimate({}, seconds=1.0, objects=0, size=0)["full_restore_seconds"] == 0


def test_drill_keys_live_under_the_run() -> None:
    assert drill_key("manual__2026", "a/b.txt") == "s3br-drill/manual__2026/a/b.txt"
