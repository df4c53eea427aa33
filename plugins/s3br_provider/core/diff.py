"""The streaming merge-join of a source and a backup listing (rclone's march, in Python)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator

from s3br_provider.core.objects import ObjectInfo


class Compare(enum.StrEnum):
    """How a source object is judged changed against its backup copy."""

    SIZE_MTIME = "size_mtime"
    CHECKSUM = "checksum"


class Action(enum.StrEnum):
    """What a backup run does with one key."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    VANISHED = "vanished"
    CHECK = "check"
    """``checksum`` only: size and time say unchanged but the ETags differ, so only the two
    objects' checksums can tell (HeadObject of both, ``core.fingerprints.content_differs``)."""


DiffEntry = tuple[Action, ObjectInfo | None, ObjectInfo | None]
"""``(action, source, backup)``: the source object is None for VANISHED, the backup for NEW."""


def is_multipart_etag(etag: str) -> bool:
    """Multipart ETags (``md5-of-parts-N``) depend on part sizes, not just on the content."""
    return "-" in etag


def needs_copy(source: ObjectInfo, backup: ObjectInfo, compare: Compare) -> Action:
    """Judge a key both listings hold: CHANGED, UNCHANGED or CHECK. All change rules live here.

    ``size_mtime``: sizes differ, or the source was modified after the copy was made.
    ``checksum``: equal ETags mean the same bytes (an MD5, or a multipart or KMS ETag S3 gave
    this very content); other ETags may still hide the same bytes (part sizes, SSE-KMS), so the
    key is CHECKed against the objects' checksums, listings carrying none.
    """
    if source.size != backup.size or source.last_modified > backup.last_modified:
        return Action.CHANGED
    if compare == Compare.CHECKSUM and source.etag != backup.etag:  # also a plain "checksum"
        return Action.CHECK
    return Action.UNCHANGED


def merge_listings(
    source: Iterable[ObjectInfo], backup: Iterable[ObjectInfo], compare: Compare
) -> Iterator[DiffEntry]:
    """Walk two listings sorted by key side by side and classify every key.

    O(n) time, O(1) memory: each listing is read once, one object at a time. Both inputs must
    be sorted the way S3 lists keys (UTF-8 byte order, which ``str`` comparison matches).

    This loop runs once per key of every bucket backed up, so it is written for speed: names
    bound to locals, entries yielded as plain tuples for the caller to unpack (a named tuple
    costs 20% of the whole join, built or read), and ``needs_copy``'s size and time rule
    inlined; under ``checksum`` a key they did not decide is CHECKed when its ETags differ.
    """
    checksum = Compare(compare) is Compare.CHECKSUM
    step = next
    new, changed, unchanged, vanished = Action.NEW, Action.CHANGED, Action.UNCHANGED, Action.VANISHED
    check = Action.CHECK
    src_iter, dst_iter = iter(source), iter(backup)
    src, dst = step(src_iter, None), step(dst_iter, None)
    while src is not None and dst is not None:
        src_key, dst_key = src.key, dst.key
        if src_key == dst_key:
            if src.size != dst.size or src.last_modified > dst.last_modified:
                yield changed, src, dst
            elif checksum and src.etag != dst.etag:
                yield check, src, dst
            else:
                yield unchanged, src, dst
            src, dst = step(src_iter, None), step(dst_iter, None)
        elif src_key < dst_key:
            yield new, src, None
            src = step(src_iter, None)
        else:
            yield vanished, None, dst
            dst = step(dst_iter, None)
    while src is not None:
        yield new, src, None
        src = step(src_iter, None)
    while dst is not None:
        yield vanished, None, dst
        dst = step(dst_iter, None)


class ListingNotSortedError(ValueError):
    """A listing came out of S3's UTF-8 byte order (some S3-compatible endpoints, SeaweedFS
    among them, list directory by directory: ``a/b`` before ``a-``)."""


def check_sorted(objects: Iterable[ObjectInfo], what: str) -> Iterator[ObjectInfo]:
    """Pass objects through, raising ``ListingNotSortedError`` if keys are not strictly
    increasing.

    A merge-join over an unsorted listing would silently misclassify keys; an endpoint that
    lists out of order must be noticed (diff then sorts the partition's listings instead).
    """
    previous: str | None = None
    for obj in objects:
        if previous is not None and obj.key <= previous:
            raise ListingNotSortedError(f"{what} listing is not sorted: {obj.key!r} came after {previous!r}")
        previous = obj.key
        yield obj
