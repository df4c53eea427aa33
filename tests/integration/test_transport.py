"""The hook's transport policy against moto: one request limit, the connection's retries,
the fast path switch, and the buckets only boto3 can serve."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.pool import bounded_map
from s3br_provider.core.s3_errors import RetryPolicy
from s3br_provider.core.sizes import MiB
from s3br_provider.hooks.s3_bucket import S3BucketHook
from tests.integration.test_hook_s3_bucket import assert_same_object, listing_entry, put_rich
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import DUMMY_KEY, REGION, list_keys

CONN_ID = "s3br_transport"
ACCESS_POINT = "arn:aws:s3:us-east-1:123456789012:accesspoint/name"
SPECIAL_BUCKETS = [
    ACCESS_POINT,
    "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01ac5d28a6a232904/accesspoint/ap",
    "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap",
    "mybucket--use1-az4--x-s3",
]


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define connection ``s3br_transport`` on an endpoint with extra fields; return its id."""

    def define(endpoint_url: str, **extra: Any) -> str:
        value = {
            "conn_type": "aws",
            "login": DUMMY_KEY,
            "password": DUMMY_KEY,
            "extra": {"endpoint_url": endpoint_url, "region_name": REGION, **extra},
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(value))
        return CONN_ID

    return define


@pytest.fixture
def buckets(s3: Any, bucket_names: Callable[[str], str]) -> tuple[str, str]:
    source, target = bucket_names("src"), bucket_names("dst")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    return source, target


def most_at_once(proxy: FaultProxy, operations: set[str] | None = None) -> int:
    """The most requests the proxy was answering at the same moment."""
    events = []
    for record in proxy.records:
        if operations is None or record.operation in operations:
            events += [(record.started, 1), (record.ended, -1)]
    now = most = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
        now += step
        most = max(most, now)
    return most


# One limit of requests in flight ------------------------------------------------------------


@pytest.mark.timeout(180)
def test_small_and_large_copies_share_one_request_limit(
    s3: Any, buckets: tuple[str, str], fault_proxy: FaultProxy, put_many: Callable[..., None]
) -> None:
    source, target = buckets
    put_many(source, {f"small/{i:02d}": b"x" * 100 for i in range(24)})
    large = [put_rich(s3, source, f"large/{i}", os.urandom(12 * MiB)) for i in range(2)]
    small = [listing_entry(s3, source, f"small/{i:02d}") for i in range(24)]
    # Slow parts, so that a deadlock or a part pool of its own would show.
    fault_proxy.set_faults([{"operation": "UploadPartCopy", "kind": "slow", "delay": 0.3}])
    hook = S3BucketHook(aws_conn_id="s3br_proxy", max_in_flight=4)

    def copy(obj: Any) -> None:
        hook.copy(obj, source, target, multipart_threshold=5 * MiB)

    outcomes = list(bounded_map(copy, large + small, workers=32))  # more threads than slots

    assert [error for _, _, error in outcomes if error is not None] == []
    assert hook.slots.peak == 4
    assert most_at_once(fault_proxy) <= 4
    assert most_at_once(fault_proxy, {"UploadPartCopy"}) >= 2  # parts spread over free slots
    assert fault_proxy.operations()["UploadPartCopy"] == 6
    assert len(list_keys(s3, target)) == 26
    for obj in large:
        assert_same_object(s3, source, target, obj.key)


@pytest.mark.timeout(120)
def test_more_waiting_large_copies_than_slots_do_not_deadlock(
    s3: Any, buckets: tuple[str, str], fault_proxy: FaultProxy
) -> None:
    """Eight threads each wait for a multipart copy, with two slots for all their parts."""
    source, target = buckets
    objects = [put_rich(s3, source, f"big/{i}", os.urandom(6 * MiB)) for i in range(8)]
    hook = S3BucketHook(aws_conn_id="s3br_proxy", max_in_flight=2)

    def copy(obj: ObjectInfo) -> None:
        hook.copy(obj, source, target, multipart_threshold=5 * MiB)

    outcomes = list(bounded_map(copy, objects, workers=8))

    assert [error for _, _, error in outcomes if error is not None] == []
    assert hook.slots.peak == 2 and most_at_once(fault_proxy) <= 2
    assert fault_proxy.operations()["CompleteMultipartUpload"] == 8
    assert s3.list_multipart_uploads(Bucket=target).get("Uploads", []) == []


def test_listing_pages_hold_a_slot_only_while_they_are_fetched(s3: Any, buckets: tuple[str, str]) -> None:
    source, _ = buckets
    s3.put_object(Bucket=source, Key="k", Body=b"x")
    hook = S3BucketHook(aws_conn_id="aws_default", max_in_flight=1)
    seen = []
    for obj in hook.iter_objects(source, "", _all()):
        seen.append(obj.key)
        # With the only slot held across the yield, this head would wait for good.
        done = threading.Event()
        threading.Thread(target=head_then_set, args=(hook, source, done)).start()
        assert done.wait(10)
    assert seen == ["k"]


def head_then_set(hook: S3BucketHook, bucket: str, done: threading.Event) -> None:
    hook.head(bucket, "k")
    done.set()


def _all() -> Any:
    from s3br_provider.core.partitions import KeyRange

    return KeyRange()


# Retries: the connection's botocore config ---------------------------------------------------


@pytest.mark.parametrize("fast_path", [True, False], ids=["direct", "boto3"])
@pytest.mark.parametrize(
    ("retries", "attempts"),
    [
        # botocore's max_attempts counts retries: 2 of them after the first attempt.
        ({"mode": "standard", "max_attempts": 2}, 3),
        ({"mode": "standard", "total_max_attempts": 2}, 2),
        ({"mode": "legacy", "max_attempts": 1}, 2),
    ],
    ids=["standard-max_attempts-2", "standard-total-2", "legacy-max_attempts-1"],
)
def test_the_connections_retries_bound_the_attempts_on_both_paths(
    fast_path: bool,
    retries: dict[str, Any],
    attempts: int,
    buckets: tuple[str, str],
    s3: Any,
    fault_proxy: FaultProxy,
    connection: Callable[..., str],
) -> None:
    source, target = buckets
    s3.put_object(Bucket=source, Key="k", Body=b"payload")
    conn_id = connection(fault_proxy.endpoint_url, config_kwargs={"retries": retries})
    fault_proxy.set_faults([{"operation": "CopyObject", "kind": "slowdown"}])
    hook = S3BucketHook(aws_conn_id=conn_id, fast_path=fast_path)

    with pytest.raises(ClientError) as raised:
        hook.copy(ObjectInfo("k", 7, "", 0.0), source, target, multipart_threshold=8 * MiB)

    assert raised.value.response["Error"]["Code"] == "SlowDown"
    assert (hook.direct is not None) is fast_path
    assert len([r for r in fault_proxy.records if r.operation == "CopyObject"]) == attempts
    if hook.direct is not None:
        assert hook.direct.retry == RetryPolicy(retries["mode"], attempts)


def test_our_retry_and_pool_defaults_fill_only_what_the_connection_leaves_unset(
    endpoint: str, connection: Callable[..., str]
) -> None:
    plain = S3BucketHook(aws_conn_id=connection(endpoint), max_in_flight=48)
    assert plain.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 11}
    assert plain.client.meta.config.max_pool_connections == 48
    assert plain.direct is not None and plain.direct.retry == RetryPolicy("standard", 11)

    partial = S3BucketHook(
        aws_conn_id=connection(endpoint, config_kwargs={"retries": {"max_attempts": 4}, "read_timeout": 7})
    )
    assert partial.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert partial.client.meta.config.read_timeout == 7

    legacy = S3BucketHook(aws_conn_id=connection(endpoint, config_kwargs={"retries": {"mode": "legacy"}}))
    assert legacy.client.meta.config.retries == {"mode": "legacy"}  # legacy's own count, not ours
    assert legacy.direct is not None and legacy.direct.retry == RetryPolicy("legacy", 5)


def test_adaptive_retries_keep_every_request_on_botocores_rate_limiter(
    endpoint: str, connection: Callable[..., str], buckets: tuple[str, str], s3: Any
) -> None:
    source, target = buckets
    s3.put_object(Bucket=source, Key="k", Body=b"v")
    conn_id = connection(endpoint, config_kwargs={"retries": {"mode": "adaptive", "max_attempts": 3}})
    hook = S3BucketHook(aws_conn_id=conn_id)
    assert hook.direct is None
    hook.copy(listing_entry(s3, source, "k"), source, target, multipart_threshold=8 * MiB)
    assert list_keys(s3, target) == ["k"]


# The fast path switch -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [False, "false"])
def test_the_connection_extra_turns_the_fast_path_off(
    value: Any,
    buckets: tuple[str, str],
    s3: Any,
    fault_proxy: FaultProxy,
    connection: Callable[..., str],
) -> None:
    source, target = buckets
    obj = put_rich(s3, source, "k", b"through boto3")
    conn_id = connection(fault_proxy.endpoint_url, s3br_fast_path=value)
    hook = S3BucketHook(aws_conn_id=conn_id)

    hook.copy(obj, source, target, multipart_threshold=8 * MiB)

    assert hook.direct is None and not hook.uses_direct_path(target)
    assert [o.key for o in hook.iter_objects(target, "", _all())] == ["k"]
    assert fault_proxy.operations()["CopyObject"] == 1
    assert_same_object(s3, source, target, "k")
    # The argument still overrides the connection.
    assert S3BucketHook(aws_conn_id=conn_id, fast_path=True).direct is not None


# Buckets only boto3 can serve ---------------------------------------------------------------


@pytest.mark.parametrize("bucket", SPECIAL_BUCKETS)
def test_arns_and_directory_buckets_are_routed_to_boto3(bucket: str) -> None:
    hook = S3BucketHook(aws_conn_id="aws_default")
    assert hook.direct is not None and hook.uses_direct_path("plain-bucket")
    assert not hook.uses_direct_path(bucket)


def test_a_copy_from_an_access_point_is_built_by_botocore(
    buckets: tuple[str, str], fault_proxy: FaultProxy
) -> None:
    """botocore names an access point source ``<arn>/object/<key>``; the direct path would not."""
    _, target = buckets
    hook = S3BucketHook(aws_conn_id="s3br_proxy")
    assert hook.uses_direct_path(target)

    with pytest.raises(ClientError):  # moto serves no access points
        hook.copy(ObjectInfo("k", 7, "", 0.0), ACCESS_POINT, target, multipart_threshold=8 * MiB)

    (request,) = [r for r in fault_proxy.records if r.operation == "CopyObject"]
    assert request.copy_source == f"{ACCESS_POINT}/object/k"


def test_a_directory_bucket_is_copied_into_and_listed_by_boto3(
    s3: Any, buckets: tuple[str, str], fault_proxy: FaultProxy, connection: Callable[..., str]
) -> None:
    source, _ = buckets
    directory = f"{source[:20]}--use1-az4--x-s3"
    # moto answers CreateSession without credentials, so its directory buckets are reached
    # with session auth off; on AWS botocore signs them with a CreateSession token.
    conn_id = connection(
        fault_proxy.endpoint_url, config_kwargs={"s3": {"disable_s3_express_session_auth": True}}
    )
    hook = S3BucketHook(aws_conn_id=conn_id)
    hook.client.create_bucket(
        Bucket=directory,
        CreateBucketConfiguration={
            "Location": {"Type": "AvailabilityZone", "Name": "use1-az4"},
            "Bucket": {"Type": "Directory", "DataRedundancy": "SingleAvailabilityZone"},
        },
    )
    obj = put_rich(s3, source, "k", b"into a directory bucket", tags={})

    hook.copy(obj, source, directory, multipart_threshold=8 * MiB)

    assert hook.direct is not None and not hook.uses_direct_path(directory)
    assert [o.key for o in hook.iter_objects(directory, "", _all())] == ["k"]
    # botocore signed them for service s3express (the direct path signs for s3 only), so the
    # proxy, which names S3 operations only, files them as "Other": the copy and the listing.
    sent = [(r.operation, r.method, r.query.get("list-type")) for r in fault_proxy.records[1:]]
    assert sent == [("Other", "PUT", None), ("Other", "GET", "2")]
    assert hook.direct._addresses == {}  # the direct path never looked this bucket up
