"""Key-space statistics kept between runs."""

from __future__ import annotations

import random

import pytest

from s3br_provider.core.keys import is_reserved
from s3br_provider.core.manifest import split_s3_uri
from s3br_provider.core.stats import (
    MAX_SAMPLES,
    decode_copy_fraction,
    decode_stats,
    decode_unordered_listing,
    encode_stats,
    measured_copy_fraction,
    merge_samples,
    stats_uri,
)


def test_stats_uri_is_stable_per_prefix() -> None:
    assert stats_uri("backup-bucket", "photos/") == stats_uri("backup-bucket", "photos/")


@pytest.mark.parametrize(("a", "b"), [("", "photos/"), ("photos/", "photos"), ("a/", "b/"), ("é/", "e/")])
def test_stats_uri_differs_per_prefix(a: str, b: str) -> None:
    assert stats_uri("backup-bucket", a) != stats_uri("backup-bucket", b)


def test_stats_uri_lies_in_the_reserved_prefix_of_the_backup_bucket() -> None:
    bucket, key = split_s3_uri(stats_uri("backup-bucket", "photos/ é 😀"))
    assert bucket == "backup-bucket"
    assert is_reserved(key) and key.startswith("_s3br/stats/") and key.endswith(".json")


def test_merge_under_the_limit_concatenates() -> None:
    parts = [[("a", 1), ("b", 2)], [], [("c", 3)]]
    assert merge_samples(parts, limit=10) == [("a", 1), ("b", 2), ("c", 3)]


@pytest.mark.parametrize("limit", [1, 2, 7, 100, 999])
def test_merge_thins_to_the_limit_keeping_the_weight(limit: int) -> None:
    rng = random.Random(limit)
    keys = sorted(f"k{i:05d}" for i in range(1000))
    parts = [[(k, rng.randint(1, 50)) for k in keys[i : i + 100]] for i in range(0, 1000, 100)]
    merged = merge_samples(parts, limit=limit)
    assert len(merged) <= limit
    assert sum(w for _, w in merged) == sum(w for part in parts for _, w in part)
    assert [k for k, _ in merged] == sorted({k for k, _ in merged})
    assert merged[-1][0] == keys[-1]


def test_merge_default_limit() -> None:
    parts = [[(f"k{i:06d}", 1) for i in range(10_000)]]
    merged = merge_samples(parts)
    assert len(merged) <= MAX_SAMPLES
    assert sum(w for _, w in merged) == 10_000


def test_encode_decode_round_trip() -> None:
    samples = [("photos/é 😀", 256), ("photos/中文 +%//", 300)]
    assert decode_stats(encode_stats("photos/", samples), "photos/") == samples


def test_decode_of_another_prefix_is_empty() -> None:
    assert decode_stats(encode_stats("photos/", [("photos/a", 1)]), "videos/") == []


@pytest.mark.parametrize(
    "body",
    [
        None,
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"photos/"',
        b"null",
        b'{"prefix": "photos/", "samples": [["a"]]}',
        b'{"prefix": "photos/", "samples": [["a", "many"]]}',
        b'{"prefix": "photos/", "samples": 5}',
    ],
)
def test_decode_of_garbage_is_empty(body: bytes | None) -> None:
    assert decode_stats(body, "photos/") == []


def test_copy_fraction_round_trips_and_is_optional() -> None:
    samples = [("a", 3)]
    assert decode_copy_fraction(encode_stats("", samples, 0.0123), "") == pytest.approx(0.0123)
    assert decode_copy_fraction(encode_stats("", samples), "") is None
    assert decode_copy_fraction(encode_stats("", samples, 0.5), "other/") is None
    assert decode_copy_fraction(None, "") is None
    assert decode_copy_fraction(b'{"prefix": "", "copy_fraction": "lots"}', "") is None
    assert decode_copy_fraction(b'{"prefix": "", "copy_fraction": 3}', "") is None
    assert decode_copy_fraction(b'{"prefix": "", "copy_fraction": true}', "") is None
    assert decode_stats(encode_stats("", samples, 0.5), "") == samples


def test_measured_copy_fraction_counts_new_and_changed_of_an_incremental_run() -> None:
    def row(source: int, backup: int, new: int, changed: int) -> dict:
        return {"diff": {"source_objects": source, "backup_objects": backup, "new": new, "changed": changed}}

    assert measured_copy_fraction([row(100, 98, 2, 3), row(100, 100, 0, 5)]) == pytest.approx(0.05)
    assert measured_copy_fraction([row(100, 0, 100, 0)]) is None  # filled an empty backup
    assert measured_copy_fraction([row(0, 5, 0, 0)]) is None  # nothing listed in the source
    assert measured_copy_fraction([{"diff": None}, row(10, 10, 0, 1)]) == pytest.approx(0.1)


def test_an_unordered_listing_is_kept_for_the_prefix_only() -> None:
    body = encode_stats("logs/", [("logs/a", 3)], unordered_listing=True)
    assert decode_unordered_listing(body, "logs/") is True
    assert decode_unordered_listing(body, "other/") is False
    assert decode_unordered_listing(encode_stats("logs/", [("logs/a", 3)]), "logs/") is False
    assert decode_unordered_listing(None, "logs/") is False
    assert decode_stats(body, "logs/") == [("logs/a", 3)]
