"""Parsing of the x-amz-restore header into where an object stands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from s3br_provider.core.restore_state import (
    RestoreState,
    RestoreStatus,
    needs_restore,
    parse_restore_header,
)

EXPIRY = datetime(2012, 12, 23, tzinfo=UTC)
BEFORE_EXPIRY = datetime(2012, 12, 22, 18, 0, tzinfo=UTC)
AFTER_EXPIRY = datetime(2013, 1, 5, tzinfo=UTC)
READY_HEADER = 'ongoing-request="false", expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"'
ONGOING_HEADER = 'ongoing-request="true"'


@pytest.mark.parametrize(
    "storage_class", ["STANDARD", None, "STANDARD_IA", "GLACIER_IR", "INTELLIGENT_TIERING"]
)
def test_readable_classes_are_not_archived(storage_class: str | None) -> None:
    state = parse_restore_header(None, storage_class, BEFORE_EXPIRY)
    assert state == RestoreState(RestoreStatus.NOT_ARCHIVED)
    assert state.readable


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
@pytest.mark.parametrize("header", [None, ""])
def test_archived_without_header_is_not_requested(storage_class: str, header: str | None) -> None:
    state = parse_restore_header(header, storage_class, BEFORE_EXPIRY)
    assert state == RestoreState(RestoreStatus.NOT_REQUESTED)
    assert not state.readable


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_ongoing_request_is_in_progress(storage_class: str) -> None:
    state = parse_restore_header(ONGOING_HEADER, storage_class, BEFORE_EXPIRY)
    assert state == RestoreState(RestoreStatus.IN_PROGRESS)
    assert not state.readable


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_finished_request_before_expiry_is_ready(storage_class: str) -> None:
    state = parse_restore_header(READY_HEADER, storage_class, BEFORE_EXPIRY)
    assert state == RestoreState(RestoreStatus.READY, EXPIRY)
    assert state.expiry is not None and state.expiry.tzinfo is not None
    assert state.readable


@pytest.mark.parametrize("now", [AFTER_EXPIRY, EXPIRY], ids=["after", "at"])
def test_finished_request_past_expiry_is_expired(now: datetime) -> None:
    state = parse_restore_header(READY_HEADER, "GLACIER", now)
    assert state == RestoreState(RestoreStatus.EXPIRED, EXPIRY)
    assert not state.readable


def test_finished_request_without_expiry_is_ready() -> None:
    # Intelligent-Tiering restores move the object back to a readable tier: no expiry-date.
    assert parse_restore_header(
        'ongoing-request="false"', "INTELLIGENT_TIERING", BEFORE_EXPIRY
    ) == RestoreState(RestoreStatus.READY)


@pytest.mark.parametrize("archive_status", ["ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"])
def test_intelligent_tiering_archive_access(archive_status: str) -> None:
    def parse(header: str | None) -> RestoreStatus:
        return parse_restore_header(header, "INTELLIGENT_TIERING", BEFORE_EXPIRY, archive_status).status

    assert parse(None) is RestoreStatus.NOT_REQUESTED
    assert parse(ONGOING_HEADER) is RestoreStatus.IN_PROGRESS
    assert parse(READY_HEADER) is RestoreStatus.READY


def test_header_spacing_and_case_are_tolerated() -> None:
    header = 'ONGOING-REQUEST = "FALSE" ,expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"'
    assert parse_restore_header(header, "GLACIER", AFTER_EXPIRY) == RestoreState(
        RestoreStatus.EXPIRED, EXPIRY
    )


@pytest.mark.parametrize(
    "header", ["garbage", 'ongoing-request="maybe"', 'expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"']
)
def test_garbage_header_raises(header: str) -> None:
    with pytest.raises(ValueError, match="x-amz-restore"):
        parse_restore_header(header, "GLACIER", BEFORE_EXPIRY)


@pytest.mark.parametrize(
    ("storage_class", "archive_status", "needed"),
    [
        ("GLACIER", None, True),
        ("DEEP_ARCHIVE", None, True),
        ("INTELLIGENT_TIERING", "ARCHIVE_ACCESS", True),
        ("INTELLIGENT_TIERING", "DEEP_ARCHIVE_ACCESS", True),
        ("INTELLIGENT_TIERING", None, False),
        ("GLACIER_IR", None, False),
        ("STANDARD", None, False),
        (None, None, False),
    ],
)
def test_needs_restore(storage_class: str | None, archive_status: str | None, needed: bool) -> None:
    assert needs_restore(storage_class, archive_status) is needed
