"""Copy chunks: a partition's copy manifest written in bounded key ranges, and their copy tasks.

A partition's listing range may hold far more keys to copy than one task should (a bucket of
10M keys in at most ``max_partitions`` ranges, an endpoint that lists out of order and cannot be
split, a skewed prefix). ``diff`` writes its copy manifest in chunks of at most ``chunk_keys``
records; each chunk is a key range ``(previous chunk's last key, its last key]`` of the sorted
diff, so a retried copy lists just that range. The partition's own ``copy_batch`` copies the
first chunk; the others become the tasks of the mapped ``copy_chunk`` (:func:`chunk_copies`),
merged where there would be more than Airflow maps.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from s3br_provider.core.manifest import ManifestStore, ManifestWriter

SUFFIX = ".jsonl.gz"
ALL_KEYS = 2**63
"""A chunk size that never splits: the manifest of a writer without chunks."""
CHUNK_SUMS = ("copied", "bytes", "failed", "gone_since_inventory", "skipped_existing")
"""Fields of the chunk copies' results that a report row sums (``join_chunks``)."""


@dataclass
class Chunk:
    """One chunk of a copy manifest: its URI, records, bytes and key range ``(start_after, end]``."""

    manifest: str
    objects: int = 0
    bytes: int = 0
    start_after: str | None = None
    end: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChunkedManifestWriter:
    """Write manifest records (sorted by key, as the diff yields them) into files of at most
    ``chunk_keys`` records each; ``chunks`` describes them, ``count`` is the total. Records out
    of key order (an endpoint that lists out of order, read by a restore's select) give every
    chunk the whole range ``(start_after, end]``: the copies stay right, a retry lists more."""

    def __init__(
        self,
        folder: str,
        uri_for: Callable[[int], str],
        chunk_keys: int,
        start_after: str | None,
        end: str | None = None,
    ):
        if chunk_keys < 1:
            raise ValueError(f"chunk_keys must be at least 1, got {chunk_keys}")
        self._folder, self._uri_for, self._chunk_keys = folder, uri_for, chunk_keys
        self._start_after, self._end = start_after, end
        self.ordered = True
        self.chunks: list[Chunk] = []
        self.paths: list[str] = []
        self._writer: ManifestWriter | None = None
        self._stream: Any = None
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        if self._writer is None or self._writer.count >= self._chunk_keys:
            self._next_chunk()
        assert self._writer is not None
        self._writer.write(record)
        chunk = self.chunks[-1]
        last = chunk.end if chunk.objects else (self.chunks[-2].end if len(self.chunks) > 1 else None)
        if last is not None and record["k"] <= last:
            self.ordered = False
        chunk.objects += 1
        chunk.bytes += int(record.get("s", 0))
        chunk.end = record["k"]
        self.count += 1

    def _next_chunk(self) -> None:
        start_after = self.chunks[-1].end if self.chunks else self._start_after
        self.close()
        path = os.path.join(self._folder, f"chunk-{len(self.chunks):05d}.jsonl.gz")
        self._stream = open(path, "wb")  # noqa: SIM115 -- closed in close()
        self._writer = ManifestWriter(self._stream)
        self.paths.append(path)
        self.chunks.append(Chunk(manifest=self._uri_for(len(self.chunks)), start_after=start_after))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._stream.close()
            self._writer = self._stream = None
        if not self.ordered:
            for chunk in self.chunks:
                chunk.start_after, chunk.end = self._start_after, self._end


@contextmanager
def writing_chunks(
    store: ManifestStore,
    uri_for: Callable[[int], str],
    chunk_keys: int,
    start_after: str | None = None,
    end: str | None = None,
) -> Iterator[ChunkedManifestWriter]:
    """Stream records into chunk files; upload every chunk (chunk ``i`` to ``uri_for(i)``) only
    on success, as ``writing_manifest`` does: no records, no upload. ``(start_after, end]`` is
    the partition's range."""
    with tempfile.TemporaryDirectory(prefix="s3br-") as folder:
        writer = ChunkedManifestWriter(folder, uri_for, chunk_keys, start_after, end)
        try:
            yield writer
        finally:
            writer.close()
        for path, chunk in zip(writer.paths, writer.chunks, strict=True):
            store.upload(path, chunk.manifest)


def chunk_uri(first_uri: str, number: int) -> str:
    """Chunk ``number``'s manifest URI: the first chunk keeps ``first_uri`` (the partition's
    copy manifest as without chunks), chunk 2 of ``.../p00003.jsonl.gz`` is ``.../p00003-c00002.jsonl.gz``."""
    if number == 0:
        return first_uri
    stem, extension = (first_uri[: -len(SUFFIX)], SUFFIX) if first_uri.endswith(SUFFIX) else (first_uri, "")
    return f"{stem}-c{number + 1:05d}{extension}"


def merge_factor(counts: Sequence[int], limit: int) -> int:
    """The fewest consecutive chunks per copy task so that at most ``limit`` tasks copy
    ``counts[p]`` chunks of each partition ``p`` (chunks merge within a partition only: a
    retried copy lists its range and aborts stale uploads there, which must not reach another
    partition's running copies)."""
    busy = [n for n in counts if n > 0]
    if len(busy) > limit:
        raise ValueError(
            f"{len(busy)} partitions have chunks to copy, more than the {limit} tasks Airflow maps"
        )
    factor = max(1, -(-sum(busy) // max(1, limit)))
    while sum(-(-n // factor) for n in busy) > limit:
        factor += 1
    return factor


def chunk_copies(diff_results: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The mapped ``copy_chunk``'s keyword arguments, one dict per task: every diff result's
    ``copy_chunks`` (its chunks after the first), merged ``merge_factor`` at a time when there
    would be more than ``limit``. Each has a chunk-shaped ``partition`` (``index``, the merged
    range, ``chunk``: its number(s) counting the partition's first chunk as 1, ``chunks``: the
    partition's total), ``manifest_uri`` (a list of manifests) and ``expected`` (records)."""
    results = sorted((r for r in diff_results if r.get("copy_chunks")), key=lambda r: int(r["index"]))
    factor = merge_factor([len(r["copy_chunks"]) for r in results], limit)
    copies = []
    for result in results:
        extra = result["copy_chunks"]
        total = len(extra) + 1
        for first in range(0, len(extra), factor):
            group = extra[first : first + factor]
            low, high = first + 2, first + len(group) + 1
            partition = {
                "index": int(result["index"]),
                "start_after": group[0]["start_after"],
                "end": group[-1]["end"],
                "chunk": str(low) if low == high else f"{low}-{high}",
                "chunks": total,
            }
            copies.append(
                {
                    "partition": partition,
                    "manifest_uri": [chunk["manifest"] for chunk in group],
                    "expected": sum(int(chunk["objects"]) for chunk in group),
                }
            )
    return copies


def first_chunk_partition(partition: dict[str, Any], chunks: Sequence[Chunk]) -> dict[str, Any]:
    """The partition dict of the partition's own copy: the partition itself when there is at
    most one chunk, else the first chunk's range (a retry then lists and cleans up only there,
    never where the partition's other chunks are being copied)."""
    if len(chunks) <= 1:
        return dict(partition)
    return {
        **partition,
        "start_after": chunks[0].start_after,
        "end": chunks[0].end,
        "chunk": "1",
        "chunks": len(chunks),
    }


def chunk_outputs(partition: dict[str, Any] | None, chunks: Sequence[Chunk]) -> dict[str, Any]:
    """What a chunked manifest's writer adds to its result (``diff``'s, ``select``'s): the first
    chunk's records (``copy_manifest_objects``), the partition its copy runs over
    (``copy_partition``) and the other chunks (``copy_chunks``)."""
    whole = partition or {"index": 0, "start_after": None, "end": None}
    return {
        "copy_manifest_objects": chunks[0].objects if chunks else 0,
        "copy_partition": first_chunk_partition(whole, chunks),
        "copy_chunks": [chunk.to_dict() for chunk in chunks[1:]],
    }


def join_chunks(
    rows: Sequence[dict[str, Any]],
    planned: Sequence[dict[str, Any]],
    results: Sequence[Any],
    step: str = "diff",
) -> list[str]:
    """Add to each report row (``core.report.join_partitions``) its chunk copies' results
    (``chunk_copies``) and their sums (``chunked``: chunks the diff wrote, chunk copy tasks
    planned, and the results' ``CHUNK_SUMS``); return ``p<index>:copy_chunk <numbers>`` for
    every chunk of a diff after its first that no result covers: a copy task that left none,
    or chunks nobody copied (a DAG that wires diff to one copy only, without ``copy_chunk``).
    ``step`` names the rows' result that wrote the chunks (``diff``, or a restore's ``select``)."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for result in results:
        if isinstance(result, dict) and result.get("chunk") is not None:
            by_partition.setdefault(int(result["index"]), []).append(result)
    tasks = [int(copy["partition"]["index"]) for copy in planned]
    missing = []
    for row in rows:
        index, diff = int(row["index"]), row.get(step) or {}
        mine = sorted(by_partition.get(index, []), key=lambda r: _numbers(r["chunk"])[0])
        extra = len(diff.get("copy_chunks") or ())
        covered = {n for r in mine for n in _numbers(r["chunk"])}
        missing += [f"p{index}:copy_chunk {run}" for run in _runs(sorted(set(range(2, extra + 2)) - covered))]
        row["chunk_copies"] = mine
        row["chunked"] = {
            "chunks": (1 + extra) if diff.get("copy_manifest") else 0,
            "tasks": tasks.count(index),
            **{field: sum(int(r.get(field, 0)) for r in mine) for field in CHUNK_SUMS},
        }
    return missing


def _numbers(chunk: str) -> list[int]:
    """The chunk numbers a copy's ``chunk`` names: ``"3"`` or a merged ``"2-4"``."""
    low, _, high = str(chunk).partition("-")
    return list(range(int(low), int(high or low) + 1))


def _runs(numbers: Sequence[int]) -> list[str]:
    """Sorted numbers as runs: ``[2, 3, 4, 7]`` -> ``["2-4", "7"]``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return [str(low) if low == high else f"{low}-{high}" for low, high in runs]
