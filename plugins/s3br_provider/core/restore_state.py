"""Parsing of the ``x-amz-restore`` header (HeadObject's ``Restore`` field)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from s3br_provider.core.objects import ARCHIVE_CLASSES

_ONGOING = re.compile(r'ongoing-request\s*=\s*"(?P<ongoing>true|false)"', re.IGNORECASE)
_EXPIRY = re.compile(r'expiry-date\s*=\s*"(?P<expiry>[^"]+)"', re.IGNORECASE)


class RestoreStatus(enum.StrEnum):
    """Where an object stands on its way out of an archive tier."""

    NOT_ARCHIVED = "not_archived"
    NOT_REQUESTED = "not_requested"
    IN_PROGRESS = "in_progress"
    READY = "ready"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RestoreState:
    status: RestoreStatus
    expiry: datetime | None = None

    @property
    def readable(self) -> bool:
        return self.status in (RestoreStatus.NOT_ARCHIVED, RestoreStatus.READY)


ARCHIVE_STATUS = "archive_status"
"""Record flag holding an Intelligent-Tiering object's HeadObject ``ArchiveStatus`` (set by select)."""
ARCHIVE_ACCESS_TIERS = frozenset({"ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"})
"""HeadObject's ``ArchiveStatus`` values of Intelligent-Tiering objects that need a restore."""


def needs_restore(storage_class: str | None, archive_status: str | None = None) -> bool:
    """Return whether an object must be restored before it can be read or copied."""
    return (storage_class or "STANDARD") in ARCHIVE_CLASSES or archive_status in ARCHIVE_ACCESS_TIERS


def parse_restore_header(
    header: str | None,
    storage_class: str | None,
    now: datetime,
    archive_status: str | None = None,
) -> RestoreState:
    """Classify an object from its storage class and ``x-amz-restore`` header.

    ``ongoing-request="true"``: in progress. ``ongoing-request="false", expiry-date="..."``:
    readable until the expiry date; past it the copy is gone and must be requested again.
    """
    if not needs_restore(storage_class, archive_status) and not header:
        return RestoreState(RestoreStatus.NOT_ARCHIVED)
    if not header:
        return RestoreState(RestoreStatus.NOT_REQUESTED)
    ongoing = _ONGOING.search(header)
    if ongoing is None:
        raise ValueError(f"unrecognised x-amz-restore header: {header!r}")
    if ongoing.group("ongoing").lower() == "true":
        return RestoreState(RestoreStatus.IN_PROGRESS)
    expiry_match = _EXPIRY.search(header)
    expiry = parsedate_to_datetime(expiry_match.group("expiry")) if expiry_match else None
    if expiry is not None and expiry <= now:
        return RestoreState(RestoreStatus.EXPIRED, expiry)
    return RestoreState(RestoreStatus.READY, expiry)


class RestoreAction(enum.StrEnum):
    """What to do about an object on its way out of an archive tier: the one restore rule."""

    READY = "ready"  # readable now: copy it
    WAIT = "wait"  # a restore is in progress: check again later
    REQUEST = "request"  # never requested, or the restored copy expired: (re-)request


def next_action(state: RestoreState) -> RestoreAction:
    """Decide from an object's restore state; used by request_restore, the sensor and the trigger."""
    if state.readable:
        return RestoreAction.READY
    if state.status is RestoreStatus.IN_PROGRESS:
        return RestoreAction.WAIT
    return RestoreAction.REQUEST


def state_from_head(
    head: dict, storage_class: str | None, archive_status: str | None, now: datetime
) -> RestoreState:
    """The restore state of a HeadObject answer; the listing's class and status fill gaps."""
    return parse_restore_header(
        head.get("Restore"),
        head.get("StorageClass") or storage_class,
        now,
        head.get("ArchiveStatus") or archive_status,
    )
