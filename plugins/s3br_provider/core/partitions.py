"""Key-range partitions ``(start_after, end]`` and how to plan them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Keys ``k`` with ``start_after < k <= end``; ``None`` means unbounded on that side."""

    start_after: str | None = None
    end: str | None = None

    def __post_init__(self) -> None:
        if self.start_after is not None and self.end is not None and self.start_after >= self.end:
            raise ValueError(f"empty key range: start_after {self.start_after!r} >= end {self.end!r}")

    def contains(self, key: str) -> bool:
        """Return whether ``key`` lies in the range."""
        if self.start_after is not None and key <= self.start_after:
            return False
        return self.end is None or key <= self.end

    def is_past(self, key: str) -> bool:
        """Return whether ``key`` sorts after the range (a sorted listing can stop there)."""
        return self.end is not None and key > self.end

    @property
    def label(self) -> str:
        """Human-readable form for the Airflow UI, e.g. ``('a/', 'm/']``."""
        low = "-inf" if self.start_after is None else repr(self.start_after)
        high = "+inf" if self.end is None else repr(self.end)
        return f"({low}, {high}]"

    def to_dict(self) -> dict[str, str | None]:
        return {"start_after": self.start_after, "end": self.end}

    @classmethod
    def from_dict(cls, data: dict) -> KeyRange:
        return cls(start_after=data.get("start_after"), end=data.get("end"))


UNORDERED_LISTING = "unordered_listing"
"""Key of a planned partition (the only one) on an endpoint that lists out of S3's byte order:
its diff lists and sorts the whole range at once instead of first trying the order."""
SORTED_LOCALLY = "sorted_locally"
"""Key of a diff's result: the endpoint listed the partition out of order and diff sorted it
(the report then keeps ``unordered_listing`` in the statistics, for the next plans)."""


def ranges_from_boundaries(boundaries: Iterable[str]) -> list[KeyRange]:
    """Split the whole key space at sorted, distinct ``boundaries``.

    ``[b1, b2]`` gives ``(-inf, b1]``, ``(b1, b2]``, ``(b2, +inf)``.
    """
    points = sorted(set(boundaries))
    edges: list[str | None] = [None, *points, None]
    return [KeyRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def even_boundaries(boundaries: Sequence[str], max_ranges: int) -> list[str]:
    """Keep at most ``max_ranges - 1`` of sorted ``boundaries`` so the ranges between them hold
    equal shares (within one) of the groups the full list separates."""
    groups = len(boundaries) + 1
    if groups <= max_ranges:
        return list(boundaries)
    return [boundaries[j * groups // max_ranges - 1] for j in range(1, max_ranges)]


def plan_from_samples(
    samples: Sequence[tuple[str, int]], *, target_keys: int, max_partitions: int
) -> list[KeyRange]:
    """Plan ranges holding about ``target_keys`` keys each from weighted key samples.

    ``samples`` are ``(key, weight)`` pairs, sorted by key, where ``weight`` is how many keys the
    sample stands for (what the last run's diff tasks recorded). Partitions are sized by work,
    not by a fixed count, and never exceed ``max_partitions``.
    """
    _check_max(max_partitions)
    total = sum(weight for _, weight in samples)
    if total == 0 or not samples:
        return [KeyRange()]
    wanted = max(1, min(max_partitions, -(-total // max(1, target_keys))))
    return ranges_from_boundaries(even_cuts(samples, wanted))


def even_cuts(samples: Sequence[tuple[str, int]], parts: int) -> list[str]:
    """At most ``parts - 1`` keys of weighted, key-sorted ``samples`` that cut them into
    ``parts`` runs of about equal weight: each cut is the first sample at which the weight seen
    so far reaches the next multiple of ``total / parts`` (exact, in integers)."""
    total = sum(weight for _, weight in samples)
    cuts: list[str] = []
    seen = 0
    for key, weight in samples:
        if len(cuts) >= parts - 1:
            break
        seen += weight
        if seen * parts >= total * (len(cuts) + 1):
            cuts.append(key)
    return cuts


LIST_SPLITS = "list_splits"
"""Key of a planned partition: keys inside its range where its diff cuts the listing into
sub-ranges listed side by side (``split_points``), so a partition sized for little work still
lists as fast as several; absent or empty: one listing."""
MAX_LIST_SPLITS = 7
"""Split points per partition at most (eight sub-ranges): bounds the plan's XCom and the
listing requests a split adds (at most one partly filled page per sub-range and bucket)."""


def split_points(
    samples: Sequence[tuple[str, int]],
    key_range: KeyRange,
    *,
    keys_per_split: int,
    max_splits: int = MAX_LIST_SPLITS,
) -> list[str]:
    """Sample keys that cut ``key_range`` into sub-ranges of at least ``keys_per_split`` keys
    (by the samples' weights), as even as the samples allow, at most ``max_splits`` of them;
    none for a range of fewer than ``2 * keys_per_split`` keys."""
    if keys_per_split < 1:
        raise ValueError(f"keys_per_split must be at least 1, got {keys_per_split}")
    inside = [(key, weight) for key, weight in samples if key_range.contains(key) and key != key_range.end]
    total = sum(weight for _, weight in inside)
    parts = min(max_splits + 1, total // keys_per_split)
    return even_cuts(inside, parts) if parts >= 2 else []


def split_range(key_range: KeyRange, points: Iterable[str]) -> list[KeyRange]:
    """``key_range`` cut at those of ``points`` strictly inside it, in key order."""
    inside = sorted({p for p in points if key_range.contains(p) and p != key_range.end})
    edges: list[str | None] = [key_range.start_after, *inside, key_range.end]
    return [KeyRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


COPY_COST_IN_KEYS = 20
"""One CopyObject costs about as much task time as listing and diffing 20 keys on both sides
(measured: ~2.4 ms per copy against ~0.1 ms per listed key, bench/results)."""
ASSUMED_COPY_FRACTION = 0.05
"""Share of keys expected to change when no incremental run has been measured yet."""
MAX_LISTING_FACTOR = 10
"""Partitions of a run with little to copy hold at most this many times ``target_keys``: still
small enough to spread a large bucket's listing over many workers."""


def keys_per_partition(target_keys: int, copy_fraction: float | None) -> int:
    """Size partitions by expected work, not by key count alone.

    ``target_keys`` is the partition size when every key is copied. A run expected to copy
    only ``copy_fraction`` of its keys mostly lists; its partitions hold as much work in more
    keys, so fewer task start-ups are paid for the same bucket (at most ``MAX_LISTING_FACTOR``
    times more keys).
    """
    fraction = ASSUMED_COPY_FRACTION if copy_fraction is None else min(1.0, max(0.0, copy_fraction))
    factor = (1 + COPY_COST_IN_KEYS) / (1 + fraction * COPY_COST_IN_KEYS)
    return max(1, round(target_keys * min(factor, MAX_LISTING_FACTOR)))


def _check_max(max_partitions: int) -> None:
    if max_partitions < 1:
        raise ValueError(f"max_partitions must be at least 1, got {max_partitions}")
