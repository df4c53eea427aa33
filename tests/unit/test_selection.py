"""Which backup objects a restore brings back: the deleted marker, include_deleted and as_of."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from s3br_provider.core.selection import deleted_at_epoch, is_selected

DELETED_AT = "2026-01-31T12:00"
DELETED_EPOCH = datetime(2026, 1, 31, 12, 0, tzinfo=UTC).timestamp()
MARKED = {"team": "data", "Deleted": "True", "DeletedAt": DELETED_AT}


def marked(deleted_at: str | None) -> dict[str, str]:
    tags = {"team": "data", "Deleted": "True"}
    if deleted_at is not None:
        tags["DeletedAt"] = deleted_at
    return tags


# deleted_at_epoch --------------------------------------------------------------------------------


def test_deleted_at_is_read_as_utc_minutes() -> None:
    assert deleted_at_epoch(MARKED) == DELETED_EPOCH
    assert deleted_at_epoch({"DeletedAt": "1999-12-31T23:59"}) == (
        datetime(1999, 12, 31, 23, 59, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize("tags", [{}, {"Deleted": "True"}, {"DeletedAt": ""}, {"team": "data"}])
def test_deleted_at_absent_is_none(tags: dict[str, str]) -> None:
    assert deleted_at_epoch(tags) is None


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2026-13-01T00:00", "2026-01-31", "31/01/2026 12:00", "2026-01-31T25:00", "True"],
)
def test_deleted_at_unreadable_is_none(value: str) -> None:
    assert deleted_at_epoch({"Deleted": "True", "DeletedAt": value}) is None


# is_selected -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tags", [{}, {"team": "data"}, {"Deleted": "False"}, {"DeletedAt": DELETED_AT}])
@pytest.mark.parametrize("include_deleted", [False, True])
@pytest.mark.parametrize("as_of", [None, DELETED_EPOCH - 3600, DELETED_EPOCH + 3600])
def test_objects_not_marked_deleted_are_selected(
    tags: dict[str, str], include_deleted: bool, as_of: float | None
) -> None:
    assert is_selected(tags, include_deleted=include_deleted, as_of=as_of)


def test_marked_deleted_is_left_out() -> None:
    assert not is_selected(MARKED, include_deleted=False, as_of=None)


@pytest.mark.parametrize("as_of", [None, DELETED_EPOCH - 3600, DELETED_EPOCH + 3600, DELETED_EPOCH, 0.0])
@pytest.mark.parametrize("deleted_at", [DELETED_AT, "garbage", None])
def test_include_deleted_selects_marked_objects(as_of: float | None, deleted_at: str | None) -> None:
    assert is_selected(marked(deleted_at), include_deleted=True, as_of=as_of)


def test_as_of_before_deleted_at_selects_the_object() -> None:
    """The object still existed at ``as_of``: it was marked deleted only later."""
    assert is_selected(MARKED, include_deleted=False, as_of=DELETED_EPOCH - 1)
    assert is_selected(MARKED, include_deleted=False, as_of=DELETED_EPOCH - 86_400 * 365)


@pytest.mark.parametrize("delta", [0, 1, 60, 86_400])
def test_as_of_at_or_after_deleted_at_leaves_it_out(delta: float) -> None:
    assert not is_selected(MARKED, include_deleted=False, as_of=DELETED_EPOCH + delta)


@pytest.mark.parametrize("deleted_at", ["garbage", "", None, "31/01/2026"])
@pytest.mark.parametrize("as_of", [0.0, DELETED_EPOCH - 3600, DELETED_EPOCH + 3600])
def test_unreadable_deleted_at_counts_as_deleted(deleted_at: str | None, as_of: float) -> None:
    assert not is_selected(marked(deleted_at), include_deleted=False, as_of=as_of)


def test_is_selected_does_not_change_the_tags() -> None:
    tags = dict(MARKED)
    is_selected(tags, include_deleted=False, as_of=DELETED_EPOCH - 1)
    is_selected(tags, include_deleted=True, as_of=None)
    assert tags == MARKED
