"""The benchmark's data: seeding a source bucket, changing 1% of it, checking a copy."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

CREDENTIALS = "testing"  # every endpoint here is local and accepts any credentials
REGION = "us-east-1"
RESERVED = "_s3br/"
SEED_THREADS = 32
PREFIXES = 50
CHANGED_EVERY = 100  # 1% of the keys


def client(endpoint_url: str, pool: int = 64) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=CREDENTIALS,
        aws_secret_access_key=CREDENTIALS,
        region_name=REGION,
        config=Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 10}),
    )


def key_of(index: int) -> str:
    """Keys spread over ``PREFIXES`` folders, as a bucket of daily folders or tenants would be."""
    return f"d{index % PREFIXES:02d}/obj-{index:07d}.bin"


def body_of(index: int, size: int, version: int = 1) -> bytes:
    stamp = f"v{version} object {index:07d} ".encode()
    return (stamp * (size // len(stamp) + 1))[:size]


def wait_writable(s3: Any, timeout: float = 60) -> None:
    """Wait until the endpoint creates buckets (SeaweedFS answers before its filer is ready)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s3.create_bucket(Bucket="bench-probe")
            s3.delete_bucket(Bucket="bench-probe")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def create_bucket(s3: Any, bucket: str) -> None:
    s3.create_bucket(Bucket=bucket)


def parallel(fn: Callable[[int], Any], indexes: range | list[int], threads: int = SEED_THREADS) -> None:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(fn, indexes):
            pass


#: What every source object carries besides its bytes, so that a copy can be checked for it.
CONTENT_TYPE = "application/x-s3br-bench"
METADATA = {"origin": "s3br-bench"}
TAGS = {"bench": "yes"}


def put(s3: Any, bucket: str, index: int, size: int, version: int = 1) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=key_of(index),
        Body=body_of(index, size, version),
        ContentType=CONTENT_TYPE,
        Metadata=METADATA,
        Tagging="&".join(f"{k}={v}" for k, v in TAGS.items()),
    )


def seed(s3: Any, bucket: str, count: int, size: int) -> float:
    """Put ``count`` objects of ``size`` bytes (with a Content-Type, user metadata and a tag);
    return the seconds it took."""
    began = time.perf_counter()
    create_bucket(s3, bucket)
    parallel(lambda i: put(s3, bucket, i, size), range(count))
    return time.perf_counter() - began


def changed_indexes(count: int) -> list[int]:
    return list(range(7 % CHANGED_EVERY, count, CHANGED_EVERY)) or [0]


def rewrite_one_percent(s3: Any, bucket: str, count: int, size: int) -> int:
    """Rewrite 1% of the objects with new content of the same size; return how many.

    Same size on purpose: a tool must notice the newer modification time, not a size change.
    S3 times have one-second resolution, so the rewrite waits until the copies are older.
    """
    time.sleep(1.1)
    indexes = changed_indexes(count)
    parallel(lambda i: put(s3, bucket, i, size, version=2), indexes)
    return len(indexes)


def listing(s3: Any, bucket: str) -> dict[str, tuple[int, str]]:
    """Key -> (size, ETag) of every data object (the reserved ``_s3br/`` prefix left out)."""
    found: dict[str, tuple[int, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if not item["Key"].startswith(RESERVED):
                found[item["Key"]] = (int(item["Size"]), item["ETag"].strip('"'))
    return found


@dataclass(frozen=True)
class Check:
    missing: int
    stale: int
    extra: int

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.stale == 0 and self.extra == 0

    def describe(self) -> str:
        return "ok" if self.ok else f"missing {self.missing}, stale {self.stale}, extra {self.extra}"


def check_copy(source: dict[str, tuple[int, str]], s3: Any, bucket: str) -> Check:
    """Compare a destination with the source listing: same keys, same sizes and ETags.

    A server-side CopyObject keeps a single-part object's ETag (its MD5), so equal ETags mean
    equal bytes on every endpoint used here.
    """
    copy = listing(s3, bucket)
    missing = sum(1 for key in source if key not in copy)
    stale = sum(1 for key, value in source.items() if key in copy and copy[key] != value)
    extra = sum(1 for key in copy if key not in source)
    return Check(missing, stale, extra)


def carried(s3: Any, src: str, dst: str, keys: list[str]) -> str:
    """What the copies of ``keys`` kept of their sources' Content-Type, user metadata and tags:
    ``type+meta+tags`` when all of it, otherwise the parts kept and ``lost: ...``."""
    kept = {"type": 0, "meta": 0, "tags": 0}
    for key in keys:
        source, copy = s3.head_object(Bucket=src, Key=key), s3.head_object(Bucket=dst, Key=key)
        kept["type"] += copy.get("ContentType") == source.get("ContentType")
        kept["meta"] += source.get("Metadata", {}).items() <= copy.get("Metadata", {}).items()
        tags = [s3.get_object_tagging(Bucket=b, Key=key).get("TagSet", []) for b in (src, dst)]
        kept["tags"] += sorted(map(str, tags[0])) == sorted(map(str, tags[1]))
    whole = [name for name, count in kept.items() if count == len(keys)]
    lost = [f"{name} {len(keys) - count}/{len(keys)}" for name, count in kept.items() if count < len(keys)]
    return "+".join(whole) + (f" (lost: {', '.join(lost)})" if lost else "")


def sample_keys(count: int, size: int = 8) -> list[str]:
    """A few keys to check in depth: spread over the bucket, half of them among the rewritten."""
    step = max(1, count // size)
    plain = [key_of(i) for i in range(0, count, step)][: size // 2]
    return plain + [key_of(i) for i in changed_indexes(count)[: size // 2]]
