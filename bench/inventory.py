"""Inventory benchmark: what ``plan_partitions`` does with an S3 Inventory report, at disk speed.

Builds a report of ``--keys`` hashed (unsorted) keys in AWS's layout (``tests.support.inventory``:
CSV.gz or Parquet data files of ``--rows-per-file`` rows) in a temporary folder, then, in a fresh
process (as a task gets it), does the plan's work on it: each data file MD5-checked, read into
``ObjectInfo`` (``core.inventory.data_file_objects``), the stream sorted (``core.external_sort``,
bounded in memory) and cut into partitions (``cut_sorted``, ``partition_size`` with
``target_keys`` and ``max_partitions``), each partition's sorted listing written as gzip JSON
Lines. No S3 requests: it measures the CPU, memory and disk side. Prints keys/s and peak RSS.

    python -m bench.inventory [--keys 1000000] [--format CSV|Parquet]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

from s3br_provider.core.external_sort import sorted_objects  # noqa: E402
from s3br_provider.core.inventory import (  # noqa: E402
    ReadCounts,
    check_md5,
    cut_sorted,
    data_file_objects,
    parse_manifest,
    partition_size,
)
from s3br_provider.core.manifest import ManifestWriter  # noqa: E402
from tests.support.inventory import Row, inventory_report  # noqa: E402

WHEN = datetime(2026, 11, 30, tzinfo=UTC)


def build(folder: str, keys: int, rows_per_file: int, file_format: str) -> str:
    """Write a report of ``keys`` hashed keys into ``folder``; return its manifest's path."""
    rows = [
        Row(f"{hashlib.md5(str(n).encode()).hexdigest()[:8]}/obj-{n:09d}.dat", size=n % 10_000)
        for n in range(keys)
    ]
    files = -(-keys // rows_per_file)
    report = inventory_report("source", "dest", rows, when=WHEN, file_format=file_format, data_files=files)
    for key, body in report.files.items():
        path = Path(folder, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return str(Path(folder, report.manifest_key))


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (Linux), which, unlike ``ru_maxrss``, does not carry
    the peak of the parent this process was forked from across ``exec``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def plan(manifest_path: str, folder: str, target_keys: int, max_partitions: int) -> dict[str, Any]:
    """The plan's work on a local report; runs in its own process (peak RSS is its own)."""
    started = time.perf_counter()
    cpu = time.process_time()
    body = Path(manifest_path).read_bytes()
    checksum = Path(manifest_path).with_name("manifest.checksum").read_bytes()
    manifest = parse_manifest(body, Path(manifest_path).parent.name, checksum)
    counts = ReadCounts()

    def objects() -> Any:
        for data_file in manifest.files:
            path = os.path.join(folder, data_file.key)
            check_md5(path, data_file)
            with open(path, "rb") as stream:
                yield from data_file_objects(manifest, stream, counts, "")

    listing = sorted_objects(objects())
    first = next(listing)
    read = time.perf_counter() - started
    cut = partition_size(counts.kept, target_keys, max_partitions)
    out = Path(folder, "partitions")
    out.mkdir()
    writers: dict[int, Any] = {}

    def write(index: int, obj: Any) -> None:
        if index not in writers:
            for old in writers.values():
                old[0].close()
                old[1].close()
            stream = open(out / f"p{index:05d}.jsonl.gz", "wb")
            writers.clear()
            writers[index] = (ManifestWriter(stream), stream)
        writers[index][0].write(obj.to_record())

    def chained() -> Any:
        yield first
        yield from listing

    ranges = cut_sorted(chained(), cut.per_partition, write)
    for writer, stream in writers.values():
        writer.close()
        stream.close()
    wall = time.perf_counter() - started
    written = sum(p.stat().st_size for p in out.iterdir())
    return {
        "keys": counts.kept,
        "data_files": counts.files,
        "partitions": len(ranges),
        "keys_per_partition": cut.per_partition,
        "read_and_sort_s": round(read, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "keys_per_s": round(counts.kept / wall),
        "keys_per_cpu_s": round(counts.kept / max(0.001, time.process_time() - cpu)),
        "peak_rss_mb": peak_rss_mb(),
        "partition_manifest_bytes_per_key": round(written / max(1, counts.kept), 1),
    }


def _in_child(queue: Any, *args: Any) -> None:
    queue.put(plan(*args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rows-per-file", type=int, default=100_000)
    parser.add_argument("--format", choices=("CSV", "Parquet"), default="CSV")
    parser.add_argument("--target-keys", type=int, default=5_000)
    parser.add_argument("--max-partitions", type=int, default=64)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3br-bench-inventory-") as folder:
        started = time.perf_counter()
        manifest = build(folder, args.keys, args.rows_per_file, args.format)
        built = time.perf_counter() - started
        report_bytes = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
        context = multiprocessing.get_context("spawn")  # a fresh process: its RSS is the plan's
        queue = context.Queue()
        child = context.Process(
            target=_in_child, args=(queue, manifest, folder, args.target_keys, args.max_partitions)
        )
        child.start()
        result = queue.get()
        child.join()
    result |= {"format": args.format, "report_bytes": report_bytes, "build_s": round(built, 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
