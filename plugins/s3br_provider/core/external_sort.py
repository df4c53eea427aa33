"""A sort bounded in memory: sorted runs spilled to temporary gzip JSON Lines files, then merged.

For listings that do not come in S3's UTF-8 byte order (some S3-compatible endpoints list
directory by directory) and for data files that are not sorted at all. At most ``run_size``
records are held at once; each full run is sorted and written to a temporary manifest file
(``core.manifest``), and the runs are streamed back through ``heapq.merge``.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any

from s3br_provider.core.manifest import ManifestWriter, iter_records
from s3br_provider.core.objects import ObjectInfo

DEFAULT_RUN_SIZE = 200_000
"""Records per sorted run: a few tens of MB of ``ObjectInfo`` in memory."""


def sorted_records(
    records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any], run_size: int = DEFAULT_RUN_SIZE
) -> Iterator[dict[str, Any]]:
    """Yield ``records`` sorted by ``key`` with at most ``run_size`` of them in memory at once
    (plus one record per spilled run while merging). Temporary files are removed when the
    iterator is exhausted or closed."""
    if run_size < 1:
        raise ValueError(f"run_size must be at least 1, not {run_size}")
    with tempfile.TemporaryDirectory(prefix="s3br-sort-") as folder, ExitStack() as stack:
        runs: list[Iterator[dict[str, Any]]] = []
        run: list[dict[str, Any]] = []
        for record in records:
            run.append(record)
            if len(run) >= run_size:
                runs.append(_spill(sorted(run, key=key), os.path.join(folder, f"run-{len(runs)}"), stack))
                run = []
        run.sort(key=key)
        if not runs:
            yield from run
            return
        runs.append(iter(run))
        yield from heapq.merge(*runs, key=key)


def sorted_objects(objects: Iterable[ObjectInfo], run_size: int = DEFAULT_RUN_SIZE) -> Iterator[ObjectInfo]:
    """Yield ``objects`` in S3's listing order (UTF-8 byte order of the key, which ``str``
    order matches), bounded in memory as ``sorted_records``."""
    records = (obj.to_record() for obj in objects)
    for record in sorted_records(records, key=_record_key, run_size=run_size):
        yield ObjectInfo.from_record(record)


def _record_key(record: dict[str, Any]) -> str:
    return record["k"]


def _spill(run: list[dict[str, Any]], path: str, stack: ExitStack) -> Iterator[dict[str, Any]]:
    """Write a sorted run to ``path`` and return an iterator that reads it back."""
    with open(path, "wb") as stream:
        writer = ManifestWriter(stream)
        for record in run:
            writer.write(record)
        writer.close()
    return iter_records(stack.enter_context(open(path, "rb")))
