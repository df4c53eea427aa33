"""S3BucketHook against the session's moto S3 server (and the fault proxy in front of it)."""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError
from s3transfer.utils import ChunksizeAdjuster

from s3br_provider.core.keys import s3_sort_key
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.partitions import KeyRange, ranges_from_boundaries
from s3br_provider.core.versions import group_by_key
from s3br_provider.hooks.s3_bucket import MAX_PARTS, MIN_PART, MiB, S3BucketHook, part_size
from tests.integration.conftest import PROXY_CONN_ID
from tests.support import fault_proxy as fault_proxy_module
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys, snapshot

LONG_ASCII_KEY = "long/" + "x" * 995
LONG_UNICODE_KEY = "longu/" + "ü" * 497
ODD_KEYS = [
    "A",
    "Z",
    "a",
    "0",
    "9",
    "-",
    "~",
    "!bang",
    "plain.txt",
    "with space.txt",
    "  leading spaces",
    "trailing space ",
    "plus+sign",
    "a+b=c&d",
    "percent%41literal",
    "100%",
    "%2F-not-a-slash",
    "double//slash",
    "triple///slash/x",
    "folder/",
    "folder/sub/",
    "folder/file",
    "trailing/slash/",
    "ünïcödé/ключ",
    "日本語/ファイル.txt",
    "emoji/😀.txt",
    "emoji/🚀 rocket",
    "emoji/👩\u200d👩\u200d👧",
    "question?mark",
    "hash#tag",
    "semi;colon:colon",
    "comma,quote'",
    "brackets[1](2){3}",
    "tilde~caret^",
    "at@dollar$",
    "star*",
    "back\\slash",
    "empty/zero",
    "\u00e9-precomposed",
    "e\u0301-combining",
    "\ufffd-replacement",
    "\U0001f600",
    LONG_ASCII_KEY,
    LONG_UNICODE_KEY,
]
DATA_KEYS = [f"data/{i:02d}" for i in range(16)]
PAGE_KEYS = [f"page/{i:05d}" for i in range(1200)]


def md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def body_for(key: str) -> bytes:
    """Deterministic bodies: zero bytes for folder markers and ``empty/``, else a few bytes."""
    if key.endswith("/") or key.startswith("empty/"):
        return b""
    return (key * (1 + len(key) % 3)).encode("utf-8")


@pytest.fixture(scope="module")
def hook() -> S3BucketHook:
    return S3BucketHook(aws_conn_id="aws_default")


@pytest.fixture
def new_bucket(s3: Any, bucket_names: Callable[[str], str]) -> Callable[[str], str]:
    """Create a fresh bucket named after its role in the test."""

    def create(role: str, *, versioned: bool = False) -> str:
        name = bucket_names(role)
        s3.create_bucket(Bucket=name)
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    return create


@dataclass(frozen=True)
class OddBucket:
    name: str
    bodies: dict[str, bytes]


@pytest.fixture(scope="module")
def odd_bucket(bulk_s3: Any, put_many: Callable[..., None]) -> OddBucket:
    """A bucket of ~60 keys with awkward names (read-only for the tests)."""
    bucket = OddBucket(f"odd-{uuid.uuid4().hex[:8]}", {key: body_for(key) for key in ODD_KEYS + DATA_KEYS})
    bulk_s3.create_bucket(Bucket=bucket.name)
    put_many(bucket.name, bucket.bodies)
    return bucket


@pytest.fixture(scope="module")
def big_bucket(bulk_s3: Any, put_many: Callable[..., None]) -> str:
    """1,200 tiny data keys plus 1,100 reserved ``_s3br/`` keys between data keys.

    Enough to cross ListObjectsV2's 1,000-key pages both inside and after the reserved prefix,
    and small enough for moto (about 200 PutObject a second) to build in seconds.
    """
    bucket = f"big-{uuid.uuid4().hex[:8]}"
    bulk_s3.create_bucket(Bucket=bucket)
    keys = ["A", "_a", "_t", "z"] + PAGE_KEYS
    keys += [f"_s3br/runs/s3_backup/run/{i:05d}.jsonl.gz" for i in range(1100)]
    put_many(bucket, keys)
    return bucket


def listed(hook: S3BucketHook, bucket: str, prefix: str = "", key_range: KeyRange | None = None) -> list:
    return list(hook.iter_objects(bucket, prefix, key_range or KeyRange()))


# Listings ------------------------------------------------------------------------------------


def test_ranges_partition_odd_keys_exactly_once_in_order(hook: S3BucketHook, odd_bucket: OddBucket) -> None:
    bucket, bodies = odd_bucket.name, odd_bucket.bodies
    boundaries = ["data/07", "emoji/", "folder/", "long/", "plus+sign", "ünïcödé/ключ"]
    seen: list[ObjectInfo] = []
    for key_range in ranges_from_boundaries(boundaries):
        part = listed(hook, bucket, "", key_range)
        assert all(key_range.contains(o.key) for o in part), key_range
        seen += part
    keys = [o.key for o in seen]
    assert keys == sorted(bodies, key=s3_sort_key)
    assert max(Counter(keys).values()) == 1 and set(keys) == set(bodies)  # each key exactly once
    for obj in seen:
        assert (obj.size, obj.etag, obj.storage_class) == (
            len(bodies[obj.key]),
            md5(bodies[obj.key]),
            "STANDARD",
        )
    assert sum(o.size == 0 for o in seen) == 4
    assert len(LONG_ASCII_KEY.encode()) == len(LONG_UNICODE_KEY.encode()) == 1000


def test_range_boundary_key_belongs_to_the_range_it_ends(hook: S3BucketHook, odd_bucket: OddBucket) -> None:
    bucket = odd_bucket.name
    before, after = ranges_from_boundaries(["plus+sign"])
    assert listed(hook, bucket, "", before)[-1].key == "plus+sign"
    assert "plus+sign" not in [o.key for o in listed(hook, bucket, "", after)]


def test_prefix_filter(hook: S3BucketHook, odd_bucket: OddBucket) -> None:
    bucket = odd_bucket.name
    assert [o.key for o in listed(hook, bucket, "emoji/")] == sorted(
        (k for k in ODD_KEYS if k.startswith("emoji/")), key=s3_sort_key
    )
    folder = [o.key for o in listed(hook, bucket, "folder/")]
    assert folder == ["folder/", "folder/file", "folder/sub/"]
    # A range that starts before the prefix and ends inside it.
    assert [o.key for o in listed(hook, bucket, "folder/", KeyRange("a", "folder/file"))] == folder[:2]
    # A range entirely after the prefix lists nothing.
    assert listed(hook, bucket, "folder/", KeyRange("g", None)) == []


def test_listing_crosses_pages(hook: S3BucketHook, big_bucket: str) -> None:
    pages = [o.key for o in listed(hook, big_bucket, "page/")]
    assert pages == PAGE_KEYS
    middle = [o.key for o in listed(hook, big_bucket, "", KeyRange("page/00099", "page/01150"))]
    assert middle == PAGE_KEYS[100:1151]


def test_reserved_prefix_is_skipped_and_later_keys_listed(big_bucket: str, fault_proxy: FaultProxy) -> None:
    proxy_hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)
    keys = [o.key for o in listed(proxy_hook, big_bucket)]
    assert keys == ["A", "_a", "_t", *PAGE_KEYS, "z"]
    # The reserved keys are jumped over with a fresh StartAfter, not paged through:
    # one page meets them, two more list the 1,202 keys after them.
    requests = [r for r in fault_proxy.records if r.operation == "ListObjectsV2"]
    assert len(requests) == 3
    assert requests[1].query.get("start-after") == "_s3br/\U0010ffff"
    inside = KeyRange("_a", "_s3br/runs/s3_backup/run/00700.jsonl.gz")
    assert listed(proxy_hook, big_bucket, "", inside) == []
    assert [o.key for o in listed(proxy_hook, big_bucket, "", KeyRange("_a", "_t"))] == ["_t"]


@pytest.mark.timeout(60)
def test_reserved_key_after_the_jump_point_does_not_loop(
    hook: S3BucketHook, new_bucket: Callable[..., str], put_many: Callable[..., None]
) -> None:
    """A reserved key sorting after ``_s3br/`` + U+10FFFF must not make the listing restart forever."""
    bucket = new_bucket("jump")
    put_many(bucket, ["_a", "_s3br/x", "_s3br/\U0010ffff", "_s3br/\U0010ffffz", "_t", "z"])
    assert [o.key for o in listed(hook, bucket)] == ["_a", "_t", "z"]


def test_list_uploads(hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket("uploads")
    first = s3.create_multipart_upload(Bucket=bucket, Key="a/ü 1")["UploadId"]
    s3.create_multipart_upload(Bucket=bucket, Key="b/2")
    assert list(hook.list_uploads(bucket, "a/")) == [("a/ü 1", first)]
    assert len(list(hook.list_uploads(bucket, ""))) == 2
    hook.abort_upload(bucket, "a/ü 1", first)
    assert list(hook.list_uploads(bucket, "a/")) == []
    hook.abort_upload(bucket, "a/ü 1", first)  # already gone: logged, not raised


# Copies --------------------------------------------------------------------------------------


def put_rich(s3: Any, bucket: str, key: str, body: bytes, tags: dict[str, str] | None = None) -> ObjectInfo:
    """Put an object with Content-Type, user metadata and tags; return its listing entry."""
    tags = {"team": "blue", "note": "a b+c/d=e", "umlaut": "Grüße"} if tags is None else tags
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="text/plain; charset=utf-8",
        ContentLanguage="de",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="report.txt"',
        ContentEncoding="identity",
        Expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        Metadata={"owner": "alice", "checksum-sha256": hashlib.sha256(body).hexdigest()},
        Tagging=urlencode(tags),
    )
    return listing_entry(s3, bucket, key)


def listing_entry(s3: Any, bucket: str, key: str) -> ObjectInfo:
    (item,) = [o for o in s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"] if o["Key"] == key]
    return ObjectInfo.from_listing(item)


def assert_same_object(s3: Any, source: str, target: str, key: str) -> None:
    src, dst = snapshot(s3, source, key), snapshot(s3, target, key)
    assert hashlib.sha256(dst.body).digest() == hashlib.sha256(src.body).digest()
    assert (dst.content_type, dst.metadata, dst.tags) == (src.content_type, src.metadata, src.tags)
    head_src, head_dst = s3.head_object(Bucket=source, Key=key), s3.head_object(Bucket=target, Key=key)
    for header in (
        "ContentLanguage",
        "CacheControl",
        "ContentDisposition",
        "ContentEncoding",
        "ExpiresString",
    ):
        assert head_dst.get(header) == head_src.get(header), header


def test_copy_keeps_bytes_type_metadata_and_tags(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]
) -> None:
    source, target = new_bucket("src"), new_bucket("dst")
    obj = put_rich(s3, source, "docs/ünï code+plus %.txt", b"hello backup\n" * 100)
    hook.copy(obj, source, target, multipart_threshold=8 * MiB)
    assert_same_object(s3, source, target, obj.key)
    assert snapshot(s3, target, obj.key).tags == {"team": "blue", "note": "a b+c/d=e", "umlaut": "Grüße"}
    assert s3.head_object(Bucket=target, Key=obj.key)["ETag"].strip('"') == obj.etag


def test_copy_with_tags_replaces_them(hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]) -> None:
    source, target = new_bucket("src"), new_bucket("dst")
    obj = put_rich(s3, source, "k", b"x" * 10)
    hook.copy(obj, source, target, multipart_threshold=8 * MiB, tags={"only": "this one", "x": "1+1=2"})
    assert snapshot(s3, target, "k").tags == {"only": "this one", "x": "1+1=2"}
    hook.copy(obj, source, target, multipart_threshold=8 * MiB, tags={})
    assert snapshot(s3, target, "k").tags == {}
    assert snapshot(s3, target, "k").metadata == snapshot(s3, source, "k").metadata


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="moto 5.2 differs from AWS: CopyObject with TaggingDirective=COPY onto an existing "
    "tagged key keeps the destination's old tags and adds the source's; on AWS the new object "
    "carries the source's tags only",
)
def test_copy_over_a_tagged_object_keeps_only_source_tags(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]
) -> None:
    source, target = new_bucket("src"), new_bucket("dst")
    obj = put_rich(s3, source, "k", b"back again", tags={"keep": "again"})
    put_rich(s3, target, "k", b"old", tags={"keep": "me", "Deleted": "True", "DeletedAt": "2020-01-02T03:04"})
    hook.copy(obj, source, target, multipart_threshold=8 * MiB)
    assert snapshot(s3, target, "k").tags == {"keep": "again"}


def test_copy_every_odd_key(
    hook: S3BucketHook, s3: Any, odd_bucket: OddBucket, new_bucket: Callable[..., str]
) -> None:
    source, target = odd_bucket.name, new_bucket("dst")
    for obj in listed(hook, source):
        hook.copy(obj, source, target, multipart_threshold=8 * MiB)
    assert list_keys(s3, target) == list_keys(s3, source)
    for key in (LONG_UNICODE_KEY, "emoji/🚀 rocket", "percent%41literal", "double//slash", "folder/"):
        assert s3.get_object(Bucket=target, Key=key)["Body"].read() == body_for(key)


def test_multipart_copy_keeps_everything(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str], fault_proxy: FaultProxy
) -> None:
    source, target = new_bucket("src"), new_bucket("dst")
    body = os.urandom(20 * MiB)
    obj = put_rich(s3, source, "big/ob ject+1.bin", body)
    S3BucketHook(aws_conn_id=PROXY_CONN_ID).copy(obj, source, target, multipart_threshold=8 * MiB)
    assert_same_object(s3, source, target, obj.key)
    assert s3.head_object(Bucket=target, Key=obj.key)["ETag"].strip('"').endswith("-3")
    ops = fault_proxy.operations()
    assert (ops["CreateMultipartUpload"], ops["UploadPartCopy"], ops["CompleteMultipartUpload"]) == (1, 3, 1)
    assert ops["CopyObject"] == 0
    parts = sorted(r.query["partNumber"] for r in fault_proxy.records if r.operation == "UploadPartCopy")
    assert parts == ["1", "2", "3"]


@pytest.mark.parametrize("size", [1024, 6 * MiB], ids=["copy-object", "multipart"])
def test_copy_honours_storage_class(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str], size: int
) -> None:
    source, target = new_bucket("src"), new_bucket("dst")
    obj = put_rich(s3, source, "k", os.urandom(size))
    hook.copy(obj, source, target, multipart_threshold=5 * MiB, storage_class="STANDARD_IA")
    assert s3.head_object(Bucket=target, Key="k").get("StorageClass") == "STANDARD_IA"
    assert_same_object(s3, source, target, "k")


@pytest.mark.parametrize("size", [100, 6 * MiB], ids=["copy-object", "multipart"])
def test_copy_of_a_version_copies_that_version(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str], size: int
) -> None:
    source, target = new_bucket("src", versioned=True), new_bucket("dst")
    old, new = os.urandom(size), os.urandom(size)
    put_rich(s3, source, "k", old, tags={"generation": "old"})
    put_rich(s3, source, "k", new, tags={"generation": "new"})
    versions = [e.obj for e in hook.iter_versions(source, "", KeyRange()) if e.obj is not None]
    assert len(versions) == 2
    oldest = next(v for v in versions if s3_body(s3, source, v) == old)
    hook.copy(oldest, source, target, multipart_threshold=5 * MiB)
    assert s3.get_object(Bucket=target, Key="k")["Body"].read() == old
    assert snapshot(s3, target, "k").tags == {"generation": "old"}


def s3_body(s3: Any, bucket: str, obj: ObjectInfo) -> bytes:
    return s3.get_object(Bucket=bucket, Key=obj.key, VersionId=obj.version_id)["Body"].read()


@pytest.mark.parametrize(
    ("size", "threshold"),
    [
        (1, 8 * MiB),
        (5 * MiB, 5 * MiB),
        (5 * MiB + 1, 5 * MiB),
        (20 * MiB, 8 * MiB),
        (20 * MiB + 7, 1 * MiB),
        (3 * 1024 * MiB + 1, 5120 * MiB),
        (1024**4 + 12345, 5 * MiB),
        (5 * 1024**4, 5 * MiB),
        (5 * 1024**4, 5120 * MiB),
    ],
)
def test_parts_cover_the_object_within_s3_limits(size: int, threshold: int) -> None:
    """Our part size as s3transfer adjusts it: at least 5 MiB, at most 5 GiB, 10,000 parts."""
    part = ChunksizeAdjuster().adjust_chunksize(part_size(threshold), size)
    parts = math.ceil(size / part)
    assert parts <= MAX_PARTS
    assert MIN_PART <= part <= 5 * 1024 * MiB
    assert part == max(MIN_PART, min(threshold, 512 * MiB)) or parts > MAX_PARTS // 2


def test_failed_multipart_copy_is_aborted(
    s3: Any, new_bucket: Callable[..., str], fault_proxy: FaultProxy
) -> None:
    source, target = new_bucket("src"), new_bucket("dst")
    obj = put_rich(s3, source, "big.bin", os.urandom(12 * MiB))
    fault_proxy.set_faults([{"kind": "access_denied", "operation": "UploadPartCopy"}])
    with pytest.raises(ClientError, match="AccessDenied"):
        S3BucketHook(aws_conn_id=PROXY_CONN_ID).copy(obj, source, target, multipart_threshold=5 * MiB)
    assert s3.list_multipart_uploads(Bucket=target).get("Uploads", []) == []
    aborts = [r for r in fault_proxy.records if r.operation == "AbortMultipartUpload"]
    assert len(aborts) == 1 and aborts[0].forwarded and aborts[0].status == 204
    assert list_keys(s3, target) == []


# Buckets -------------------------------------------------------------------------------------


def test_bucket_status(hook: S3BucketHook, new_bucket: Callable[..., str], fault_proxy: FaultProxy) -> None:
    bucket = new_bucket("exists")
    assert hook.bucket_status(bucket) == "ok"
    assert hook.bucket_status(f"missing-{uuid.uuid4().hex[:8]}") == "missing"
    fault_proxy.set_faults([{"kind": "access_denied", "operation": "HeadBucket"}])
    assert S3BucketHook(aws_conn_id=PROXY_CONN_ID).bucket_status(bucket) == "forbidden"


def test_is_versioned(hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket("ver")
    assert not hook.is_versioned(bucket)
    hook.enable_versioning(bucket)
    assert hook.is_versioned(bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert hook.is_versioned(bucket)


def test_has_objects(hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]) -> None:
    plain, versioned = new_bucket("plain"), new_bucket("versioned", versioned=True)
    assert not hook.has_objects(plain)
    s3.put_object(Bucket=plain, Key="k", Body=b"x")
    assert hook.has_objects(plain)
    s3.delete_object(Bucket=plain, Key="k")
    assert not hook.has_objects(plain)
    s3.put_object(Bucket=versioned, Key="k", Body=b"x")
    s3.delete_object(Bucket=versioned, Key="k")
    assert list_keys(s3, versioned) == []
    assert hook.has_objects(versioned)  # old versions and a delete marker remain


def test_create_bucket(hook: S3BucketHook, bucket_names: Callable[[str], str]) -> None:
    bucket = bucket_names("created")
    assert hook.bucket_status(bucket) == "missing"
    hook.create_bucket(bucket)
    assert hook.bucket_status(bucket) == "ok"
    assert not hook.has_objects(bucket)


def test_get_and_put_tags(hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket("tags", versioned=True)
    s3.put_object(Bucket=bucket, Key="emoji/😀 k+", Body=b"1", Tagging="a=1")
    first = s3.list_object_versions(Bucket=bucket)["Versions"][0]["VersionId"]
    s3.put_object(Bucket=bucket, Key="emoji/😀 k+", Body=b"2")
    assert hook.get_tags(bucket, "emoji/😀 k+") == {}
    hook.put_tags(bucket, "emoji/😀 k+", {"Team": "Grüße", "Deleted": "True", "path": "a/b c:d"})
    assert hook.get_tags(bucket, "emoji/😀 k+") == {"Team": "Grüße", "Deleted": "True", "path": "a/b c:d"}
    assert hook.get_tags(bucket, "emoji/😀 k+", version_id=first) == {"a": "1"}
    hook.put_tags(bucket, "emoji/😀 k+", {"only": "one"})
    assert hook.get_tags(bucket, "emoji/😀 k+") == {"only": "one"}


def glacier_object(s3: Any, bucket: str, key: str) -> ObjectInfo:
    s3.put_object(Bucket=bucket, Key=key, Body=b"cold data", StorageClass="GLACIER")
    obj = listing_entry(s3, bucket, key)
    assert obj.storage_class == "GLACIER" and obj.is_archived
    return obj


def test_request_restore_on_moto(hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]) -> None:
    """moto restores at once, so a second request finds the copy ready, not in progress."""
    bucket = new_bucket("cold")
    obj = glacier_object(s3, bucket, "archive/k 1")
    assert hook.request_restore(bucket, obj, tier="Standard", days=1) == "requested"
    assert 'ongoing-request="false"' in s3.head_object(Bucket=bucket, Key=obj.key)["Restore"]
    # AWS would answer 409 RestoreAlreadyInProgress while the first restore runs; moto
    # answers 200 (restored copy already readable), which the hook reports as requested.
    assert hook.request_restore(bucket, obj, tier="Standard", days=2) == "requested"


def test_request_restore_in_progress(
    s3: Any, new_bucket: Callable[..., str], fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy answers the 409 that AWS sends while a restore is running (moto never does)."""
    kinds = {**fault_proxy_module.ERROR_KINDS}
    kinds["restore_in_progress"] = (409, "RestoreAlreadyInProgress", "Object restore is already in progress")
    monkeypatch.setattr(fault_proxy_module, "ERROR_KINDS", kinds)
    monkeypatch.setattr(fault_proxy_module, "FAULT_KINDS", frozenset(kinds) | {"drop", "slow"})
    bucket = new_bucket("cold")
    obj = glacier_object(s3, bucket, "k")
    proxy_hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)
    assert proxy_hook.request_restore(bucket, obj, tier="Bulk", days=1) == "requested"
    fault_proxy.set_faults([{"kind": "restore_in_progress", "operation": "RestoreObject"}])
    assert proxy_hook.request_restore(bucket, obj, tier="Bulk", days=1) == "in_progress"
    fault_proxy.set_faults([{"kind": "access_denied", "operation": "RestoreObject"}])
    with pytest.raises(ClientError, match="AccessDenied"):
        proxy_hook.request_restore(bucket, obj, tier="Bulk", days=1)


def versioned_history(s3: Any, bucket: str) -> None:
    """a: 2 versions; b: version, delete marker, version; c: version, delete marker; d: 1 version."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"a1")
    s3.put_object(Bucket=bucket, Key="a", Body=b"a2")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b1")
    s3.delete_object(Bucket=bucket, Key="b")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b3")
    s3.put_object(Bucket=bucket, Key="c", Body=b"c1")
    s3.delete_object(Bucket=bucket, Key="c")
    s3.put_object(Bucket=bucket, Key="d", Body=b"d1")
    s3.put_object(Bucket=bucket, Key="_s3br/runs/x", Body=b"manifest")


def test_iter_versions_with_key_marker(hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]) -> None:
    bucket = new_bucket("hist", versioned=True)
    versioned_history(s3, bucket)
    listing = s3.list_object_versions(Bucket=bucket)
    version_ids = {(v["Key"], v["VersionId"]) for v in listing["Versions"]}
    markers = {m["Key"] for m in listing["DeleteMarkers"]}
    entries = list(hook.iter_versions(bucket, "", KeyRange("a", "c")))
    assert [e.key for e in entries] == ["b", "b", "b", "c", "c"]
    groups = {group[0].key: group for group in group_by_key(entries)}
    assert sorted(e.obj is None for e in groups["b"]) == [False, False, True]
    assert sorted(e.obj is None for e in groups["c"]) == [False, True]
    assert markers == {"b", "c"}
    for entry in entries:
        if entry.obj is not None:
            assert (entry.obj.key, entry.obj.version_id) in version_ids
            assert entry.obj.last_modified == entry.last_modified
    everything = [e.key for e in hook.iter_versions(bucket, "", KeyRange())]
    assert everything == ["a", "a", "b", "b", "b", "c", "c", "d"]  # no reserved key
    assert [e.key for e in hook.iter_versions(bucket, "", KeyRange("c", None))] == ["d"]


def test_iter_versions_jumps_over_the_reserved_prefix_as_iter_objects_does(
    s3: Any, new_bucket: Callable[..., str], fault_proxy: FaultProxy
) -> None:
    bucket = new_bucket("jumpv", versioned=True)
    for key in ["_a", "_s3br/runs/1", "_s3br/runs/2", "_s3br/runs/2", "_t", "z"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    proxy_hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)

    assert [e.key for e in proxy_hook.iter_versions(bucket, "", KeyRange())] == ["_a", "_t", "z"]
    markers = [r.query.get("key-marker") for r in fault_proxy.records if r.operation == "ListObjectVersions"]
    assert markers[:2] == [None, "_s3br/\U0010ffff"]
    inside = KeyRange("_a", "_s3br/runs/2")
    assert list(proxy_hook.iter_versions(bucket, "", inside)) == []


def test_iter_versions_groups_keys_across_pages(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket("pages", versioned=True)

    def versions_of(key: str) -> None:  # one thread per key keeps each key's versions ordered
        for i in range(350):
            s3.put_object(Bucket=bucket, Key=key, Body=str(i).encode())

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(versions_of, ["k1", "k2", "k3"]))
    groups = list(group_by_key(hook.iter_versions(bucket, "", KeyRange())))
    assert [(g[0].key, len(g)) for g in groups] == [("k1", 350), ("k2", 350), ("k3", 350)]
    assert len({e.obj.version_id for g in groups for e in g}) == 1050
    tail = [e.key for e in hook.iter_versions(bucket, "", KeyRange("k2", None))]
    assert tail == ["k3"] * 350


# Manifests -----------------------------------------------------------------------------------


def test_upload_download_and_json(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str], tmp_path
) -> None:
    bucket = new_bucket("manifests")
    local = tmp_path / "m.jsonl.gz"
    local.write_bytes(os.urandom(70_000))
    uri = f"s3://{bucket}/_s3br/runs/dag/run ü+1/copy/p00000.jsonl.gz"
    hook.upload(str(local), uri)
    assert s3.head_object(Bucket=bucket, Key=uri.split("/", 3)[3])["ContentType"] == "application/gzip"
    hook.download(uri, str(tmp_path / "back.gz"))
    assert (tmp_path / "back.gz").read_bytes() == local.read_bytes()
    json_uri = f"s3://{bucket}/_s3br/stats/ü.json"
    hook.put_json(json_uri, '{"ü": 1}'.encode())
    assert hook.get_json_bytes(json_uri) == '{"ü": 1}'.encode()
    assert s3.head_object(Bucket=bucket, Key="_s3br/stats/ü.json")["ContentType"] == "application/json"
    assert hook.get_json_bytes(f"s3://{bucket}/_s3br/stats/missing.json") is None
    with pytest.raises(ClientError):
        hook.get_json_bytes(f"s3://missing-{uuid.uuid4().hex[:8]}/x.json")


def test_iter_versions_from_a_marker_that_is_not_a_key(
    hook: S3BucketHook, s3: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket("hist", versioned=True)
    versioned_history(s3, bucket)
    assert [e.key for e in hook.iter_versions(bucket, "", KeyRange("a0", "c"))] == ["b", "b", "b", "c", "c"]


@pytest.mark.parametrize("bucket_fixture", ["odd_bucket", "big_bucket"])
def test_fast_listing_matches_boto3_field_by_field(
    bucket_fixture: str, request: pytest.FixtureRequest
) -> None:
    """The direct ListObjectsV2 path and boto3's paginator read the same objects, in order,
    across pages, past the reserved prefix, with the same key decoding and fields."""
    fixture = request.getfixturevalue(bucket_fixture)
    bucket = fixture if isinstance(fixture, str) else fixture.name
    fast = S3BucketHook(aws_conn_id="aws_default")
    slow = S3BucketHook(aws_conn_id="aws_default", fast_path=False)
    assert fast.direct is not None and slow.direct is None

    for prefix, key_range in [("", KeyRange()), ("", KeyRange("_a", "z")), ("d", KeyRange())]:
        got = list(fast.iter_objects(bucket, prefix, key_range))
        expected = list(slow.iter_objects(bucket, prefix, key_range))
        assert [o.to_record() for o in got] == [o.to_record() for o in expected]
    assert len(list(fast.iter_objects(bucket, "", KeyRange()))) > (
        1000 if bucket_fixture == "big_bucket" else 50
    )
