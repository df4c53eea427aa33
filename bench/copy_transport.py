"""Threads or one event loop for a task's CopyObject requests: client CPU per copy.

Starts SeaweedFS (``bench/setup_tools.sh``) behind the benchmark's delaying proxy, puts N
objects of 1 KiB (Content-Type, user metadata, a tag), then copies them into a new bucket for
each choice, interleaved, ``--runs`` times:

* **threads**: ``S3BucketHook.copy`` on 32 ``bounded_map`` threads (the copy step until
  ``AsyncCopies``; each copy goes through ``DirectS3`` on urllib3);
* **loop**: ``AsyncCopies`` on the same hook, 32 requests in flight on one event loop (what
  ``copy_batch`` runs now), ``hook.copy`` as its fallback.

Client CPU is ``time.process_time()`` of this process (all threads) per copy; the medians are
printed as a Markdown table.

    python -m bench.copy_transport [--objects 4000] [--runs 3] [--latency-ms 30] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.endpoints import running_endpoint
from tests.support.s3 import aws_conn_env, local_client

THREADS = 32
THRESHOLD = 5 * 1024**3


def seed(url: str, keys: list[str]) -> None:
    s3 = local_client("s3", url, pool=THREADS)
    s3.create_bucket(Bucket="src")

    def put(key: str) -> None:
        s3.put_object(
            Bucket="src",
            Key=key,
            Body=b"x" * 1024,
            ContentType="text/plain",
            Metadata={"a": "b"},
            Tagging="t=1",
        )

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(put, keys))


def hook_for(url: str) -> Any:
    os.environ["AIRFLOW_CONN_S3BR_BENCH"] = aws_conn_env(url)
    from s3br_provider.hooks.s3_bucket import S3BucketHook

    return S3BucketHook("s3br_bench", max_in_flight=THREADS)


def on_threads(hook: Any, objects: list[Any], target: str) -> None:
    from s3br_provider.core.pool import bounded_map

    def copy(obj: Any) -> bool:
        return hook.copy(obj, "src", target, multipart_threshold=THRESHOLD)

    for _, _, error in bounded_map(copy, iter(objects), workers=THREADS):
        assert error is None, error


def on_loop(hook: Any, objects: list[Any], target: str) -> None:
    def request(obj: Any) -> Any:
        return hook.direct_copy(obj, "src", target, multipart_threshold=THRESHOLD)

    def fallback(obj: Any, answered: Any) -> bool:
        return hook.copy(obj, "src", target, multipart_threshold=THRESHOLD, answered=answered)

    for _, _, error in hook.async_copies().run(iter(objects), request, fallback, workers=THREADS):
        assert error is None, error


def on_loop_hand_signed(hook: Any, objects: list[Any], target: str) -> None:
    """``on_loop`` with the hand-written SigV4 signer of ``bench/transport.py`` (comparison)."""
    from bench.transport import sign_by_hand

    shipped = hook.direct._sign
    hook.direct._sign = sign_by_hand
    try:
        on_loop(hook, objects, target)
    finally:
        hook.direct._sign = shipped


CHOICES: dict[str, Callable[[Any, list[Any], str], None]] = {
    "threads": on_threads,
    "loop": on_loop,
    "loop-hand-signed": on_loop_hand_signed,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    from s3br_provider.core.objects import ObjectInfo

    keys = [f"d{i % 50:02d}/obj-{i:07d}.bin" for i in range(args.objects)]
    objects = [ObjectInfo(key=key, size=1024, etag="", last_modified=0.0) for key in keys]
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in CHOICES}
    with tempfile.TemporaryDirectory(prefix="s3br-copy-transport-") as folder:
        with running_endpoint("seaweedfs", Path(folder), latency_ms=args.latency_ms) as endpoint:
            seed(endpoint.direct_url, keys)
            hook = hook_for(endpoint.url)
            for run in range(args.runs):
                for name, choice in CHOICES.items():
                    target = f"dst-{name}-{run}"
                    hook.client.create_bucket(Bucket=target)
                    started, cpu = time.perf_counter(), time.process_time()
                    choice(hook, objects, target)
                    rows[name].append((time.perf_counter() - started, time.process_time() - cpu))
                    print(f"{name}: run {run + 1}: {rows[name][-1][0]:.2f} s", file=sys.stderr)
    lines = [
        f"`python -m bench.copy_transport --objects {args.objects} --runs {args.runs} --latency-ms "
        f"{args.latency_ms:g}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{platform.platform()}: SeaweedFS behind a proxy adding {args.latency_ms:g} ms per request, "
        f"{THREADS} copies in flight; medians of {args.runs} interleaved runs.",
        "",
        "| choice | copies/s | client CPU ms/copy | runs |",
        "|---|---:|---:|---:|",
    ]
    for name, runs in rows.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        lines.append(
            f"| {name} | {args.objects / wall:.0f} | {cpu * 1000 / args.objects:.3f} | {len(runs)} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)


if __name__ == "__main__":
    main()
