"""Which transport should send s3br's hot S3 requests: CPU and throughput per choice.

Against a moto server started on a free loopback port (or ``--endpoint URL``), on 32 threads:

* N CopyObject of 1 KiB objects through (a) boto3 ``copy_object``, (b) ``DirectS3`` signed by
  the hand-written SigV4 signer s3br used to ship (kept here, for comparison only), (c)
  ``DirectS3`` signed by botocore's ``S3SigV4Auth`` (what the hook ships), and awscrt's signer
  when awscrt can be imported (``--crt-path DIR``, e.g. ``uv pip install --target DIR awscrt``;
  it is no dependency of s3br);
* M ListObjectsV2 pages of 1,000 keys through boto3's paginator and the same direct choices;
* multipart copies (20 objects of 12 MiB, parts of 5 MiB): the old hook code (one 4-thread
  pool per object inside the 32 copy threads) and s3transfer's managed copy as the hook runs
  it (one TransferManager, every request holding one of 32 request slots).

Each choice runs ``--runs`` times, interleaved; the medians are printed as a Markdown table:
operations per second, client CPU ms per operation (``time.process_time``, all threads) and
the server's CPU ms per operation (psutil, moto's process; not shown with ``--endpoint``).

    python -m bench.transport [--copies 2000] [--pages 60] [--runs 3] [--crt-path DIR]
        [--endpoint URL] [--markdown bench/results/transport.md]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import psutil
from botocore.config import Config

from tests.support.s3 import moto_child

MiB = 1024 * 1024
THREADS = 32
KEY = "bench"  # moto accepts any credentials
REGION = "us-east-1"
COPY_FIELDS = {"MetadataDirective": "COPY", "TaggingDirective": "COPY"}
COPY_HEADERS = {"x-amz-metadata-directive": "COPY", "x-amz-tagging-directive": "COPY"}


# The endpoint ---------------------------------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[tuple[str, psutil.Process]]:
    """A moto server in a child process on a free loopback port: its URL and process."""
    with moto_child() as (url, proc):
        yield url, psutil.Process(proc.pid)


def new_session() -> Any:
    return boto3.session.Session(aws_access_key_id=KEY, aws_secret_access_key=KEY, region_name=REGION)


def new_client(session: Any, endpoint: str) -> Any:
    config = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=THREADS + 8)
    return session.client("s3", endpoint_url=endpoint, config=config)


# Signers compared -----------------------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@lru_cache(maxsize=16)
def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign_by_hand(method: str, url: str, headers: dict[str, str], creds: Any, region: str) -> dict[str, str]:
    """The SigV4 signer s3br shipped until it measured this (core/sigv4.py), for body-less
    requests; the query string arrives already canonical."""
    parts = urlsplit(url)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    signed = {**headers, "x-amz-date": stamp, "x-amz-content-sha256": EMPTY_SHA256}
    if creds.token:
        signed["x-amz-security-token"] = creds.token
    names = sorted(signed)
    canonical_headers = "".join(f"{name}:{' '.join(signed[name].split())}\n" for name in names)
    signed_names = ";".join(names)
    canonical = f"{method}\n{parts.path}\n{parts.query}\n{canonical_headers}\n{signed_names}\n{EMPTY_SHA256}"
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _signing_key(creds.secret_key, stamp[:8], region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return signed


def crt_signer() -> Callable[..., dict[str, str]] | None:
    """awscrt's SigV4 signer, or None if awscrt cannot be imported."""
    try:
        from awscrt import auth, http
    except ImportError:
        return None

    @lru_cache(maxsize=4)
    def config_for(access: str, secret: str, token: str | None, region: str) -> Any:
        return auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=auth.AwsCredentialsProvider.new_static(access, secret, token),
            region=region,
            service="s3",
            signed_body_value=auth.AwsSignedBodyValue.EMPTY_SHA256,
            signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
            use_double_uri_encode=False,
            should_normalize_uri_path=False,
        )

    def sign(method: str, url: str, headers: dict[str, str], creds: Any, region: str) -> dict[str, str]:
        parts = urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        request = http.HttpRequest(method, target, http.HttpHeaders(list(headers.items())))
        config = config_for(creds.access_key, creds.secret_key, creds.token, region)
        auth.aws_sign_request(request, config).result()
        return dict(request.headers)

    return sign


# Measuring ------------------------------------------------------------------------------------


@dataclass
class Sample:
    ops: int
    wall: float
    cpu: float
    server_cpu: float | None


def cpu_of(server: psutil.Process | None) -> float | None:
    if server is None:
        return None
    times = server.cpu_times()
    return times.user + times.system


def measure(run: Callable[[], int], server: psutil.Process | None) -> Sample:
    server_before, cpu_before, wall_before = cpu_of(server), time.process_time(), time.perf_counter()
    ops = run()
    wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
    server_after = cpu_of(server)
    server_cpu = None if server_before is None or server_after is None else server_after - server_before
    return Sample(ops, wall, cpu, server_cpu)


def on_threads(fn: Callable[[Any], Any], items: list[Any]) -> int:
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for _ in pool.map(fn, items):
            pass
    return len(items)


# The workloads --------------------------------------------------------------------------------


def copy_with_boto3(client: Any, src: str, dst: str, keys: list[str]) -> Callable[[], int]:
    def one(key: str) -> None:
        client.copy_object(Bucket=dst, Key=key, CopySource={"Bucket": src, "Key": key}, **COPY_FIELDS)

    return lambda: on_threads(one, keys)


def copy_direct(direct: Any, src: str, dst: str, keys: list[str]) -> Callable[[], int]:
    from s3br_provider.hooks.direct_s3 import copy_source_header

    def one(key: str) -> None:
        direct.copy(dst, key, {**COPY_HEADERS, "x-amz-copy-source": copy_source_header(src, key)})

    return lambda: on_threads(one, keys)


def list_with_boto3(client: Any, bucket: str, pages: int) -> Callable[[], int]:
    from s3br_provider.core.objects import ObjectInfo

    def one(_: int) -> int:
        done = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            [ObjectInfo.from_listing(item) for item in page.get("Contents", [])]
            done += 1
        return done

    return lambda: sum(on_threads_results(one, pages))


def list_direct(direct: Any, bucket: str, pages: int) -> Callable[[], int]:
    def one(_: int) -> int:
        done, token = 0, None
        while True:
            page = direct.list_page(bucket, "", None, token)
            done += 1
            if page.next_token is None:
                return done
            token = page.next_token

    return lambda: sum(on_threads_results(one, pages))


def on_threads_results(fn: Callable[[int], int], listings: int) -> list[int]:
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(fn, range(listings)))


def old_multipart_copy(client: Any, src: str, dst: str, key: str, threshold: int) -> None:
    """The hook's multipart copy before s3transfer: head, tags, create, 4 part threads, complete."""
    head = client.head_object(Bucket=src, Key=key)
    tags = client.get_object_tagging(Bucket=src, Key=key).get("TagSet", [])
    create: dict[str, Any] = {"Bucket": dst, "Key": key}
    for name in (
        "ContentType",
        "ContentEncoding",
        "ContentDisposition",
        "ContentLanguage",
        "CacheControl",
        "Expires",
        "Metadata",
    ):
        if head.get(name) is not None:
            create[name] = head[name]
    if tags:
        create["Tagging"] = urlencode({t["Key"]: t["Value"] for t in tags})
    upload_id = client.create_multipart_upload(**create)["UploadId"]
    size = head["ContentLength"]
    part = max(5 * MiB, min(threshold, 512 * MiB), math.ceil(size / 10_000))
    ranges = [(start, min(start + part, size) - 1) for start in range(0, size, part)]

    def copy_part(numbered: tuple[int, tuple[int, int]]) -> dict[str, Any]:
        number, (first, last) = numbered
        answer = client.upload_part_copy(
            Bucket=dst,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": src, "Key": key},
            CopySourceRange=f"bytes={first}-{last}",
        )
        return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            parts = list(pool.map(copy_part, enumerate(ranges, start=1)))
        client.complete_multipart_upload(
            Bucket=dst, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        client.abort_multipart_upload(Bucket=dst, Key=key, UploadId=upload_id)
        raise


def multipart_old(client: Any, src: str, dst: str, keys: list[str]) -> Callable[[], int]:
    return lambda: on_threads(lambda key: old_multipart_copy(client, src, dst, key, 5 * MiB), keys)


def multipart_s3transfer(client: Any, src: str, dst: str, keys: list[str]) -> Callable[[], int]:
    from s3transfer.manager import TransferConfig, TransferManager

    from s3br_provider.core.pool import RequestSlots
    from s3br_provider.hooks.s3_bucket import SlottedClient

    config = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_request_concurrency=32
    )
    manager = TransferManager(SlottedClient(client, RequestSlots(THREADS)), config)

    def one(key: str) -> None:
        manager.copy({"Bucket": src, "Key": key}, dst, key, extra_args={"TaggingDirective": "COPY"}).result()

    return lambda: on_threads(one, keys)


# Running --------------------------------------------------------------------------------------


def fill(client: Any, bucket: str, keys: list[str], body: bytes, **extra: Any) -> None:
    client.create_bucket(Bucket=bucket)
    on_threads(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body, **extra), keys)


Workloads = dict[str, dict[str, Callable[[], int]]]


def choices(
    endpoint: str, copies: int, pages: int, multipart: int
) -> dict[str, dict[str, Callable[[], int]]]:
    """Every workload per transport choice, on buckets filled here."""
    from s3br_provider.hooks.direct_s3 import DirectS3, sign_with_botocore

    session = new_session()
    client = new_client(session, endpoint)
    keys = [f"k/{i:06d}" for i in range(copies)]
    big = [f"big/{i:03d}" for i in range(multipart)]
    fill(client, "src", keys, os.urandom(1024), Tagging="team=blue", Metadata={"owner": "alice"})
    client.create_bucket(Bucket="dst")
    if multipart:
        fill(client, "bigsrc", big, os.urandom(12 * MiB), Tagging="team=blue", ContentType="text/plain")
        client.create_bucket(Bucket="bigdst")
    signers = {"hand-written SigV4": sign_by_hand, "botocore S3SigV4Auth": sign_with_botocore}
    crt = crt_signer()
    if crt is not None:
        signers["awscrt SigV4"] = crt
    listings = max(1, pages // max(1, math.ceil(copies / 1000)))
    found: Workloads = {
        "boto3": {
            "copy": copy_with_boto3(client, "src", "dst", keys),
            "list": list_with_boto3(client, "src", listings),
        }
    }
    for name, signer in signers.items():
        direct = DirectS3(
            client, session.get_credentials(), pool_size=THREADS + 8, verify=None, signer=signer
        )
        found[f"direct, {name}"] = {
            "copy": copy_direct(direct, "src", "dst", keys),
            "list": list_direct(direct, "src", listings),
        }
    if multipart:
        found["multipart: old hook code (4 part threads per object)"] = {
            "multipart": multipart_old(client, "bigsrc", "bigdst", big)
        }
        found["multipart: s3transfer managed copy (32 slots)"] = {
            "multipart": multipart_s3transfer(client, "bigsrc", "bigdst", big)
        }
    return found


def median_row(samples: list[Sample]) -> tuple[float, float, float | None]:
    rate = statistics.median(s.ops / s.wall for s in samples)
    cpu = statistics.median(1000 * s.cpu / s.ops for s in samples)
    server = [1000 * s.server_cpu / s.ops for s in samples if s.server_cpu is not None]
    return rate, cpu, statistics.median(server) if server else None


def table(results: dict[tuple[str, str], list[Sample]], runs: int) -> str:
    units = {"copy": "copies/s", "list": "pages/s", "multipart": "objects/s"}
    lines = [
        f"| workload | transport | {'rate'} | client CPU ms/op | server CPU ms/op | runs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (choice, workload), samples in results.items():
        rate, cpu, server = median_row(samples)
        shown = "n/a" if server is None else f"{server:.2f}"
        lines.append(
            f"| {workload} | {choice} | {rate:,.0f} {units[workload]} | {cpu:.3f} | {shown} "
            f"| {len(samples)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--multipart", type=int, default=20, help="12 MiB objects copied in parts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--endpoint", help="an S3 endpoint instead of a moto server of our own")
    parser.add_argument("--crt-path", help="a directory holding awscrt (pip install --target DIR)")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins"))
    if args.crt_path:
        sys.path.append(args.crt_path)

    with moto_server() if args.endpoint is None else _given(args.endpoint) as (endpoint, server):
        workloads = choices(endpoint, args.copies, args.pages, args.multipart)
        results: dict[tuple[str, str], list[Sample]] = {}
        for run in range(args.runs):
            for choice, jobs in workloads.items():
                for workload, job in jobs.items():
                    sample = measure(job, server)
                    results.setdefault((choice, workload), []).append(sample)
                    print(
                        f"run {run + 1}: {workload:9} {choice:52} {sample.ops / sample.wall:8.0f}/s "
                        f"{1000 * sample.cpu / sample.ops:7.3f} ms CPU/op",
                        flush=True,
                    )
    text = table(results, args.runs)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(text + "\n")


@contextmanager
def _given(endpoint: str) -> Iterator[tuple[str, None]]:
    yield endpoint, None


if __name__ == "__main__":
    main()
