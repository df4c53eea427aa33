"""Run reports: per-partition results joined and printed as a table."""

from __future__ import annotations

from typing import Any

import pytest

from s3br_provider.core.report import (
    as_list,
    format_table,
    index_results,
    join_partitions,
    missing_steps,
    total,
)

PARTITIONS = [{"index": 0, "start_after": None, "end": "m"}, {"index": 1, "start_after": "m", "end": None}]


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (None, []),
        ({"index": 0}, [{"index": 0}]),
        ([{"index": 0}, None], [{"index": 0}, None]),
        ([], []),
        (({"index": 1},), [{"index": 1}]),
        (iter([{"index": 2}]), [{"index": 2}]),
    ],
)
def test_as_list(results: Any, expected: list[Any]) -> None:
    assert as_list(results) == expected


def test_index_results_ignores_missing_and_malformed_results() -> None:
    assert index_results([{"index": "1", "copied": 2}, None, {"copied": 3}, "skipped"]) == {
        1: {"index": "1", "copied": 2}
    }


def test_join_partitions_with_missing_results() -> None:
    diff = [{"index": 1, "new": 5}, {"index": 0, "new": 2}]
    copy = {"index": 1, "copied": 5}  # a single mapped result arrives unwrapped
    rows = join_partitions(PARTITIONS, diff=diff, copy=copy, tag=None)
    assert rows == [
        {"index": 0, "diff": {"index": 0, "new": 2}, "copy": None, "tag": None},
        {"index": 1, "diff": {"index": 1, "new": 5}, "copy": {"index": 1, "copied": 5}, "tag": None},
    ]
    assert missing_steps(rows, ["diff", "copy", "tag"]) == ["p0:copy", "p0:tag", "p1:tag"]
    assert total(rows, "diff", "new") == 7
    assert total(rows, "copy", "copied") == 5
    assert total(rows, "tag", "tagged") == 0


def test_join_partitions_without_steps() -> None:
    assert join_partitions(PARTITIONS) == [{"index": 0}, {"index": 1}]
    assert missing_steps(join_partitions(PARTITIONS), ["diff"]) == ["p0:diff", "p1:diff"]


def test_nothing_missing() -> None:
    rows = join_partitions(PARTITIONS, diff=[{"index": 0}, {"index": 1}])
    assert missing_steps(rows, ["diff"]) == []


def test_format_table_aligns_columns() -> None:
    table = format_table(
        ["partition", "range", "copied", "bytes"],
        [["p0", "(-inf, 'm']", 12, 1.5], ["p1", "('m', +inf]", 3456, 10.25]],
    )
    assert table.split("\n") == [
        "partition  range        copied  bytes",
        "---------  -----------  ------  -----",
        "p0         (-inf, 'm']      12    1.5",
        "p1         ('m', +inf]    3456  10.25",
    ]


def test_format_table_column_is_text_if_any_cell_is_text() -> None:
    table = format_table(["n"], [[1], ["-"], [100]])
    assert table.split("\n") == ["n  ", "---", "1  ", "-  ", "100"]


def test_format_table_without_rows() -> None:
    assert format_table(["partition", "copied"], []) == "partition  copied\n---------  ------"


def test_partition_table_adds_up_the_columns_of_each_partition() -> None:
    from s3br_provider.core.report import partition_table

    rows = [
        {"index": 0, "diff": {"label": "(-inf, m]", "new": 2}, "copy": {"failed": 1}, "tag": {"failed": 2}},
        {"index": 1, "diff": None, "copy": None, "tag": None},
    ]
    table = partition_table(
        rows, "diff", (("new", (("diff", "new"),)), ("failed", (("copy", "failed"), ("tag", "failed"))))
    )
    lines = table.splitlines()
    assert lines[0].split() == ["part", "range", "new", "failed"]
    assert lines[2].split() == ["p0", "(-inf,", "m]", "2", "3"]
    assert lines[3].split() == ["p1", "?", "0", "0"]
