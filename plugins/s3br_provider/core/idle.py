"""Partitions with nothing to do: which of their steps need not start, and how a report counts them.

A backup partition whose diff found nothing to copy and nothing to tag leaves its ``copy_batch``
and ``tag_deleted`` nothing to do, and one that found nothing vanished (or only objects marked
deleted before) its ``tag_deleted`` alone
(the common case of a first or a growing backup: its copies run, its tag step need not start);
a restore partition whose select found no archived object
leaves ``request_restore`` and ``wait_for_restore`` nothing to do. The first step marks those
skipped (``operators.idle``) and says so in its result (``IDLE_SKIPPED``); a report then counts
a skipped step as zero work, but only where the result's own numbers say there was none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

IDLE_SKIPPED = "idle_steps_skipped"
"""Result key: the step marked this partition's later steps skipped (they had nothing to do)."""

ZERO_COPY: dict[str, Any] = {
    "copied": 0,
    "bytes": 0,
    "skipped_done": 0,
    "failed": 0,
    "failures": [],
    "gone_since_inventory": 0,
}
"""What a copy_batch with nothing to copy returns (besides its ``index``)."""
ZERO_TAG: dict[str, Any] = {
    "tagged": 0,
    "already_tagged": 0,
    "marked_by_index": 0,
    "failed": 0,
    "dropped_tags": [],
    "failures": [],
}
"""What a tag_deleted with nothing to tag returns (besides its ``index``)."""


def nothing_to_tag(diff: Mapping[str, Any], *, tag_deleted: bool) -> bool:
    """Whether a diff result leaves its partition's tag step nothing to do: no vanished
    manifest (a dry run writes none), every vanished object marked deleted before (``to_tag``
    0: by the deleted-key index), or tagging off."""
    return not diff.get("vanished_manifest") or diff.get("to_tag") == 0 or not tag_deleted


def backup_partition_idle(diff: Mapping[str, Any], *, tag_deleted: bool) -> bool:
    """Whether a diff result leaves its partition's copy and tag steps nothing to do: no copy
    manifest (nor chunk: a dry run writes none) and nothing to tag."""
    nothing_to_copy = not diff.get("copy_manifest") and not diff.get("copy_chunks")
    return nothing_to_copy and nothing_to_tag(diff, tag_deleted=tag_deleted)


def restore_partition_idle(select: Mapping[str, Any]) -> bool:
    """Whether a select result leaves its partition's restore request and wait nothing to do."""
    return not select.get("archived_manifest")


def fill_skipped_steps(
    rows: Iterable[dict[str, Any]],
    step: str,
    zeros: Mapping[str, Mapping[str, Any]],
    idle: Callable[[Mapping[str, Any], str], bool],
) -> list[int]:
    """Give each report row (``core.report.join_partitions``) whose ``step`` result marked later
    steps skipped the zero result of each of ``zeros``' steps that left none and for which the
    result's numbers say there was nothing to do (``idle(result, name)``); return the indexes
    of the partitions given one. A step without a result elsewhere stays missing (the report
    names it)."""
    filled = []
    for row in rows:
        first = row.get(step) or {}
        if not first.get(IDLE_SKIPPED):
            continue
        given = False
        for name, zero in zeros.items():
            if row.get(name) is None and idle(first, name):
                row[name] = {"index": row["index"], **zero, "skipped": "nothing to do"}
                given = True
        if given:
            filled.append(int(row["index"]))
    return filled
