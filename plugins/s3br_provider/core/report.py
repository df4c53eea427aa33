"""Run reports: join per-partition results and print them as a table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def as_list(results: Any) -> list[Any]:
    """Return mapped-task results as a list: Airflow hands over a single result unwrapped."""
    if results is None:
        return []
    if isinstance(results, dict):
        return [results]
    return list(results)


def chunk_results(planned: Any, results: Any) -> list[Any]:
    """The chunk copies' results, read only when ``gather_chunks`` planned some (``planned`` its
    output; None: not given): a mapped task expanded to nothing has no XCom, and reading it
    logs an error in every run that has no chunks."""
    if planned is not None and not as_list(planned):
        return []
    if isinstance(results, Sequence) and not isinstance(results, str):
        return list(results[:])  # Airflow's lazy sequence: one request, not one per item and a miss
    return as_list(results)


def index_results(results: Iterable[dict[str, Any] | None]) -> dict[int, dict[str, Any]]:
    """Map partition index to result, ignoring missing results (failed or skipped tasks)."""
    return {int(r["index"]): r for r in results if isinstance(r, dict) and "index" in r}


def join_partitions(partitions: Sequence[dict[str, Any]], **steps: Any) -> list[dict[str, Any]]:
    """Return one row per partition with each step's result under its name (None if missing)."""
    by_step = {name: index_results(as_list(results)) for name, results in steps.items()}
    rows = []
    for part in partitions:
        row: dict[str, Any] = {"index": part["index"]}
        for name, results in by_step.items():
            row[name] = results.get(int(part["index"]))
        rows.append(row)
    return rows


def total(rows: Iterable[dict[str, Any]], step: str, field: str) -> int:
    return sum((row.get(step) or {}).get(field, 0) for row in rows)


def missing_steps(rows: Iterable[dict[str, Any]], steps: Sequence[str]) -> list[str]:
    """Return ``p<index>:<step>`` for every step that left no result."""
    return [f"p{row['index']}:{step}" for row in rows for step in steps if row.get(step) is None]


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Format rows as a fixed-width text table (numbers right-aligned)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


Column = tuple[str, tuple[tuple[str, str], ...]]
"""A table column: its header and the ``(step, field)`` values it adds up per partition."""


def partition_table(rows: Sequence[dict[str, Any]], label_step: str, columns: Sequence[Column]) -> str:
    """One line per partition: its index, its key range (from ``label_step``), the columns."""
    lines = []
    for row in rows:
        values = [sum((row.get(step) or {}).get(field, 0) for step, field in parts) for _, parts in columns]
        lines.append((f"p{row['index']}", (row.get(label_step) or {}).get("label", "?"), *values))
    return format_table(("part", "range", *(name for name, _ in columns)), lines)
