"""Scale benchmark: a whole backup pipeline over millions of synthetic keys, at memory speed.

A first run's plan (``plan_by_probing`` over a virtual sorted listing that answers probes
arithmetically, so no key list is held), then per planned partition, each in a fresh process
(forked from a small server) as a mapped task gets: the diff task (two listings of
``ObjectInfo`` built on the fly, ``check_sorted`` on both, ``merge_listings``, the key
sampler, the copy and vanished manifests written as gzip JSON Lines to a temporary folder),
then the copy task's reading of its manifest (``iter_records`` and ``ObjectInfo.from_record``,
no copy sent). Also the pure merge-join of ``bench/merge_join.py`` on 1M pairs. Prints a table
and one JSON line: keys per CPU-second per core, peak RSS per task, manifest bytes per key,
XCom bytes per run.

    python -m bench.scale [--keys 10000000] [--scenario first|incremental] [--workers 2]

``first``: the backup is empty, every key is copied (the most expensive run). ``incremental``:
98% unchanged, 1% changed, 0.5% new, 0.5% vanished (as bench/merge_join.py).
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

from bench.merge_join import listings, walk  # noqa: E402
from s3br_provider.core.diff import Action, Compare, check_sorted, merge_listings  # noqa: E402
from s3br_provider.core.manifest import ManifestWriter, iter_records  # noqa: E402
from s3br_provider.core.objects import ObjectInfo  # noqa: E402
from s3br_provider.core.partitions import KeyRange  # noqa: E402
from s3br_provider.core.probe_plan import plan_by_probing  # noqa: E402
from s3br_provider.core.sampler import KeySampler  # noqa: E402

EPOCH = 1_790_000_000.0
KEYS_PER_DAY = 100_000
RUN_URI = "s3://orders-backup/_s3br/runs/s3_backup/scheduled__2026-12-01T00_00_00+00_00"


class VirtualKeys(Sequence[str]):
    """``n`` sorted keys, each computed from its index (``logs/DDDDD/NNNNNNNNNN.json``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not 0 <= i < self.n:
            raise IndexError(i)
        return f"logs/{i // KEYS_PER_DAY:05d}/{i:010d}.json"

    def probe(self, start_after: str | None, max_keys: int) -> list[str]:
        """ListObjectsV2 with StartAfter and MaxKeys, by binary search over the indexes."""
        first = 0 if start_after is None else bisect.bisect_right(self, start_after)
        return self[first : first + max_keys]

    def bounds(self, key_range: KeyRange) -> tuple[int, int]:
        low = 0 if key_range.start_after is None else bisect.bisect_right(self, key_range.start_after)
        high = self.n if key_range.end is None else bisect.bisect_right(self, key_range.end)
        return low, high


def etag(i: int) -> str:
    """An MD5-like hex string per key (as incompressible in a manifest as a real one)."""
    return f"{(i * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128):032x}"


def source_listing(keys: VirtualKeys, low: int, high: int, scenario: str) -> Iterator[ObjectInfo]:
    for i in range(low, high):
        kind = i % 200
        if scenario == "first" or kind != 1:  # incremental: 0.5% vanished (only in the backup)
            newer = scenario == "incremental" and kind in (2, 3)  # 1% changed
            yield ObjectInfo(keys[i], 1024, etag(i), EPOCH + (100 if newer else 0))


def backup_listing(keys: VirtualKeys, low: int, high: int, scenario: str) -> Iterator[ObjectInfo]:
    if scenario == "first":
        return
    for i in range(low, high):
        if i % 200 != 0:  # 0.5% new: only in the source
            yield ObjectInfo(keys[i], 1024, etag(i), EPOCH + 50)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def diff_task(job: tuple[int, int, int, int, str, str]) -> dict[str, Any]:
    """One partition's diff, as the diff task runs it, writing manifests to ``folder``."""
    index, n, low, high, scenario, folder = job
    keys = VirtualKeys(n)
    began = cpu_seconds()
    counts: Counter[str] = Counter()
    sampler = KeySampler()
    paths = {name: os.path.join(folder, f"p{index}-{name}.jsonl.gz") for name in ("copy", "vanished")}
    with open(paths["copy"], "wb") as copy_file, open(paths["vanished"], "wb") as vanished_file:
        to_copy, vanished = ManifestWriter(copy_file), ManifestWriter(vanished_file)
        source = check_sorted(source_listing(keys, low, high, scenario), "source")
        backup = check_sorted(backup_listing(keys, low, high, scenario), "backup")
        for action, src, dst in merge_listings(source, backup, Compare.SIZE_MTIME):
            counts[action] += 1
            if src is not None:
                sampler.add(src.key)
                counts["source_bytes"] += src.size
            if action is Action.NEW or action is Action.CHANGED:
                counts["bytes_to_copy"] += src.size
                to_copy.write(src.to_record())
            elif action is Action.VANISHED:
                vanished.write(dst.to_record())
        to_copy.close()
        vanished.close()
    samples = json.dumps(sampler.samples()).encode()
    label = KeyRange(keys[low - 1] if low else None, keys[high - 1] if high < n else None).label
    result = xcom_of_diff(index, label, counts, to_copy.count, vanished.count)
    return {
        "index": index,
        "keys": high - low,
        "to_copy": to_copy.count,
        "cpu": cpu_seconds() - began,
        "rss_mib": peak_rss_mib(),
        "manifest_bytes": os.path.getsize(paths["copy"]) + os.path.getsize(paths["vanished"]),
        "samples_bytes": len(samples),
        "xcom": result,
    }


def copy_read_task(job: tuple[int, str]) -> dict[str, Any]:
    """The copy task's side of a manifest: every record read back into an ObjectInfo."""
    index, folder = job
    path = os.path.join(folder, f"p{index}-copy.jsonl.gz")
    began = cpu_seconds()
    read = 0
    with open(path, "rb") as stream:
        for record in iter_records(stream):
            ObjectInfo.from_record(record)
            read += 1
    os.unlink(path)
    os.unlink(os.path.join(folder, f"p{index}-vanished.jsonl.gz"))
    return {"index": index, "read": read, "cpu": cpu_seconds() - began, "rss_mib": peak_rss_mib()}


def xcom_of_diff(index: int, label: str, counts: Counter[str], copies: int, gone: int) -> dict[str, Any]:
    """What the diff task returns through XCom (the same fields as operators/diff.py)."""
    new, changed = counts[Action.NEW], counts[Action.CHANGED]
    unchanged, vanished = counts[Action.UNCHANGED], counts[Action.VANISHED]
    return {
        "index": index,
        "label": label,
        "source_objects": new + changed + unchanged,
        "backup_objects": changed + unchanged + vanished,
        "new": new,
        "changed": changed,
        "unchanged": unchanged,
        "vanished": vanished,
        "to_copy": new + changed,
        "skipped_archived": 0,
        "archive_restores_requested": 0,
        "bytes_to_copy": counts["bytes_to_copy"],
        "content_checked": 0,
        "content_unknown": 0,
        "source_bytes": counts["source_bytes"],
        "copy_manifest": f"{RUN_URI}/manifests/p{index:05d}-copy.jsonl.gz" if copies else "",
        "vanished_manifest": f"{RUN_URI}/manifests/p{index:05d}-vanished.jsonl.gz" if gone else "",
        "archived_keys": [],
        "samples_uri": f"{RUN_URI}/manifests/p{index:05d}-samples.json",
    }


def xcom_of_copy(index: int, copied: int) -> dict[str, Any]:
    return {"index": index, "copied": copied, "bytes": copied * 1024, "skipped_done": 0, "failed": 0}


def xcom_of_tag(index: int) -> dict[str, Any]:
    return {"index": index, "tagged": 0, "already_tagged": 0, "failed": 0, "failures": [], "dropped_tags": []}


def pure_diff(pairs: int) -> dict[str, Any]:
    source, backup = listings(pairs)
    keys = len({o.key for o in source} | {o.key for o in backup})
    _, cpu, _ = min((walk(source, backup, checked=False) for _ in range(3)), key=lambda r: r[1])
    return {"pairs": pairs, "keys": keys, "cpu_seconds": round(cpu, 3), "keys_per_second": round(keys / cpu)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    keys = VirtualKeys(args.keys)
    began = time.perf_counter()
    plan_cpu = cpu_seconds()
    planned = plan_by_probing(keys.probe, target_keys=args.target_keys, max_partitions=args.max_map_length)
    plan_cpu = cpu_seconds() - plan_cpu
    partitions = [{"index": i, **r.to_dict()} for i, r in enumerate(planned.ranges)]
    bounds = [keys.bounds(r) for r in planned.ranges]
    # Each task in a fresh process forked from a small server, as a mapped task starts: its peak
    # RSS is its own, not this process's (which held the plan's probe results).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["s3br_provider.core.diff", "s3br_provider.core.manifest"])
    with tempfile.TemporaryDirectory(prefix="s3br-scale-") as folder:
        jobs = [(i, args.keys, low, high, args.scenario, folder) for i, (low, high) in enumerate(bounds)]
        with context.Pool(args.workers, maxtasksperchild=1) as pool:
            diffs = pool.map(diff_task, jobs, chunksize=1)
            reads = pool.map(copy_read_task, [(d["index"], folder) for d in diffs], chunksize=1)
    wall = time.perf_counter() - began
    total_keys = sum(d["keys"] for d in diffs)
    assert total_keys == args.keys, (total_keys, args.keys)  # the plan covers every key once
    xcom = {
        "plan": len(json.dumps(partitions)),
        "diff": sum(len(json.dumps(d["xcom"])) for d in diffs),
        "copy": sum(len(json.dumps(xcom_of_copy(r["index"], r["read"]))) for r in reads),
        "tag": sum(len(json.dumps(xcom_of_tag(d["index"]))) for d in diffs),
    }
    diff_cpu, read_cpu = sum(d["cpu"] for d in diffs), sum(r["cpu"] for r in reads)
    copies = sum(d["to_copy"] for d in diffs)
    sizes = [d["keys"] for d in diffs]
    return {
        "keys": args.keys,
        "scenario": args.scenario,
        "target_keys": args.target_keys,
        "partitions": len(partitions),
        "keys_per_partition": {"min": min(sizes), "max": max(sizes), "mean": round(total_keys / len(sizes))},
        "plan": {"probes": planned.probes, "cpu_seconds": round(plan_cpu, 3), "exact": planned.exact},
        "diff_task": {
            "keys_per_cpu_second": round(total_keys / diff_cpu),
            "peak_rss_mib": round(max(d["rss_mib"] for d in diffs), 1),
        },
        "copy_manifest_read": {
            "records_per_cpu_second": round(copies / read_cpu) if read_cpu else None,
            "peak_rss_mib": round(max(r["rss_mib"] for r in reads), 1),
        },
        "pipeline_keys_per_cpu_second": round(total_keys / (plan_cpu + diff_cpu + read_cpu)),
        "manifest_bytes_per_key": round(sum(d["manifest_bytes"] for d in diffs) / total_keys, 2),
        "manifest_bytes_per_record": round(sum(d["manifest_bytes"] for d in diffs) / max(1, copies), 2),
        "samples_bytes": sum(d["samples_bytes"] for d in diffs),
        "xcom_bytes": {**xcom, "total": sum(xcom.values())},
        "wall_seconds": round(wall, 1),
        "workers": args.workers,
    }


def show(result: dict[str, Any]) -> str:
    rows = [
        ("keys", f"{result['keys']:,} ({result['scenario']} run)"),
        ("partitions", f"{result['partitions']:,} ({result['keys_per_partition']})"),
        ("plan", f"{result['plan']['probes']} probes, {result['plan']['cpu_seconds']} CPU s"),
        ("diff task", f"{result['diff_task']['keys_per_cpu_second']:,} keys/s per core"),
        (
            "copy manifest read",
            f"{result['copy_manifest_read']['records_per_cpu_second']:,} records/s per core",
        ),
        ("whole pipeline", f"{result['pipeline_keys_per_cpu_second']:,} keys/s per core"),
        (
            "peak RSS per task",
            f"diff {result['diff_task']['peak_rss_mib']} MiB, copy read "
            f"{result['copy_manifest_read']['peak_rss_mib']} MiB",
        ),
        (
            "manifest bytes",
            f"{result['manifest_bytes_per_key']} per key, {result['manifest_bytes_per_record']} per record",
        ),
        ("XCom bytes per run", f"{result['xcom_bytes']}"),
        ("pure diff (1M pairs)", f"{result['pure_diff']['keys_per_second']:,} keys/s per core"),
        ("wall", f"{result['wall_seconds']} s on {result['workers']} worker processes"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--scenario", choices=("first", "incremental"), default="first")
    parser.add_argument("--target-keys", type=int, default=5000, help="[s3br] target_keys_per_partition")
    parser.add_argument("--max-map-length", type=int, default=1024, help="[core] max_map_length")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--pure-diff-pairs", type=int, default=1_000_000)
    args = parser.parse_args()
    result = run(args)
    result["pure_diff"] = pure_diff(args.pure_diff_pairs)
    print(show(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
