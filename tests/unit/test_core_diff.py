"""The streaming merge-join that classifies every key of a backup run."""

from __future__ import annotations

import gc
import os
import random
import time
from collections import Counter
from collections.abc import Iterable

import pytest

from s3br_provider.core.diff import (
    Action,
    Compare,
    check_sorted,
    is_multipart_etag,
    merge_listings,
    needs_copy,
)
from s3br_provider.core.keys import s3_sort_key
from s3br_provider.core.objects import ObjectInfo

THROUGHPUT_KEYS = int(os.environ.get("S3BR_DIFF_KEYS", "200000"))
"""Keys per side in the throughput check; set S3BR_DIFF_KEYS=1000000 for the full-size figure."""


def obj(
    key: str, size: int = 10, mtime: float = 1000.0, etag: str = "d41d8cd98f00b204e9800998ecf8427e"
) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, etag=etag, last_modified=mtime)


def actions(
    source: Iterable[ObjectInfo], backup: Iterable[ObjectInfo], compare: Compare = Compare.SIZE_MTIME
) -> list[tuple[str, Action]]:
    result = []
    for action, src, dst in merge_listings(source, backup, compare):
        present = src if src is not None else dst
        assert present is not None
        result.append((present.key, action))
    return result


def test_source_only_key_is_new() -> None:
    source = obj("a")
    assert list(merge_listings([source], [], Compare.SIZE_MTIME)) == [(Action.NEW, source, None)]


def test_backup_only_key_vanished() -> None:
    backup = obj("a")
    assert list(merge_listings([], [backup], Compare.SIZE_MTIME)) == [(Action.VANISHED, None, backup)]


def test_both_empty() -> None:
    assert list(merge_listings([], [], Compare.SIZE_MTIME)) == []


def test_same_size_and_older_source_is_unchanged() -> None:
    source, backup = obj("a", mtime=1000.0), obj("a", mtime=2000.0)
    assert list(merge_listings([source], [backup], Compare.SIZE_MTIME)) == [
        (Action.UNCHANGED, source, backup)
    ]


def test_same_size_and_same_time_is_unchanged() -> None:
    assert actions([obj("a")], [obj("a")]) == [("a", Action.UNCHANGED)]


def test_size_change_is_changed_even_when_the_copy_is_newer() -> None:
    assert actions([obj("a", size=11, mtime=1000.0)], [obj("a", size=10, mtime=2000.0)]) == [
        ("a", Action.CHANGED)
    ]


def test_newer_source_is_changed() -> None:
    assert actions([obj("a", mtime=2000.5)], [obj("a", mtime=2000.0)]) == [("a", Action.CHANGED)]


def test_interleaved_keys() -> None:
    source = [obj("a"), obj("c"), obj("d", size=1), obj("f"), obj("h")]
    backup = [obj("b"), obj("c"), obj("d", size=2), obj("e"), obj("h", mtime=0.0), obj("i")]
    assert actions(source, backup) == [
        ("a", Action.NEW),
        ("b", Action.VANISHED),
        ("c", Action.UNCHANGED),
        ("d", Action.CHANGED),
        ("e", Action.VANISHED),
        ("f", Action.NEW),
        ("h", Action.CHANGED),
        ("i", Action.VANISHED),
    ]


def test_one_side_exhausted_first() -> None:
    assert actions([obj("a")], [obj("a"), obj("b"), obj("c")]) == [
        ("a", Action.UNCHANGED),
        ("b", Action.VANISHED),
        ("c", Action.VANISHED),
    ]
    assert actions([obj("a"), obj("b"), obj("c")], [obj("c")]) == [
        ("a", Action.NEW),
        ("b", Action.NEW),
        ("c", Action.UNCHANGED),
    ]


def test_merge_reads_lazily() -> None:
    def endless() -> Iterable[ObjectInfo]:
        i = 0
        while True:
            yield obj(f"{i:09d}")
            i += 1

    entries = merge_listings(endless(), endless(), Compare.SIZE_MTIME)
    assert [next(entries)[0] for _ in range(3)] == [Action.UNCHANGED] * 3


@pytest.mark.parametrize("compare", [Compare.CHECKSUM, "checksum"])
def test_checksum_checks_same_size_and_time_with_other_etags(compare: Compare) -> None:
    """Other ETags may hide the same bytes (SSE-KMS, part sizes): the objects' checksums tell."""
    assert actions([obj("a", etag="aaaa")], [obj("a", etag="bbbb")], compare) == [("a", Action.CHECK)]


def test_size_mtime_ignores_etags() -> None:
    assert actions([obj("a", etag="aaaa")], [obj("a", etag="bbbb")], Compare.SIZE_MTIME) == [
        ("a", Action.UNCHANGED)
    ]


def test_checksum_with_equal_etags_is_unchanged() -> None:
    assert actions([obj("a", etag="aaaa")], [obj("a", etag="aaaa")], Compare.CHECKSUM) == [
        ("a", Action.UNCHANGED)
    ]


@pytest.mark.parametrize(
    ("source_etag", "backup_etag"),
    [("aaaa-3", "bbbb"), ("aaaa", "bbbb-2"), ("aaaa-3", "bbbb-5")],
    ids=["multipart-source", "multipart-backup", "multipart-both"],
)
def test_checksum_checks_multipart_etags_unless_size_or_time_decide(
    source_etag: str, backup_etag: str
) -> None:
    """A multipart ETag says nothing of the bytes, but a full-object checksum may."""
    same = (obj("a", etag=source_etag), obj("a", etag=backup_etag))
    assert needs_copy(*same, Compare.CHECKSUM) is Action.CHECK
    assert needs_copy(*same, Compare.SIZE_MTIME) is Action.UNCHANGED
    bigger = obj("a", size=11, etag=source_etag), obj("a", etag=backup_etag)
    assert needs_copy(*bigger, Compare.CHECKSUM) is Action.CHANGED
    newer = obj("a", mtime=2000.0, etag=source_etag), obj("a", etag=backup_etag)
    assert needs_copy(*newer, Compare.CHECKSUM) is Action.CHANGED


@pytest.mark.parametrize(
    ("etag", "multipart"),
    [("d41d8cd98f00b204e9800998ecf8427e", False), ("9b2cf535f27731c974343645a3985328-12", True)],
)
def test_is_multipart_etag(etag: str, multipart: bool) -> None:
    assert is_multipart_etag(etag) is multipart


def test_check_sorted_passes_sorted_objects_through() -> None:
    objects = [obj("a"), obj("a/"), obj("a/b"), obj("b")]
    assert list(check_sorted(objects, "source")) == objects


@pytest.mark.parametrize(
    "keys", [["a", "c", "b"], ["a", "b", "b"], ["b", "a"]], ids=["unsorted", "duplicate", "reversed"]
)
def test_check_sorted_raises_naming_the_listing(keys: list[str]) -> None:
    with pytest.raises(ValueError, match="backup listing is not sorted"):
        list(check_sorted([obj(k) for k in keys], "backup"))


def test_check_sorted_yields_until_the_fault() -> None:
    checked = check_sorted([obj("a"), obj("b"), obj("a")], "source")
    assert [next(checked).key, next(checked).key] == ["a", "b"]
    with pytest.raises(ValueError):
        next(checked)


ODD_KEYS = [
    "a",
    "a b",
    "a+b",
    "a%2Fb",
    "a/",
    "a//",
    "a//b",
    "a/b/",
    "a.txt",
    "A",
    "é",
    "中文/",
    "\ufffd",
    "😀",
    "\U0001f600/x",
    " leading",
    "trailing ",
    "~",
    "x" * 1000,
]


def test_merge_over_odd_keys_sorted_as_s3_lists_them() -> None:
    rng = random.Random(3)
    in_source = {k for k in ODD_KEYS if rng.random() < 0.7}
    in_backup = {k for k in ODD_KEYS if rng.random() < 0.7} | {"only-backup/"}
    source = [obj(k) for k in sorted(in_source, key=s3_sort_key)]
    backup = [obj(k) for k in sorted(in_backup, key=s3_sort_key)]

    result = actions(check_sorted(source, "source"), check_sorted(backup, "backup"))

    assert [k for k, _ in result] == sorted(in_source | in_backup, key=s3_sort_key)
    expected = {k: Action.UNCHANGED for k in in_source & in_backup}
    expected |= {k: Action.NEW for k in in_source - in_backup}
    expected |= {k: Action.VANISHED for k in in_backup - in_source}
    assert dict(result) == expected


def test_merge_random_listings_matches_a_set_based_diff() -> None:
    rng = random.Random(11)
    keys = sorted({"".join(rng.choices("ab/+ é😀", k=rng.randint(1, 8))) for _ in range(5000)})
    source = {k: obj(k, size=rng.randint(1, 3)) for k in keys if rng.random() < 0.8}
    backup = {k: obj(k, size=rng.randint(1, 3)) for k in keys if rng.random() < 0.8}

    result = dict(actions((source[k] for k in keys if k in source), (backup[k] for k in keys if k in backup)))

    for key in keys:
        if key in source and key in backup:
            same = source[key].size == backup[key].size
            assert result[key] == (Action.UNCHANGED if same else Action.CHANGED), key
        elif key in source:
            assert result[key] == Action.NEW
        elif key in backup:
            assert result[key] == Action.VANISHED
        else:
            assert key not in result


@pytest.mark.parametrize("compare", list(Compare))
def test_merge_agrees_with_needs_copy_on_every_shared_key(compare: Compare) -> None:
    """The merge inlines the size and time rule for speed: it must still judge as needs_copy."""
    rng = random.Random(5)
    etags = ["aa", "bb", "aa-2", "bb-3"]
    pairs = [
        (
            ObjectInfo(f"k{i:05d}", rng.randint(1, 2), rng.choice(etags), float(rng.randint(1, 3))),
            ObjectInfo(f"k{i:05d}", rng.randint(1, 2), rng.choice(etags), float(rng.randint(1, 3))),
        )
        for i in range(2000)
    ]

    entries = list(merge_listings([s for s, _ in pairs], [b for _, b in pairs], compare))

    assert [action for action, _, _ in entries] == [needs_copy(s, b, compare) for s, b in pairs]
    assert [(src, dst) for _, src, dst in entries] == pairs
    judged = {Action.CHANGED, Action.UNCHANGED} | ({Action.CHECK} if compare is Compare.CHECKSUM else set())
    assert {action for action, _, _ in entries} == judged


def build_listings(n: int) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """Every 5th key only in the backup, every 4th only in the source, every 3rd changed size."""
    gc.disable()  # building 100ks of objects trips many full collections; that is not the merge
    try:
        source = [ObjectInfo(f"data/{i:09d}", 10 + (i % 3 == 0), "e", 1000.0) for i in range(n) if i % 5]
        backup = [ObjectInfo(f"data/{i:09d}", 10, "e", 1000.0) for i in range(n) if i % 4]
    finally:
        gc.enable()
    return source, backup


def test_merge_throughput() -> None:
    """Print keys per second of the merge-join; performance is reported, not asserted."""
    n = THROUGHPUT_KEYS
    source, backup = build_listings(n)
    gc.freeze()  # a streamed listing holds few objects at a time: keep these out of collections
    try:
        started = time.perf_counter()
        counts = Counter(action for action, _, _ in merge_listings(source, backup, Compare.SIZE_MTIME))
        elapsed = time.perf_counter() - started
    finally:
        gc.unfreeze()

    keys = len(source) + len(backup)
    rate = keys / elapsed
    print(f"\nmerge_listings: {keys} listed keys ({n} distinct) in {elapsed:.3f} s = {rate:,.0f} keys/s")
    both = [i for i in range(n) if i % 4 and i % 5]
    assert counts[Action.NEW] == sum(1 for i in range(n) if i % 5 and not i % 4)
    assert counts[Action.VANISHED] == sum(1 for i in range(n) if i % 4 and not i % 5)
    assert counts[Action.CHANGED] == sum(1 for i in both if i % 3 == 0)
    assert counts[Action.UNCHANGED] == sum(1 for i in both if i % 3)
