"""Key-range partitions and how they are planned."""

from __future__ import annotations

import bisect
import random

import pytest

from s3br_provider.core.partitions import (
    MAX_LIST_SPLITS,
    MAX_LISTING_FACTOR,
    KeyRange,
    even_boundaries,
    even_cuts,
    keys_per_partition,
    plan_from_samples,
    ranges_from_boundaries,
    split_points,
    split_range,
)
from s3br_provider.core.sampler import KeySampler


def holders(ranges: list[KeyRange], key: str) -> list[int]:
    return [i for i, key_range in enumerate(ranges) if key_range.contains(key)]


def assert_tiles_key_space(ranges: list[KeyRange]) -> None:
    """The ranges are contiguous, start and end unbounded: no gap and no overlap."""
    assert ranges[0].start_after is None
    assert ranges[-1].end is None
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert before.end is not None
        assert before.end == after.start_after


def keys_per_range(ranges: list[KeyRange], sorted_keys: list[str]) -> list[int]:
    counts = []
    for key_range in ranges:
        low = 0 if key_range.start_after is None else bisect.bisect_right(sorted_keys, key_range.start_after)
        high = len(sorted_keys) if key_range.end is None else bisect.bisect_right(sorted_keys, key_range.end)
        counts.append(high - low)
    return counts


@pytest.mark.parametrize(
    ("key", "inside"),
    [("a/", False), ("a", False), ("a/0", True), ("b", True), ("m/", True), ("m/0", False), ("z", False)],
)
def test_contains_is_open_below_and_closed_above(key: str, inside: bool) -> None:
    assert KeyRange("a/", "m/").contains(key) is inside


def test_unbounded_sides() -> None:
    assert KeyRange().contains("") and KeyRange().contains("\U0010ffff")
    assert KeyRange(end="m").contains("a") and not KeyRange(end="m").contains("n")
    assert KeyRange(start_after="m").contains("n") and not KeyRange(start_after="m").contains("m")


@pytest.mark.parametrize(
    ("key_range", "key", "past"),
    [
        (KeyRange("a", "m"), "m", False),
        (KeyRange("a", "m"), "m0", True),
        (KeyRange("a", "m"), "a", False),
        (KeyRange("a"), "\U0010ffff", False),
    ],
)
def test_is_past(key_range: KeyRange, key: str, past: bool) -> None:
    assert key_range.is_past(key) is past


@pytest.mark.parametrize(
    ("key_range", "label"),
    [
        (KeyRange("a/", "m/"), "('a/', 'm/']"),
        (KeyRange(), "(-inf, +inf]"),
        (KeyRange(end="m/"), "(-inf, 'm/']"),
        (KeyRange(start_after="m/"), "('m/', +inf]"),
    ],
)
def test_label(key_range: KeyRange, label: str) -> None:
    assert key_range.label == label


@pytest.mark.parametrize(
    "key_range", [KeyRange(), KeyRange("a"), KeyRange(end="z"), KeyRange("é/ 😀", "é/+%//")]
)
def test_dict_round_trip(key_range: KeyRange) -> None:
    data = key_range.to_dict()
    assert set(data) == {"start_after", "end"}
    assert KeyRange.from_dict(data) == key_range


def test_from_dict_of_an_empty_dict_is_everything() -> None:
    assert KeyRange.from_dict({}) == KeyRange()


@pytest.mark.parametrize(("start_after", "end"), [("b", "a"), ("a", "a")])
def test_empty_range_is_rejected(start_after: str, end: str) -> None:
    with pytest.raises(ValueError, match="empty key range"):
        KeyRange(start_after, end)


def test_no_boundaries_give_one_range() -> None:
    assert ranges_from_boundaries([]) == [KeyRange()]


def test_boundaries_are_sorted_and_deduplicated() -> None:
    assert ranges_from_boundaries(["m", "c", "m"]) == [KeyRange(None, "c"), KeyRange("c", "m"), KeyRange("m")]


def test_ranges_cover_random_keys_exactly_once() -> None:
    rng = random.Random(42)
    alphabet = "ab/+% é😀"
    keys = {"".join(rng.choices(alphabet, k=rng.randint(1, 6))) for _ in range(3000)}
    # Some boundaries are keys themselves (the inclusive end must hold them), some are not.
    boundaries = rng.sample(sorted(keys), 20) + ["".join(rng.choices(alphabet, k=3)) for _ in range(20)]
    ranges = ranges_from_boundaries(boundaries)
    assert_tiles_key_space(ranges)
    for key in keys:
        assert len(holders(ranges, key)) == 1, key


@pytest.mark.parametrize("max_partitions", [0, -1])
def test_plans_reject_max_partitions_below_one(max_partitions: int) -> None:
    with pytest.raises(ValueError, match="max_partitions"):
        plan_from_samples([("a", 1)], target_keys=10, max_partitions=max_partitions)


KEYS_100K = [f"k/{i:06d}" for i in range(100_000)]


def test_plan_from_samples_sizes_partitions_by_work() -> None:
    samples = [(key, 1) for key in KEYS_100K]
    ranges = plan_from_samples(samples, target_keys=20_000, max_partitions=64)
    assert len(ranges) == 5
    assert_tiles_key_space(ranges)
    assert keys_per_range(ranges, KEYS_100K) == [20_000] * 5


def test_plan_from_samples_of_a_sampler_is_balanced() -> None:
    sampler = KeySampler(capacity=256)
    for key in KEYS_100K:
        sampler.add(key)
    ranges = plan_from_samples(sampler.samples(), target_keys=20_000, max_partitions=64)
    counts = keys_per_range(ranges, KEYS_100K)
    assert len(ranges) == 5
    assert sum(counts) == 100_000
    assert all(abs(count - 20_000) <= 1_000 for count in counts), counts


@pytest.mark.parametrize("max_partitions", [1, 2, 3])
def test_plan_from_samples_respects_max_partitions(max_partitions: int) -> None:
    samples = [(key, 1) for key in KEYS_100K[::10]]
    ranges = plan_from_samples(samples, target_keys=100, max_partitions=max_partitions)
    assert len(ranges) == max_partitions
    assert_tiles_key_space(ranges)


@pytest.mark.parametrize("samples", [[], [("a", 0), ("b", 0)]])
def test_plan_from_samples_without_weight_is_one_range(samples: list[tuple[str, int]]) -> None:
    assert plan_from_samples(samples, target_keys=20_000, max_partitions=64) == [KeyRange()]


def test_plan_from_samples_below_target_is_one_range() -> None:
    samples = [("a", 5_000), ("m", 5_000), ("z", 5_000)]
    assert plan_from_samples(samples, target_keys=20_000, max_partitions=64) == [KeyRange()]


def test_plan_from_samples_with_one_heavy_sample_does_not_repeat_a_boundary() -> None:
    ranges = plan_from_samples([("a", 1), ("m", 100_000), ("z", 1)], target_keys=10_000, max_partitions=64)
    assert_tiles_key_space(ranges)
    assert len(ranges) <= 3


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 10])
def test_even_cuts_of_equal_weights_are_exact(parts: int) -> None:
    samples = [(f"k{i:03d}", 1) for i in range(210)]
    cuts = even_cuts(samples, parts)
    keys = [key for key, _ in samples]
    assert cuts == [keys[210 * j // parts - 1] for j in range(1, parts)]


def test_even_cuts_are_distinct_sorted_and_at_most_parts_minus_one() -> None:
    rng = random.Random(7)
    for _ in range(200):
        samples = sorted(
            (f"k{rng.randrange(10**6):06d}", rng.randrange(0, 50)) for _ in range(rng.randrange(1, 40))
        )
        samples = list(dict(samples).items())
        parts = rng.randrange(1, 12)
        cuts = even_cuts(samples, parts)
        assert len(cuts) <= parts - 1
        assert cuts == sorted(set(cuts))


def test_even_boundaries_keeps_all_when_they_fit() -> None:
    assert even_boundaries(["a", "b", "c"], 4) == ["a", "b", "c"]
    assert even_boundaries(["a", "b", "c"], 10) == ["a", "b", "c"]


def test_even_boundaries_one_range() -> None:
    assert even_boundaries(["a", "b"], 1) == []


@pytest.mark.parametrize(("size", "ranges"), [(100, 7), (1000, 3), (10, 9), (64, 63), (99, 2)])
def test_even_boundaries_gives_equal_shares(size: int, ranges: int) -> None:
    items = [f"{i:04d}" for i in range(size)]
    picked = even_boundaries(items, ranges)
    assert len(picked) == ranges - 1
    assert picked == sorted(set(picked))
    edges = [-1, *(items.index(b) for b in picked), size - 1]
    shares = [b - a for a, b in zip(edges, edges[1:], strict=False)]
    assert max(shares) - min(shares) <= 1


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (1.0, 5_000),  # every key copied: the target itself
        (0.0, 50_000),  # nothing copied: capped at MAX_LISTING_FACTOR times the target
        (None, 50_000),  # unknown: a daily change of a few percent is assumed
        (0.5, 5_000 * 21 // 11),
        (0.1, 5_000 * 21 // 3),
        (7.0, 5_000),  # out-of-range fractions are clamped
        (-1.0, 50_000),
    ],
)
def test_keys_per_partition_follows_the_expected_work(fraction: float | None, expected: int) -> None:
    assert keys_per_partition(5_000, fraction) == pytest.approx(expected, abs=1)


def test_keys_per_partition_shrinks_as_the_change_rate_grows() -> None:
    sizes = [keys_per_partition(1_000, f / 100) for f in range(0, 101)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == 1_000 * MAX_LISTING_FACTOR and sizes[-1] == 1_000
    assert keys_per_partition(1, 1.0) == 1


def sampled(keys: list[str]) -> list[tuple[str, int]]:
    sampler = KeySampler()
    for key in keys:
        sampler.add(key)
    return sampler.samples()


@pytest.mark.parametrize(
    ("key_range", "share"),
    [(KeyRange(), 1.0), (KeyRange("k-020000", "k-080000"), 0.6), (KeyRange(None, "k-049999"), 0.5)],
    ids=["whole", "middle", "first"],
)
def test_split_points_cut_a_large_range_into_even_sub_ranges(key_range: KeyRange, share: float) -> None:
    keys = [f"k-{i:06d}" for i in range(100_000)]
    points = split_points(sampled(keys), key_range, keys_per_split=5_000)
    sub_ranges = split_range(key_range, points)

    assert len(sub_ranges) == MAX_LIST_SPLITS + 1  # 50,000 keys or more: capped at eight
    assert (sub_ranges[0].start_after, sub_ranges[-1].end) == (key_range.start_after, key_range.end)
    for before, after in zip(sub_ranges, sub_ranges[1:], strict=False):
        assert before.end == after.start_after
    inside = [k for k in keys if key_range.contains(k)]
    counts = [sum(1 for k in inside if r.contains(k)) for r in sub_ranges]
    assert sum(counts) == len(inside) == round(100_000 * share)
    assert max(counts) - min(counts) <= 2 * 512  # even within the samples' stride


def test_split_points_leave_a_range_of_less_than_two_splits_whole() -> None:
    keys = [f"k-{i:06d}" for i in range(9_999)]
    assert split_points(sampled(keys), KeyRange(), keys_per_split=5_000) == []
    assert len(split_points(sampled(keys), KeyRange(), keys_per_split=3_000)) == 2  # 3 x 3,333
    assert split_points([], KeyRange(), keys_per_split=5_000) == []
    with pytest.raises(ValueError, match="keys_per_split"):
        split_points([], KeyRange(), keys_per_split=0)


def test_split_range_keeps_only_points_strictly_inside() -> None:
    key_range = KeyRange("b", "m")
    assert split_range(key_range, []) == [key_range]
    assert split_range(key_range, ["a", "b", "m", "z", "f", "d", "f"]) == [
        KeyRange("b", "d"),
        KeyRange("d", "f"),
        KeyRange("f", "m"),
    ]
    assert split_range(KeyRange(), ["c"]) == [KeyRange(None, "c"), KeyRange("c", None)]
