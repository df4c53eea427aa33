"""Point-in-time selection over ListObjectVersions output."""

from __future__ import annotations

import random

import pytest

from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.versions import VersionEntry, group_by_key, objects_as_of, version_as_of


def version(key: str, when: float, version_id: str) -> VersionEntry:
    return VersionEntry(key, when, ObjectInfo(key, 1, "e", when, version_id=version_id))


def delete_marker(key: str, when: float) -> VersionEntry:
    return VersionEntry(key, when, None)


# S3 lists the versions of a key newest first.
HISTORY = [version("a", 400, "v3"), delete_marker("a", 300), version("a", 200, "v2"), version("a", 100, "v1")]


def chosen(entries: list[VersionEntry], as_of: float) -> str | None:
    obj = version_as_of(entries, as_of)
    return None if obj is None else obj.version_id


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (50, None),
        (99.999, None),
        (100, "v1"),
        (150, "v1"),
        (200, "v2"),
        (299, "v2"),
        (300, None),
        (350, None),
        (400, "v3"),
        (10_000, "v3"),
    ],
)
def test_version_as_of(as_of: float, expected: str | None) -> None:
    assert chosen(HISTORY, as_of) == expected


@pytest.mark.parametrize("seed", range(5))
def test_version_as_of_does_not_depend_on_listing_order(seed: int) -> None:
    shuffled = HISTORY[:]
    random.Random(seed).shuffle(shuffled)
    assert [chosen(shuffled, t) for t in (50, 150, 250, 350, 450)] == [None, "v1", "v2", None, "v3"]


def test_version_as_of_of_no_entries() -> None:
    assert version_as_of([], 100) is None


def test_objects_as_of_over_several_keys() -> None:
    entries = [
        *HISTORY,
        version("b", 500, "b2"),  # created after the instant, overwriting an older one
        version("b", 50, "b1"),
        version("c", 500, "c1"),  # did not exist yet
        delete_marker("d", 120),  # deleted before the instant
        version("d", 110, "d1"),
        version("é 😀", 10, "u1"),
    ]
    result = list(objects_as_of(entries, 250))
    assert [(o.key, o.version_id) for o in result] == [("a", "v2"), ("b", "b1"), ("é 😀", "u1")]


def test_objects_as_of_nothing() -> None:
    assert list(objects_as_of([], 250)) == []


def test_group_by_key_groups_consecutive_entries() -> None:
    entries = [version("a", 2, "a2"), version("a", 1, "a1"), delete_marker("b", 3), version("c", 1, "c1")]
    assert [[e.key for e in group] for group in group_by_key(entries)] == [["a", "a"], ["b"], ["c"]]
    assert [len(g) for g in group_by_key(iter(entries))] == [2, 1, 1]
    assert list(group_by_key([])) == []
