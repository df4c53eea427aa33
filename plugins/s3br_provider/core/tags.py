"""Tag rules: the deleted marker, and S3's limit of 10 tags per object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

DELETED_TAG = "Deleted"
DELETED_AT_TAG = "DeletedAt"
MARKER_TAGS = (DELETED_TAG, DELETED_AT_TAG)
MAX_TAGS = 10


@dataclass(frozen=True, slots=True)
class TagMerge:
    """The tags to write, and the user tags that had to make room for the marker."""

    tags: dict[str, str]
    dropped: dict[str, str] = field(default_factory=dict)


def format_deleted_at(when: datetime) -> str:
    """Format an instant as ``YYYY-MM-DDTHH:MM`` in UTC."""
    if when.tzinfo is None:
        raise ValueError("DeletedAt needs a timezone-aware instant")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def is_marked_deleted(tags: dict[str, str]) -> bool:
    return tags.get(DELETED_TAG) == "True"


def mark_deleted(existing: dict[str, str], when: datetime) -> TagMerge:
    """Add ``Deleted=True`` and ``DeletedAt`` on top of the tags an object already has.

    ``DeletedAt`` is set once: an object already marked keeps its first ``DeletedAt``.
    S3 allows 10 tags; when the marker does not fit, the marker wins and the user tags that
    sort last by key are dropped (and reported), so the marker is never lost silently.
    """
    if is_marked_deleted(existing) and DELETED_AT_TAG in existing:
        return TagMerge(dict(existing))
    user = {k: v for k, v in existing.items() if k not in MARKER_TAGS}
    room = MAX_TAGS - len(MARKER_TAGS)
    keep = sorted(user)[:room]
    dropped = {k: user[k] for k in sorted(user)[room:]}
    tags = {k: user[k] for k in keep}
    tags[DELETED_TAG] = "True"
    tags[DELETED_AT_TAG] = existing.get(DELETED_AT_TAG) or format_deleted_at(when)
    return TagMerge(tags, dropped)


def strip_marker(tags: dict[str, str]) -> dict[str, str]:
    """Return the tags without the deleted marker (what a restored object carries)."""
    return {k: v for k, v in tags.items() if k not in MARKER_TAGS}


def to_tag_set(tags: dict[str, str]) -> list[dict[str, str]]:
    """Return tags as boto3's ``TagSet``."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def from_tag_set(tag_set: list[dict[str, str]]) -> dict[str, str]:
    return {item["Key"]: item["Value"] for item in tag_set}
