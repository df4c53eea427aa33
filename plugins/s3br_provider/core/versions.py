"""Point-in-time selection over ListObjectVersions output."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from s3br_provider.core.objects import ObjectInfo


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One version of a key, or a delete marker (``obj`` is None)."""

    key: str
    last_modified: float
    obj: ObjectInfo | None


def version_as_of(entries: Iterable[VersionEntry], as_of: float) -> ObjectInfo | None:
    """Return the version of one key that was current at ``as_of``, or None.

    None when the key did not exist yet or its newest entry at that instant is a delete marker.
    """
    best: VersionEntry | None = None
    for entry in entries:
        if entry.last_modified <= as_of and (best is None or entry.last_modified > best.last_modified):
            best = entry
    return None if best is None else best.obj


def group_by_key(entries: Iterable[VersionEntry]) -> Iterator[list[VersionEntry]]:
    """Group consecutive entries of the same key (a listing sorted by key)."""
    group: list[VersionEntry] = []
    for entry in entries:
        if group and entry.key != group[0].key:
            yield group
            group = []
        group.append(entry)
    if group:
        yield group


def objects_as_of(entries: Iterable[VersionEntry], as_of: float) -> Iterator[ObjectInfo]:
    """Yield, in key order, the object version current at ``as_of`` for every key."""
    for group in group_by_key(entries):
        chosen = version_as_of(group, as_of)
        if chosen is not None:
            yield chosen
