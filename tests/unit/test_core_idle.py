"""Which steps a partition's results leave with nothing to do, and how a report counts them."""

from __future__ import annotations

from typing import Any

from s3br_provider.core.idle import (
    IDLE_SKIPPED,
    ZERO_COPY,
    ZERO_TAG,
    backup_partition_idle,
    fill_skipped_steps,
    nothing_to_tag,
    restore_partition_idle,
)

NOTHING = {"copy_manifest": "", "copy_chunks": [], "vanished_manifest": ""}


def test_nothing_to_tag_without_vanished_objects_or_with_tagging_off() -> None:
    assert nothing_to_tag({**NOTHING, "copy_manifest": "s3://b/c.jsonl.gz"}, tag_deleted=True)
    vanished = {**NOTHING, "vanished_manifest": "s3://b/v.jsonl.gz"}
    assert not nothing_to_tag(vanished, tag_deleted=True)
    assert nothing_to_tag(vanished, tag_deleted=False)


def test_a_backup_partition_is_idle_with_nothing_to_copy_and_nothing_to_tag() -> None:
    assert backup_partition_idle(NOTHING, tag_deleted=True)
    assert not backup_partition_idle({**NOTHING, "copy_manifest": "s3://b/c.jsonl.gz"}, tag_deleted=True)
    assert not backup_partition_idle({**NOTHING, "copy_chunks": [{"manifest": "m"}]}, tag_deleted=True)
    vanished = {**NOTHING, "vanished_manifest": "s3://b/v.jsonl.gz"}
    assert not backup_partition_idle(vanished, tag_deleted=True)
    assert backup_partition_idle(vanished, tag_deleted=False)  # tagging off: nothing to tag


def test_a_restore_partition_is_idle_without_archived_objects() -> None:
    assert restore_partition_idle({"archived_manifest": ""})
    assert not restore_partition_idle({"archived_manifest": "s3://b/a.jsonl.gz"})


def _rows(*diffs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"index": i, "diff": diff, "copy": None, "tag": None} for i, diff in enumerate(diffs)]


def _idle(diff: Any, step: str) -> bool:
    """As the backup report judges: a tag step by what vanished, a copy step by the whole."""
    if step == "tag":
        return nothing_to_tag(diff, tag_deleted=True)
    return backup_partition_idle(diff, tag_deleted=True)


def test_skipped_steps_count_as_zero_work_only_where_the_diff_skipped_them_with_nothing_to_do() -> None:
    rows = _rows(
        {**NOTHING, IDLE_SKIPPED: True},  # skipped by its diff: zero work
        dict(NOTHING),  # idle but not skipped by the diff: its steps must report themselves
        {**NOTHING, "copy_manifest": "s3://b/c", IDLE_SKIPPED: True},  # copies to make
        None,  # the diff left no result
    )
    rows[1]["copy"] = {"index": 1, "copied": 0, "failed": 0}

    filled = fill_skipped_steps(rows, "diff", {"copy": ZERO_COPY, "tag": ZERO_TAG}, _idle)

    assert filled == [0, 2]
    assert rows[0]["copy"] == {"index": 0, **ZERO_COPY, "skipped": "nothing to do"}
    assert rows[0]["tag"] == {"index": 0, **ZERO_TAG, "skipped": "nothing to do"}
    assert rows[1]["copy"] == {"index": 1, "copied": 0, "failed": 0} and rows[1]["tag"] is None
    # Work to copy, nothing vanished: its tag step counts as zero, its copy step stays missing.
    assert rows[2]["copy"] is None and rows[2]["tag"] == {"index": 2, **ZERO_TAG, "skipped": "nothing to do"}
    assert rows[3]["copy"] is None


def test_a_result_a_skipped_step_left_anyway_is_kept() -> None:
    rows = _rows({**NOTHING, IDLE_SKIPPED: True})
    rows[0]["copy"] = {"index": 0, "copied": 0, "failed": 1, "failures": [{"key": "k", "error": "e"}]}
    fill_skipped_steps(rows, "diff", {"copy": ZERO_COPY, "tag": ZERO_TAG}, _idle)
    assert rows[0]["copy"]["failed"] == 1
    assert rows[0]["tag"]["skipped"] == "nothing to do"
