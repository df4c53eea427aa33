"""Planning a first run from per-prefix key counts."""

from __future__ import annotations

import pytest

from s3br_provider.core.partitions import KeyRange, plan_from_prefix_counts


def keys_in(ranges: list[KeyRange], key: str) -> int:
    return sum(r.contains(key) for r in ranges)


def test_small_prefixes_are_grouped_up_to_the_target() -> None:
    counts = [(f"p{i:02d}/", 100, False) for i in range(50)]  # 5,000 keys in all
    ranges = plan_from_prefix_counts(counts, target_keys=1000, max_partitions=64)
    assert len(ranges) == 5
    assert all(keys_in(ranges, f"p{i:02d}/x") == 1 for i in range(50))


def test_a_truncated_prefix_gets_a_range_of_its_own() -> None:
    counts = [("a/", 10, False), ("b/", 1000, True), ("c/", 10, False)]
    ranges = plan_from_prefix_counts(counts, target_keys=500, max_partitions=64)
    assert [r for r in ranges if r.contains("b/x")] == [KeyRange("b/", "c/")]


@pytest.mark.parametrize("max_partitions", [1, 2, 3])
def test_never_more_than_max_partitions(max_partitions: int) -> None:
    counts = [(f"p{i:02d}/", 1000, True) for i in range(20)]
    ranges = plan_from_prefix_counts(counts, target_keys=10, max_partitions=max_partitions)
    assert len(ranges) == max_partitions
    assert all(keys_in(ranges, f"p{i:02d}/k") == 1 for i in range(20))


def test_everything_fits_in_one_range() -> None:
    counts = [("a/", 3, False), ("b/", 4, False)]
    assert plan_from_prefix_counts(counts, target_keys=5000, max_partitions=64) == [KeyRange()]
