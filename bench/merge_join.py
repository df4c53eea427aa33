"""Micro-benchmark of the pure merge-join, ``s3br_provider.core.diff.merge_listings``, on one core.

Two sorted listings of ``--pairs`` synthetic ObjectInfo each (98% unchanged, 1% changed, 0.5% new,
0.5% vanished) are built first, untimed; then the join is walked to the end, counting actions as
the diff task does. Best of ``--repeat`` runs by CPU time (the process is pinned to one core).
Prints one JSON line.

    python -m bench.merge_join [--pairs 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))

from s3br_provider.core.diff import Compare, check_sorted, merge_listings  # noqa: E402
from s3br_provider.core.objects import ObjectInfo  # noqa: E402

EPOCH = 1_790_000_000.0


def listings(pairs: int) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """Source and backup listings over the same sorted key space."""
    source: list[ObjectInfo] = []
    backup: list[ObjectInfo] = []
    for i in range(pairs):
        key = f"d{i % 50:02d}/obj-{i:09d}.bin"
        kind = i % 200
        if kind != 1:  # 0.5% vanished: only in the backup
            source.append(ObjectInfo(key, 1024, "0" * 32, EPOCH + (100 if kind in (2, 3) else 0)))
        if kind != 0:  # 0.5% new: only in the source
            backup.append(ObjectInfo(key, 1024, "0" * 32, EPOCH + 50))
    source.sort(key=lambda o: o.key)
    backup.sort(key=lambda o: o.key)
    return source, backup


def walk(
    source: list[ObjectInfo], backup: list[ObjectInfo], *, checked: bool
) -> tuple[float, float, Counter]:
    """Walk the join once; return wall seconds, CPU seconds and the action counts.

    CPU seconds are what the numbers are based on: on a shared machine the wall time also
    counts the time other processes held the core.
    """
    src, dst = iter(source), iter(backup)
    if checked:  # as the diff task runs it, with the sortedness guard on both listings
        src, dst = check_sorted(src, "source"), check_sorted(dst, "backup")
    counts: Counter[str] = Counter()
    gc.disable()
    began, cpu_began = time.perf_counter(), time.process_time()
    for action, _, _ in merge_listings(src, dst, Compare.SIZE_MTIME):
        counts[action] += 1
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    gc.enable()
    return seconds, cpu_seconds, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core, as a mapped diff task gets
    source, backup = listings(args.pairs)
    keys = len({o.key for o in source} | {o.key for o in backup})
    result: dict[str, object] = {
        "pairs": args.pairs,
        "keys": keys,
        "python": platform.python_version(),
        "cpu": cpu,
    }
    for label, checked in (("merge_listings", False), ("with_check_sorted", True)):
        runs = [walk(source, backup, checked=checked) for _ in range(args.repeat)]
        wall, cpu_seconds, counts = min(runs, key=lambda r: r[1])
        result[label] = {
            "cpu_seconds": round(cpu_seconds, 4),
            "wall_seconds": round(wall, 4),
            "keys_per_second": round(keys / cpu_seconds),
            "keys_per_second_wall": round(keys / wall),
            "actions": {str(k): v for k, v in sorted(counts.items())},
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
