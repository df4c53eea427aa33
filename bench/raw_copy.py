"""The ceiling: the simplest correct incremental copy with boto3, run as its own process.

List the source and the destination, copy (CopyObject, server-side) every key that is missing,
of another size, or newer in the source, on 32 threads sharing one client. Prints one JSON line.

    python -m bench.raw_copy --endpoint URL --src BUCKET --dst BUCKET [--threads 32]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.s3data import RESERVED, client

THREADS = 32


def list_all(s3: Any, bucket: str) -> dict[str, tuple[int, float]]:
    found: dict[str, tuple[int, float]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if not item["Key"].startswith(RESERVED):
                found[item["Key"]] = (int(item["Size"]), item["LastModified"].timestamp())
    return found


def to_copy(source: dict[str, tuple[int, float]], dest: dict[str, tuple[int, float]]) -> list[str]:
    """Keys missing from ``dest``, of another size there, or modified later in ``source``."""
    work = []
    for key, (size, modified) in source.items():
        copy = dest.get(key)
        if copy is None or copy[0] != size or modified > copy[1]:
            work.append(key)
    return work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    s3 = client(args.endpoint, pool=2 * args.threads)
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        source_listing = pool.submit(list_all, s3, args.src)
        dest_listing = pool.submit(list_all, s3, args.dst)
        source, dest = source_listing.result(), dest_listing.result()
    listed = time.perf_counter() - began
    work = to_copy(source, dest)

    def copy(key: str) -> None:
        s3.copy_object(Bucket=args.dst, Key=key, CopySource={"Bucket": args.src, "Key": key})

    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for _ in pool.map(copy, work):
            pass
    print(
        json.dumps(
            {
                "source_objects": len(source),
                "copied": len(work),
                "list_seconds": round(listed, 3),
                "copy_seconds": round(time.perf_counter() - began - listed, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
