"""Copy chunks: a copy manifest written in bounded key ranges, and the copy tasks over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3br_provider.core.chunks import (
    Chunk,
    chunk_copies,
    chunk_uri,
    first_chunk_partition,
    join_chunks,
    merge_factor,
    writing_chunks,
)
from s3br_provider.core.manifest import read_manifest
from s3br_provider.core.report import chunk_results
from tests.support.folder_store import FolderStore

URI = "s3://bak.with.dots/_s3br/runs/s3_backup/r1/copy/p00003.jsonl.gz"


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path)


def records(n: int) -> list[dict]:
    return [{"k": f"k/{i:04d}", "s": i, "e": "x", "m": 0} for i in range(n)]


def write(
    store: FolderStore, items: list[dict], chunk_keys: int, start_after: str | None = "a"
) -> list[Chunk]:
    with writing_chunks(store, lambda i: chunk_uri(URI, i), chunk_keys, start_after) as writer:
        for record in items:
            writer.write(record)
    assert writer.count == len(items)
    return writer.chunks


def test_the_first_chunk_keeps_the_manifest_uri_and_others_are_numbered_from_two() -> None:
    assert chunk_uri(URI, 0) == URI
    assert chunk_uri(URI, 1) == URI.replace("p00003.jsonl.gz", "p00003-c00002.jsonl.gz")
    assert chunk_uri(URI, 11).endswith("/copy/p00003-c00012.jsonl.gz")


@pytest.mark.parametrize(
    ("n", "chunk_keys", "sizes"), [(0, 3, []), (3, 3, [3]), (4, 3, [3, 1]), (7, 2, [2, 2, 2, 1])]
)
def test_records_are_split_into_sorted_ranges_of_at_most_chunk_keys(
    store: FolderStore, n: int, chunk_keys: int, sizes: list[int]
) -> None:
    items = records(n)
    chunks = write(store, items, chunk_keys)
    assert [c.objects for c in chunks] == sizes
    assert store.uploads == [chunk_uri(URI, i) for i in range(len(sizes))]
    read = [r for c in chunks for r in read_manifest(store, c.manifest)]
    assert read == items
    low = "a"
    for chunk in chunks:  # each (previous chunk's last key, its last key], back to back
        mine = list(read_manifest(store, chunk.manifest))
        assert chunk.start_after == low and chunk.end == mine[-1]["k"]
        assert all(low < r["k"] <= chunk.end for r in mine)
        assert chunk.bytes == sum(r["s"] for r in mine)
        low = chunk.end


def test_a_failed_walk_uploads_no_chunk(store: FolderStore) -> None:
    with pytest.raises(RuntimeError), writing_chunks(store, lambda i: chunk_uri(URI, i), 2) as writer:
        for record in records(5):
            writer.write(record)
        raise RuntimeError("listing failed")
    assert store.uploads == []


def test_chunk_keys_below_one_is_an_error(store: FolderStore) -> None:
    with pytest.raises(ValueError, match="chunk_keys"), writing_chunks(store, lambda i: URI, 0):
        pass


def test_the_partition_copy_keeps_the_partition_unless_chunked() -> None:
    partition = {"index": 3, "start_after": "a", "end": "z"}
    assert first_chunk_partition(partition, [Chunk("u", 5, 1, "a", "m")]) == partition
    assert first_chunk_partition(partition, []) == partition
    chunked = first_chunk_partition(partition, [Chunk("u", 5, 1, "a", "m"), Chunk("v", 1, 1, "m", "n")])
    assert chunked == {"index": 3, "start_after": "a", "end": "m", "chunk": "1", "chunks": 2}


def diff_result(index: int, extra: int, per_chunk: int = 10) -> dict:
    chunks = [
        {
            "manifest": f"s3://b/p{index}-c{i + 2}",
            "objects": per_chunk,
            "bytes": 1,
            "start_after": f"{i}",
            "end": f"{i + 1}",
        }
        for i in range(extra)
    ]
    return {"index": index, "copy_manifest": f"s3://b/p{index}", "copy_chunks": chunks}


def test_each_extra_chunk_is_one_copy_task_when_they_fit() -> None:
    copies = chunk_copies([diff_result(1, 0), diff_result(0, 2), diff_result(2, 1)], limit=1024)
    assert [c["partition"] for c in copies] == [
        {"index": 0, "start_after": "0", "end": "1", "chunk": "2", "chunks": 3},
        {"index": 0, "start_after": "1", "end": "2", "chunk": "3", "chunks": 3},
        {"index": 2, "start_after": "0", "end": "1", "chunk": "2", "chunks": 2},
    ]
    assert [c["manifest_uri"] for c in copies] == [["s3://b/p0-c2"], ["s3://b/p0-c3"], ["s3://b/p2-c2"]]
    assert [c["expected"] for c in copies] == [10, 10, 10]


def test_no_extra_chunk_no_copy_task() -> None:
    assert chunk_copies([diff_result(0, 0), {"index": 1}], limit=4) == []


def test_more_chunks_than_maps_merge_consecutive_chunks_of_one_partition() -> None:
    results = [diff_result(0, 7), diff_result(1, 2), diff_result(2, 1)]
    copies = chunk_copies(results, limit=5)
    assert len(copies) <= 5
    assert [(c["partition"]["index"], c["partition"]["chunk"]) for c in copies] == [
        (0, "2-4"),
        (0, "5-7"),
        (0, "8"),
        (1, "2-3"),
        (2, "2"),
    ]
    merged = copies[0]
    assert merged["manifest_uri"] == ["s3://b/p0-c2", "s3://b/p0-c3", "s3://b/p0-c4"]
    assert (merged["partition"]["start_after"], merged["partition"]["end"], merged["expected"]) == (
        "0",
        "3",
        30,
    )
    every = [uri for c in copies for uri in c["manifest_uri"]]
    assert every == [chunk["manifest"] for r in results for chunk in r["copy_chunks"]]  # each once, in order


@pytest.mark.parametrize(
    ("counts", "limit", "factor"),
    [
        ([3, 2], 5, 1),
        ([7, 2, 1], 5, 3),
        ([100], 1, 100),
        ([1] * 10, 10, 1),
        ([5, 5, 5], 3, 5),
        ([0, 4], 2, 2),
    ],
)
def test_the_merge_factor_is_the_smallest_that_fits(counts: list[int], limit: int, factor: int) -> None:
    assert merge_factor(counts, limit) == factor
    assert sum(-(-n // factor) for n in counts) <= limit
    if factor > 1:
        assert sum(-(-n // (factor - 1)) for n in counts) > limit


def test_more_chunked_partitions_than_maps_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 partitions"):
        merge_factor([1, 1, 1], 2)


def test_the_report_rows_get_their_chunks_and_name_a_missing_one() -> None:
    rows = [
        {"index": 0, "diff": diff_result(0, 2), "copy": {"copied": 4}},
        {"index": 1, "diff": {"index": 1, "copy_manifest": ""}, "copy": {"copied": 0}},
    ]
    planned = chunk_copies([r["diff"] for r in rows], limit=10)
    results = [{"index": 0, "chunk": "2", "copied": 10, "bytes": 5, "failed": 1}, None]
    missing = join_chunks(rows, planned, results)
    assert missing == ["p0:copy_chunk 3"]
    assert rows[0]["chunked"] == {
        "chunks": 3,
        "tasks": 2,
        "copied": 10,
        "bytes": 5,
        "failed": 1,
        "gone_since_inventory": 0,
        "skipped_existing": 0,
    }
    assert rows[0]["chunk_copies"] == [results[0]]
    assert rows[1]["chunked"] == {
        "chunks": 0,
        "tasks": 0,
        "copied": 0,
        "bytes": 0,
        "failed": 0,
        "gone_since_inventory": 0,
        "skipped_existing": 0,
    }


def test_chunks_that_no_copy_covers_are_missing_even_without_a_plan_of_them() -> None:
    """A DAG that wires diff to one copy only (no gather_chunks) cannot pass for complete."""
    rows = [{"index": 4, "diff": diff_result(4, 5), "copy": {"copied": 10}}]
    merged = {"index": 4, "chunk": "2-3", "copied": 20, "bytes": 2, "failed": 0}
    assert join_chunks(rows, [], [merged, {"index": 4, "chunk": "5", "copied": 10}]) == [
        "p4:copy_chunk 4",
        "p4:copy_chunk 6",
    ]
    assert rows[0]["chunked"]["copied"] == 30 and rows[0]["chunked"]["chunks"] == 6
    assert join_chunks([{"index": 4, "diff": diff_result(4, 5)}], [], []) == ["p4:copy_chunk 2-6"]


def test_chunk_results_are_read_only_when_chunks_were_planned() -> None:
    class Unreadable:
        def __iter__(self):  # a mapped task expanded to nothing: reading it logs an error
            raise AssertionError("read")

    assert chunk_results([], Unreadable()) == []
    assert chunk_results([{"partition": {}}], [{"index": 0, "chunk": "2"}]) == [{"index": 0, "chunk": "2"}]
    assert chunk_results(None, {"index": 0, "chunk": "2"}) == [{"index": 0, "chunk": "2"}]


def test_records_out_of_key_order_give_every_chunk_the_partitions_range(store: FolderStore) -> None:
    """An endpoint that lists out of order (a restore's select reads it as listed): no chunk may
    claim a range its keys leave, nor an empty one."""
    items = records(6)
    items[1], items[4] = items[4], items[1]
    with writing_chunks(store, lambda i: chunk_uri(URI, i), 2, "k/", "k/9") as writer:
        for record in items:
            writer.write(record)
    assert not writer.ordered
    assert [(c.start_after, c.end, c.objects) for c in writer.chunks] == [("k/", "k/9", 2)] * 3
    assert [r for c in writer.chunks for r in read_manifest(store, c.manifest)] == items
    assert (
        first_chunk_partition({"index": 0, "start_after": "k/", "end": "k/9"}, writer.chunks)["end"] == "k/9"
    )
