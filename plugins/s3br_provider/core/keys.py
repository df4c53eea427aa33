"""S3 key conventions: ordering and the reserved prefix."""

from __future__ import annotations

RESERVED_PREFIX = "_s3br/"
"""Manifests and run reports live here in the backup bucket; never listed as data."""

TAG_PROBE_SOURCE = f"{RESERVED_PREFIX}probe/tag-copy-source"
TAG_PROBE_TARGET = f"{RESERVED_PREFIX}probe/tag-copy-target"
"""The two fixed keys of the backup validate's tag probe (written once and overwritten by each
probe, so they do not grow in number): is a CopyObject with TaggingDirective=COPY onto a tagged
object left with exactly its source's tags?"""


def s3_sort_key(key: str) -> bytes:
    """Return the key S3 sorts by: its UTF-8 bytes.

    For valid Unicode, Python's code point order equals UTF-8 byte order, so plain ``str``
    comparison (which the merge-join uses for speed) agrees with this function.
    """
    return key.encode("utf-8")


def is_reserved(key: str) -> bool:
    """Return whether a key belongs to s3br's own bookkeeping."""
    return key.startswith(RESERVED_PREFIX)


def reaches_reserved(prefix: str) -> bool:
    """Return whether a listing under ``prefix`` would include keys of the reserved prefix."""
    return RESERVED_PREFIX.startswith(prefix) or prefix.startswith(RESERVED_PREFIX)
