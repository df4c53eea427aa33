"""Which backup objects a restore brings back."""

from __future__ import annotations

from datetime import UTC, datetime

from s3br_provider.core.tags import DELETED_AT_TAG, is_marked_deleted


def deleted_at_epoch(tags: dict[str, str]) -> float | None:
    """Return the ``DeletedAt`` tag as seconds since the epoch, or None if absent/unreadable."""
    value = tags.get(DELETED_AT_TAG)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def is_selected(tags: dict[str, str], *, include_deleted: bool, as_of: float | None) -> bool:
    """Return whether an object with these tags is restored.

    Objects marked deleted are left out unless ``include_deleted``. With ``as_of``, an object
    marked deleted only after that instant still existed then, so it is restored; one whose
    ``DeletedAt`` is unreadable counts as deleted.
    """
    if include_deleted or not is_marked_deleted(tags):
        return True
    if as_of is None:
        return False
    deleted_at = deleted_at_epoch(tags)
    return deleted_at is not None and deleted_at > as_of
