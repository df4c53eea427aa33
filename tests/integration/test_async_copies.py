"""Copies sent on one event loop (``AsyncCopies``) against moto through the recording fault
proxy: the objects they make, the requests they send, and what they hand to the fallback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.sizes import MiB
from s3br_provider.hooks.async_copies import DirectCopy
from s3br_provider.hooks.s3_bucket import S3BucketHook
from s3br_provider.operators.base import InvalidArgumentsError
from s3br_provider.operators.copy_batch import S3CopyBatchOperator
from tests.integration.conftest import PROXY_CONN_ID
from tests.integration.test_hook_s3_bucket import assert_same_object, put_rich
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import DUMMY_KEY, REGION, list_keys
from tests.support.steps import context, diff, validate

THRESHOLD = 8 * MiB


def buckets(s3: Any, bucket_names: Callable[[str], str]) -> tuple[str, str]:
    source, target = bucket_names("src"), bucket_names("dst")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    return source, target


def run_copies(
    hook: S3BucketHook, source: str, target: str, objects: list[ObjectInfo], **options: Any
) -> tuple[dict[str, Any], list[tuple[str, ClientError | None]]]:
    """Copy ``objects`` with ``AsyncCopies``; the fallback copies with ``hook.copy`` (as
    ``copy_batch`` does) and records what it was handed. Return outcomes by key, fallbacks."""
    sender = hook.async_copies()
    assert sender is not None
    handed: list[tuple[str, ClientError | None]] = []
    lock = threading.Lock()

    def request(obj: ObjectInfo) -> DirectCopy | None:
        return hook.direct_copy(obj, source, target, multipart_threshold=THRESHOLD, **options)

    def fallback(obj: ObjectInfo, answered: ClientError | None) -> bool:
        with lock:
            handed.append((obj.key, answered))
        return hook.copy(obj, source, target, multipart_threshold=THRESHOLD, answered=answered, **options)

    outcomes = {
        obj.key: (result if error is None else error)
        for obj, result, error in sender.run(iter(objects), request, fallback, workers=4)
    }
    return outcomes, handed


def test_copies_sent_on_the_loop_make_the_same_objects_with_one_request_each(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, target = buckets(s3, bucket_names)
    objects = [put_rich(s3, source, f"d{i % 3}/ünï +{i}.txt", b"payload %d\n" % i * 40) for i in range(60)]
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID, max_in_flight=8)

    outcomes, handed = run_copies(hook, source, target, objects)

    assert outcomes == {obj.key: True for obj in objects}
    assert handed == []
    assert fault_proxy.operations()["CopyObject"] == 60
    assert 1 <= hook.slots.peak <= 8
    for obj in objects:
        assert_same_object(s3, source, target, obj.key)


def test_a_final_error_is_handed_over_not_sent_twice(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, target = buckets(s3, bucket_names)
    objects = [put_rich(s3, source, key, b"x" * 10) for key in ("a", "denied", "z")]
    fault_proxy.set_faults([{"operation": "CopyObject", "kind": "access_denied", "key": "denied"}])
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)

    outcomes, handed = run_copies(hook, source, target, objects)

    assert outcomes["a"] is True and outcomes["z"] is True
    assert isinstance(outcomes["denied"], ClientError)
    assert outcomes["denied"].response["Error"]["Code"] == "AccessDenied"
    assert [(key, error.response["Error"]["Code"]) for key, error in handed if error] == [
        ("denied", "AccessDenied")
    ]
    assert [r.key for r in fault_proxy.records if r.operation == "CopyObject"].count("denied") == 1


def test_a_missing_source_reaches_the_fallback_as_no_such_key(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, target = buckets(s3, bucket_names)
    present = put_rich(s3, source, "here", b"x")
    gone = ObjectInfo("gone", 7, "", 0.0)
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)

    outcomes, handed = run_copies(hook, source, target, [present, gone])

    assert outcomes["here"] is True
    assert outcomes["gone"].response["Error"]["Code"] == "NoSuchKey"
    assert [(key, error.response["Error"]["Code"]) for key, error in handed if error] == [
        ("gone", "NoSuchKey")
    ]
    assert fault_proxy.operations()["CopyObject"] == 2


@pytest.mark.parametrize("kind", ["slowdown", "internal", "error_200", "drop"])
def test_a_transient_fault_is_retried_by_the_fallback(
    kind: str, s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, target = buckets(s3, bucket_names)
    obj = put_rich(s3, source, "k", b"payload")
    fault_proxy.set_faults([{"operation": "CopyObject", "kind": kind, "count": 2}])
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)

    outcomes, handed = run_copies(hook, source, target, [obj])

    assert outcomes == {"k": True}
    assert handed == [("k", None)]  # the loop's attempt faulted; the fallback retried once more
    assert len([r for r in fault_proxy.records if r.operation == "CopyObject"]) == 3
    assert_same_object(s3, source, target, "k")


def test_create_only_copies_are_conditional_and_leave_existing_keys_alone(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = buckets(s3, bucket_names)
    objects = [put_rich(s3, source, key, b"new " + key.encode()) for key in ("kept", "fresh")]
    s3.put_object(Bucket=target, Key="kept", Body=b"theirs")
    extra = {"endpoint_url": fault_proxy.endpoint_url, "region_name": REGION, "s3br_conditional_writes": True}
    conn = {"conn_type": "aws", "login": DUMMY_KEY, "password": DUMMY_KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_S3BR_CONDITIONAL", json.dumps(conn))
    hook = S3BucketHook("s3br_conditional")

    outcomes, handed = run_copies(hook, source, target, objects, create_only=True)

    assert outcomes == {"kept": False, "fresh": True}
    assert [(key, error.response["Error"]["Code"]) for key, error in handed if error] == [
        ("kept", "PreconditionFailed")
    ]
    assert sorted((r.operation, r.status) for r in fault_proxy.records) == [
        ("CopyObject", 200),
        ("CopyObject", 412),
    ]
    assert s3.get_object(Bucket=target, Key="kept")["Body"].read() == b"theirs"
    assert s3.get_object(Bucket=target, Key="fresh")["Body"].read() == b"new fresh"


def test_objects_that_need_more_than_one_copy_object_go_to_the_fallback(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, target = buckets(s3, bucket_names)
    small = put_rich(s3, source, "small", b"x" * 100)
    large = put_rich(s3, source, "large", b"y" * (THRESHOLD + 1))
    hook = S3BucketHook(aws_conn_id=PROXY_CONN_ID)

    outcomes, handed = run_copies(hook, source, target, [small, large])

    assert outcomes == {"small": True, "large": True}
    assert handed == [("large", None)]
    assert fault_proxy.operations().get("UploadPartCopy", 0) >= 2
    assert_same_object(s3, source, target, "large")


def copy_step(settings: dict[str, Any], work: dict[str, Any], **options: Any) -> S3CopyBatchOperator:
    return S3CopyBatchOperator(
        task_id="copy_batch",
        source_bucket=settings["source_bucket"],
        target_bucket=settings["backup_bucket"],
        manifest_uri=work["copy_manifest"],
        expected=work["to_copy"],
        source_aws_conn_id=PROXY_CONN_ID,
        aws_conn_id=PROXY_CONN_ID,
        **options,
    )


@pytest.mark.parametrize("in_flight", [3, 64])
def test_copy_batch_keeps_copies_in_flight_up_to_its_limit(
    in_flight: int, s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, backup = buckets(s3, bucket_names)
    keys = [f"k/{i:03d}" for i in range(80)]
    for key in keys:
        s3.put_object(Bucket=source, Key=key, Body=key.encode())
    settings = validate(source, backup, source_aws_conn_id=PROXY_CONN_ID, backup_aws_conn_id=PROXY_CONN_ID)
    work = diff(settings)
    fault_proxy.set_faults([{"operation": "CopyObject", "kind": "slow", "delay": 0.2}])
    op = copy_step(settings, work, copies_in_flight=in_flight)

    result = op.execute(context())

    assert result["copied"] == 80 and result["failed"] == 0
    assert list_keys(s3, backup) == keys
    assert op.hook.max_in_flight == in_flight
    # 80 copies of 0.2 s each: the loop fills every slot it has (64 > 32 threads: no thread each)
    assert op.hook.slots.peak == min(in_flight, 80)


def test_copies_in_flight_below_one_is_refused_before_any_request(
    s3: Any, bucket_names: Callable[[str], str], fault_proxy: FaultProxy
) -> None:
    source, backup = buckets(s3, bucket_names)
    s3.put_object(Bucket=source, Key="k", Body=b"x")
    settings = validate(source, backup, source_aws_conn_id=PROXY_CONN_ID, backup_aws_conn_id=PROXY_CONN_ID)
    work = diff(settings)
    fault_proxy.reset_records()

    with pytest.raises(InvalidArgumentsError, match="copies_in_flight must be at least 1, got 0"):
        copy_step(settings, work, copies_in_flight=0).execute(context())

    assert fault_proxy.records == []
    assert list_keys(s3, backup) == []
