"""Planning partitions of an unknown key space by probing it (pure: a fake listing answers).

The key spaces are synthetic, of the shapes real buckets have: sequential, hashed, timestamped,
Unicode, and skewed (a hot prefix next to many small ones, tenants of Zipf-distributed sizes).
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import pytest

from s3br_provider.core.keys import s3_sort_key
from s3br_provider.core.partitions import KeyRange
from s3br_provider.core.probe_plan import PROBES_PER_PARTITION, SEARCH_PROBES, ProbedPlan, plan_by_probing

MILLION = 1_000_000


class FakeListing:
    """ListObjectsV2 over a sorted list: ``probe(start_after, max_keys)``, counting requests."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(keys, key=s3_sort_key)  # S3's order: UTF-8 bytes
        self.calls = 0
        self._lock = threading.Lock()

    def probe(self, start_after: str | None, max_keys: int) -> list[str]:
        with self._lock:
            self.calls += 1
        first = 0 if start_after is None else bisect.bisect_right(self.keys, start_after)
        return self.keys[first : first + max_keys]

    def sizes(self, ranges: list[KeyRange]) -> list[int]:
        """Keys in each range, counted independently of the planner."""
        counts = []
        for key_range in ranges:
            low = (
                0 if key_range.start_after is None else bisect.bisect_right(self.keys, key_range.start_after)
            )
            high = len(self.keys) if key_range.end is None else bisect.bisect_right(self.keys, key_range.end)
            counts.append(high - low)
        return counts


def sequential(n: int) -> list[str]:
    return [f"key-{i:07d}" for i in range(n)]


def hashed(n: int) -> list[str]:
    return [hashlib.sha1(str(i).encode()).hexdigest() for i in range(n)]


def timestamped(n: int) -> list[str]:
    rng, stamp, keys = random.Random(1), 1_700_000_000_000, []
    for _ in range(n):
        stamp += rng.randint(1, 2000)
        keys.append(f"logs/{stamp}-{rng.randrange(16**6):06x}.json")
    return keys


def unicode_names(n: int) -> list[str]:
    rng, alphabet = random.Random(2), "aé日本語😀🚀/ -_üabcde"
    chars, lengths = rng.choices(alphabet, k=14 * n), rng.choices(range(4, 15), k=n)
    keys, at = set(), 0
    for length in lengths:
        keys.add("".join(chars[at : at + length]))
        at += length
    return list(keys)


def hot_and_cold(n: int) -> list[str]:
    """90% flat hashed names under ``hot/``, 10% under 50 numbered sub-prefixes of ``cold/``,
    and a lone key at each end."""
    rng = random.Random(3)
    keys = [f"hot/{hashlib.md5(str(i).encode()).hexdigest()}" for i in range(n * 9 // 10)]
    keys += [f"cold/{rng.randrange(50):02d}/{i:06d}" for i in range(n - len(keys) - 2)]
    return [*keys, "a", "zzz/last"]


def tenants(n: int) -> list[str]:
    """200 tenants of Zipf-distributed sizes (the largest holds about 17% of the keys)."""
    rng = random.Random(4)
    owners = rng.choices(range(200), [1 / (r + 1) for r in range(200)], k=n)
    return list({f"tenant-{owner:03d}/{rng.randrange(10**9):09d}" for owner in owners})


SPACES: dict[str, Callable[[int], list[str]]] = {
    "sequential": sequential,
    "hashed": hashed,
    "timestamped": timestamped,
    "unicode": unicode_names,
    "hot_and_cold": hot_and_cold,
    "tenants": tenants,
}


@cache
def space(name: str, n: int) -> tuple[str, ...]:
    return tuple(SPACES[name](n))


def plan(listing: FakeListing, **kwargs: int) -> ProbedPlan:
    return plan_by_probing(listing.probe, **kwargs)


def assert_tiles_key_space(ranges: list[KeyRange]) -> None:
    """Contiguous ranges from -inf to +inf: every key lies in exactly one (no gap, no overlap)."""
    assert ranges[0].start_after is None and ranges[-1].end is None
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert before.end is not None and before.end == after.start_after
    ends = [r.end for r in ranges[:-1]]
    assert ends == sorted(ends, key=s3_sort_key) == sorted(ends)  # UTF-8 byte order = str order
    assert len(set(ends)) == len(ends)


def assert_cut_at_listed_keys(ranges: list[KeyRange], listing: FakeListing) -> None:
    """Every boundary is a key of the listing: an endpoint that walks directories (SeaweedFS)
    answers ``StartAfter`` at a string that is no key by skipping a whole directory
    (``StartAfter=d24`` lists from ``d25/``), while at a listed key it resumes right after it."""
    for key_range in ranges[:-1]:
        end = key_range.end
        assert end is not None
        i = bisect.bisect_left(listing.keys, end)
        assert i < len(listing.keys) and listing.keys[i] == end, f"cut at {end!r}, which is no key"


def assert_within_budget(result: ProbedPlan, listing: FakeListing) -> None:
    assert result.probes == listing.calls
    assert listing.calls <= max(SEARCH_PROBES, PROBES_PER_PARTITION * len(result.ranges))


@pytest.mark.parametrize("name", sorted(SPACES))
def test_a_million_keys_split_into_target_sized_ranges(name: str) -> None:
    listing, target = FakeListing(list(space(name, MILLION))), 5000
    result = plan(listing, target_keys=target, max_partitions=1024)
    assert_tiles_key_space(result.ranges)
    assert_cut_at_listed_keys(result.ranges, listing)
    sizes = listing.sizes(result.ranges)
    assert sum(sizes) == len(listing.keys)
    assert_within_budget(result, listing)
    assert MILLION / target / 2 <= len(result.ranges) <= 2 * MILLION / target
    in_big = sum(size for size in sizes if size > 2 * target)
    assert in_big <= 0.02 * MILLION, sorted(sizes)[-5:]
    assert max(sizes) <= 3 * target, sorted(sizes)[-5:]


class DatedKeys(Sequence[str]):
    """``n`` sorted keys computed from their index, ``logs/DDDDD/NNNNNNNNNN.json`` (bench/scale.py's
    shape): the day repeated in the file name leaves most of the positions between probes empty,
    so gap estimates are poor and the probes cannot split every gap."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not 0 <= i < self.n:
            raise IndexError(i)
        return f"logs/{i // 100_000:05d}/{i:010d}.json"


def test_ten_million_dated_keys_are_cut_at_listed_keys_within_the_budget() -> None:
    """Where probes cannot split every gap (the budget is kept against the partitions the
    estimate calls for, here the 1,024 cap), partitions grow, and every cut is still a key the
    endpoint listed (see ``assert_cut_at_listed_keys``)."""
    listing = FakeListing([])
    listing.keys = DatedKeys(10 * MILLION)  # type: ignore[assignment]
    result = plan(listing, target_keys=5000, max_partitions=1024)
    assert_tiles_key_space(result.ranges)
    assert_cut_at_listed_keys(result.ranges, listing)
    assert sum(listing.sizes(result.ranges)) == 10 * MILLION
    assert listing.calls == result.probes <= PROBES_PER_PARTITION * 1024
    assert len(result.ranges) >= 1024 / 2


@pytest.mark.parametrize("name", sorted(SPACES))
def test_partitions_smaller_than_a_page_are_exact(name: str) -> None:
    listing, target = FakeListing(list(space(name, 100_000))), 80
    result = plan(listing, target_keys=target, max_partitions=10_000)
    assert_tiles_key_space(result.ranges)
    sizes = listing.sizes(result.ranges)
    assert result.exact and result.estimated_keys == len(listing.keys) == sum(sizes)
    assert max(sizes) <= target and min(sizes[:-1]) >= target / 2
    assert_within_budget(result, listing)


def two_prefixes() -> list[str]:
    """The issue's bucket: 9,000 flat keys under ``hot/``, 1,000 under 50 sub-prefixes of ``cold/``."""
    hot = [f"hot/{i:05d}.bin" for i in range(9000)]
    cold = [f"cold/{p:02d}/{i:03d}.bin" for p in range(50) for i in range(20)]
    return hot + cold


def test_the_two_prefix_bucket_splits_into_partitions_of_the_target() -> None:
    listing = FakeListing(two_prefixes())
    result = plan(listing, target_keys=80, max_partitions=1024)
    sizes = listing.sizes(result.ranges)
    assert_tiles_key_space(result.ranges)
    assert len(result.ranges) == 125 and max(sizes) <= 80
    assert listing.calls <= PROBES_PER_PARTITION * len(result.ranges)


@pytest.mark.parametrize("max_partitions", [1, 2, 7, 64])
def test_never_more_than_max_partitions(max_partitions: int) -> None:
    listing = FakeListing(list(space("hashed", 100_000)))
    result = plan(listing, target_keys=10, max_partitions=max_partitions)
    assert len(result.ranges) <= max_partitions
    assert_tiles_key_space(result.ranges)
    sizes = listing.sizes(result.ranges)
    assert sum(sizes) == 100_000 and max(sizes) <= 2.5 * 100_000 / max_partitions


def test_an_empty_key_space_is_one_range_after_one_probe() -> None:
    listing = FakeListing([])
    result = plan(listing, target_keys=10, max_partitions=64)
    assert result.ranges == [KeyRange()] and result.probes == 1 and result.exact


def test_a_key_space_of_one_page_is_cut_exactly_after_one_probe() -> None:
    listing = FakeListing([f"k{i:03d}" for i in range(950)])
    result = plan(listing, target_keys=100, max_partitions=64)
    assert listing.calls == 1 and result.exact
    assert listing.sizes(result.ranges) == [100] * 9 + [50]


def test_a_key_space_smaller_than_the_target_stays_one_range() -> None:
    listing = FakeListing(list(space("hashed", 3000)))
    result = plan(listing, target_keys=5000, max_partitions=64)
    assert len(result.ranges) <= 2 and listing.calls <= SEARCH_PROBES


@pytest.mark.parametrize("seed", range(40))
def test_random_key_spaces_are_covered_exactly_once(seed: int) -> None:
    """Property: any key space, target and page size is tiled with no gap and no overlap."""
    rng = random.Random(seed)
    alphabet = rng.choice(["ab", "0123456789", "ab/+% é😀\U0010fffd", "xyz/日本"])
    keys = {"".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(rng.randint(0, 3000))}
    listing = FakeListing(list(keys))
    result = plan(
        listing, target_keys=rng.randint(1, 400), max_partitions=rng.randint(1, 300), page=rng.randint(2, 60)
    )
    assert_tiles_key_space(result.ranges)
    assert_cut_at_listed_keys(result.ranges, listing)
    assert len(result.ranges) <= 300
    for key in rng.sample(sorted(keys), min(300, len(keys))):
        assert sum(r.contains(key) for r in result.ranges) == 1, key
    assert sum(listing.sizes(result.ranges)) == len(keys)


def test_probes_run_in_parallel_within_the_worker_bound() -> None:
    listing, lock = FakeListing(list(space("hashed", MILLION))), threading.Lock()
    in_flight, peak = 0, 0

    def probe(start_after: str | None, max_keys: int) -> list[str]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.002)  # a request takes a while: let others start meanwhile
        try:
            return listing.probe(start_after, max_keys)
        finally:
            with lock:
                in_flight -= 1

    plan_by_probing(probe, target_keys=5000, max_partitions=1024, workers=4)
    assert 2 <= peak <= 4


def test_a_failing_probe_fails_the_plan() -> None:
    def probe(start_after: str | None, max_keys: int) -> list[str]:
        if start_after is not None:
            raise OSError("listing failed")
        return [f"{i:06d}" for i in range(max_keys)]

    with pytest.raises(OSError, match="listing failed"):
        plan_by_probing(probe, target_keys=10, max_partitions=64)


@pytest.mark.parametrize("kwargs", [{"target_keys": 0}, {"max_partitions": 0}, {"page": 1}])
def test_bad_arguments_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="need target_keys"):
        plan_by_probing(lambda s, m: [], **{"target_keys": 10, "max_partitions": 64, **kwargs})
