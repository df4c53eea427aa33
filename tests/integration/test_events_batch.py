"""Continuous backup against moto: the set-up operator, and batches of the bucket's real event
notifications (moto's S3 sends them to its SQS) applied by S3EventsBatchOperator."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from s3br_provider.core.deleted_index import TAGGED_PREFIX
from s3br_provider.operators.events_batch import S3EventsBatchOperator
from s3br_provider.operators.events_setup import NOTIFICATION_ID, POLICY_SID, S3EventsSetupOperator
from s3br_provider.operators.validate import EXACT_TAG_COPY_XCOM
from tests.integration.conftest import PROXY_CONN_ID
from tests.integration.test_tag_probe import probed
from tests.support.fault_proxy import FaultProxy, FaultRule
from tests.support.iam import allowed, missing_permissions, policy, used
from tests.support.s3 import Obj, list_keys, local_client, put, snapshot
from tests.support.steps import context, copy, diff, tag, validate

SQS_OPERATIONS = {"ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"}


@pytest.fixture
def sqs(endpoint: str) -> Any:
    return local_client("sqs", endpoint)


@pytest.fixture
def pair(s3: Any, sqs: Any, bucket_names: Any) -> dict[str, str]:
    """A source bucket notifying a new queue (set up by the operator), and a backup bucket;
    the s3:TestEvent of the set-up is still in the queue."""
    source, backup = bucket_names("events-src"), bucket_names("events-bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    out = setup(source, f"q-{source}")
    return {"source": source, "backup": backup, "queue_url": out["queue_url"]}


def setup(source: str, queue_name: str) -> dict[str, Any]:
    op = S3EventsSetupOperator(task_id="setup", source_bucket=source, queue_name=queue_name)
    return op.execute(context())


def batch(pair: dict[str, str], conn_id: str = "aws_default", **kwargs: Any) -> dict[str, Any]:
    op = S3EventsBatchOperator(
        task_id="apply_events",
        source_bucket=pair["source"],
        backup_bucket=pair["backup"],
        queue_url=pair["queue_url"],
        wait_time_seconds=1,
        aws_conn_id=conn_id,
        **kwargs,
    )
    return op.execute(context())


def drain(pair: dict[str, str], **kwargs: Any) -> list[dict[str, Any]]:
    """Run batches until one receives nothing."""
    results = []
    while True:
        results.append(batch(pair, **kwargs))
        if not results[-1]["messages"]:
            return results


def waiting(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def live_state(s3: Any, bucket: str, key: str) -> tuple[Any, ...]:
    snap = snapshot(s3, bucket, key)
    return snap.body, snap.content_type, snap.metadata, snap.tags


def assert_backup_follows(s3: Any, source: str, backup: str, deleted: set[str]) -> None:
    live = list_keys(s3, source)
    assert set(list_keys(s3, backup)) == set(live) | deleted
    for key in live:
        assert live_state(s3, backup, key) == live_state(s3, source, key), key
    for key in deleted:
        tags = snapshot(s3, backup, key, body=False).tags
        assert tags["Deleted"] == "True" and len(tags["DeletedAt"]) == 16, key


def test_setup_is_idempotent_and_keeps_other_targets(s3: Any, sqs: Any, bucket_names: Any) -> None:
    source = bucket_names("setup-src")
    s3.create_bucket(Bucket=source)
    theirs = sqs.create_queue(QueueName=f"theirs-{source}")["QueueUrl"]
    theirs_arn = sqs.get_queue_attributes(QueueUrl=theirs, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    existing = {"Id": "theirs", "QueueArn": theirs_arn, "Events": ["s3:ObjectCreated:Put"]}
    existing["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "other/"}]}}
    s3.put_bucket_notification_configuration(
        Bucket=source, NotificationConfiguration={"QueueConfigurations": [existing]}
    )

    first = setup(source, f"q-{source}")
    assert first["changed"] == ["queue", "queue policy", "bucket notification"]
    assert setup(source, f"q-{source}")["changed"] == []

    config = s3.get_bucket_notification_configuration(Bucket=source)["QueueConfigurations"]
    assert {c["Id"]: c["QueueArn"] for c in config} == {
        "theirs": theirs_arn,
        NOTIFICATION_ID: first["queue_arn"],
    }
    ours = next(c for c in config if c["Id"] == NOTIFICATION_ID)
    assert sorted(ours["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*"]
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=first["queue_url"], AttributeNames=["Policy"])["Attributes"][
            "Policy"
        ]
    )
    [statement] = policy["Statement"]
    assert statement["Sid"] == POLICY_SID and statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{source}"


def test_setup_refuses_a_missing_bucket_and_a_fifo_queue(bucket_names: Any) -> None:
    with pytest.raises(AirflowException, match="does not exist"):
        setup(bucket_names("nope"), "q")
    with pytest.raises(AirflowException, match="FIFO"):
        setup(bucket_names("nope"), "q.fifo")


def test_changes_reach_the_backup_and_their_messages_leave(s3: Any, sqs: Any, pair: dict[str, str]) -> None:
    source, backup = pair["source"], pair["backup"]
    tagged = Obj(b"tagged", "text/plain", {"owner": "ops"}, {"team": "blue", "note": "a b+c"})
    for key in ("keep", "a b+c/ü %.txt", "gone", "back", "retag", "twice"):
        put(s3, source, key, tagged)
    assert batch(pair)["copied"] == 6
    s3.delete_object(Bucket=source, Key="gone")
    s3.delete_object(Bucket=source, Key="back")
    put(s3, source, "back", Obj(b"returned", "text/csv", {"v": "2"}))
    put(s3, source, "twice", Obj(b"second"))
    put(s3, source, "twice", Obj(b"third", metadata={"v": "3"}))
    s3.put_object_tagging(Bucket=source, Key="retag", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    put(s3, source, "new and gone", Obj(b"x"))
    s3.delete_object(Bucket=source, Key="new and gone")
    sqs.send_message(QueueUrl=pair["queue_url"], MessageBody="not an S3 event")

    [result, empty] = drain(pair)
    assert {
        k: result[k] for k in ("copied", "tagged_deleted", "tags_copied", "absent", "unknown", "failed")
    } == {
        "copied": 2,
        "tagged_deleted": 1,
        "tags_copied": 1,
        "absent": 1,
        "unknown": 1,
        "failed": 0,
    }
    assert result["deleted_messages"] == result["messages"] and empty["messages"] == 0
    assert waiting(sqs, pair["queue_url"]) == 0
    assert_backup_follows(s3, source, backup, deleted={"gone"})
    # The returned object lost its Deleted marker; the marker is set once.
    assert "Deleted" not in snapshot(s3, backup, "back", body=False).tags
    redelivered = {
        "eventSource": "aws:s3",
        "eventName": "ObjectRemoved:Delete",
        "eventTime": "2026-12-01T00:00:00Z",
    }
    redelivered["s3"] = {"bucket": {"name": source}, "object": {"key": "gone"}}
    sqs.send_message(QueueUrl=pair["queue_url"], MessageBody=json.dumps({"Records": [redelivered]}))
    first_mark = snapshot(s3, backup, "gone", body=False).tags
    assert batch(pair)["already_deleted"] == 1
    assert snapshot(s3, backup, "gone", body=False).tags == first_mark


def sqs_requests(messages: int) -> dict[str, int]:
    """Receives of 10 messages and the short (maybe empty) one that ends a batch; deletes of 10."""
    return {"ReceiveMessage": messages // 10 + 1, "DeleteMessageBatch": -(-messages // 10)}


def test_requests_per_change(s3: Any, pair: dict[str, str], fault_proxy: FaultProxy) -> None:
    """One HeadObject and one CopyObject per changed key; per deleted key one GetObjectTagging
    and one PutObjectTagging on the backup after its HeadObject; SQS: one receive and one
    delete per 10 messages."""
    source = pair["source"]
    batch(pair)  # the s3:TestEvent
    keys = [f"k/{n:03d}" for n in range(40)]
    for key in keys:
        put(s3, source, key, Obj(b"v1"))
    for key in keys[:10]:
        s3.delete_object(Bucket=source, Key=key)
    for key in keys[:10]:
        put(s3, source, key, Obj(b"v2"))  # a re-create after the delete: one copy, no tag
    fault_proxy.reset_records()
    result = batch(pair, conn_id=PROXY_CONN_ID)
    assert (result["messages"], result["keys"], result["copied"], result["deleted_messages"]) == (
        60,
        40,
        40,
        60,
    )
    counts = Counter(r.operation for r in fault_proxy.records)
    assert counts == {
        "HeadObject": 40,
        "CopyObject": 40,
        "PutMetricData": 1,
        **sqs_requests(result["messages"]),
    }

    for key in keys[:10]:
        s3.delete_object(Bucket=source, Key=key)
    fault_proxy.reset_records()
    result = batch(pair, conn_id=PROXY_CONN_ID)
    assert (result["messages"], result["tagged_deleted"]) == (10, 10)
    counts = Counter(r.operation for r in fault_proxy.records)
    assert counts == {
        "HeadObject": 10,
        "GetObjectTagging": 10,
        "PutObjectTagging": 10,
        "PutObject": 1,  # once per batch that marks deletions: retires the deleted-key index
        "PutMetricData": 1,
        **sqs_requests(10),
    }
    markers = s3.list_objects_v2(Bucket=pair["backup"], Prefix=TAGGED_PREFIX).get("Contents", [])
    assert len(markers) == 1, markers


@pytest.mark.parametrize("versioned", [True, False], ids=["exact-copy", "merging"])
def test_tagged_copies_follow_s3_backups_tag_probe(
    s3: Any, pair: dict[str, str], fault_proxy: FaultProxy, versioned: bool
) -> None:
    """A batch reads the tag probe's answer once, at its first tagged copy. Where the probe
    found exact tag copies (moto, versioned backup), a tagged object costs no GetObjectTagging;
    where it found merging (moto, unversioned), each one is read first, as before any probe.
    Either way the copies, also those that come back over a Deleted marker, hold exactly the
    source's tags."""
    source, backup = pair["source"], pair["backup"]
    if versioned:
        s3.put_bucket_versioning(Bucket=backup, VersioningConfiguration={"Status": "Enabled"})
    _, pushed = probed(source, backup)
    assert pushed == {EXACT_TAG_COPY_XCOM: versioned}
    batch(pair)  # the s3:TestEvent
    keys = [f"t/{n:02d}" for n in range(10)]
    for key in keys:
        put(s3, source, key, Obj(b"v1", tags={"team": "a", "n": key[-2:]}))
    fault_proxy.reset_records()
    assert batch(pair, conn_id=PROXY_CONN_ID)["copied"] == 10
    reads = Counter(r.operation for r in fault_proxy.records)["GetObjectTagging"]
    assert reads == 1 + (0 if versioned else 10)

    for key in keys[5:]:
        s3.delete_object(Bucket=source, Key=key)
    assert drain(pair)[0]["tagged_deleted"] == 5
    for key in keys[5:]:
        put(s3, source, key, Obj(b"v2", tags={"team": "b"}))  # back over the Deleted marker
    fault_proxy.reset_records()
    again = batch(pair, conn_id=PROXY_CONN_ID)
    assert again["copied"] == 5
    counts = Counter(r.operation for r in fault_proxy.records)
    assert (counts["HeadObject"], counts["CopyObject"]) == (5, 5)
    assert counts["GetObjectTagging"] == 1 + (0 if versioned else 5)
    assert_backup_follows(s3, source, backup, deleted=set())
    for key in keys[5:]:
        assert snapshot(s3, backup, key, body=False).tags == {"team": "b"}, key


def test_without_a_tag_probe_tagged_objects_are_read_first(
    s3: Any, pair: dict[str, str], fault_proxy: FaultProxy
) -> None:
    """Before any s3_backup ran its probe: the answer's read finds nothing, and the safe way
    (each tagged object's tags read and given) holds."""
    s3.put_bucket_versioning(Bucket=pair["backup"], VersioningConfiguration={"Status": "Enabled"})
    batch(pair)  # the s3:TestEvent
    for n in range(3):
        put(s3, pair["source"], f"t/{n}", Obj(b"v1", tags={"n": str(n)}))
    fault_proxy.reset_records()
    assert batch(pair, conn_id=PROXY_CONN_ID)["copied"] == 3
    assert Counter(r.operation for r in fault_proxy.records)["GetObjectTagging"] == 1 + 3
    assert_backup_follows(s3, pair["source"], pair["backup"], deleted=set())


def test_a_failed_change_leaves_its_message(
    s3: Any, sqs: Any, pair: dict[str, str], fault_proxy: FaultProxy
) -> None:
    source = pair["source"]
    batch(pair)
    for key in ("ok/1", "ok/2", "bad/1"):
        put(s3, source, key, Obj(b"x"))
    fault_proxy.set_faults([FaultRule("access_denied", operation="CopyObject", key="bad/*")])
    with pytest.raises(AirflowException, match="bad/1"):
        batch(pair, conn_id=PROXY_CONN_ID, visibility_timeout=10)
    assert list_keys(s3, pair["backup"]) == ["ok/1", "ok/2"]
    assert waiting(sqs, pair["queue_url"]) == 1  # bad/1's: hidden now, back after the visibility timeout
    fault_proxy.clear_faults()
    time.sleep(10)
    assert batch(pair)["copied"] == 1
    assert waiting(sqs, pair["queue_url"]) == 0


def apply_in_child(pair: dict[str, str]) -> None:
    batch(pair, conn_id=PROXY_CONN_ID, visibility_timeout=10, threads=4)


@pytest.mark.slow
def test_a_batch_killed_mid_way_loses_nothing(
    s3: Any, sqs: Any, pair: dict[str, str], fault_proxy: FaultProxy
) -> None:
    source, backup = pair["source"], pair["backup"]
    batch(pair)
    keys = [f"slow/{n:02d}" for n in range(40)]
    for key in keys:
        put(s3, source, key, Obj(key.encode()))
    fault_proxy.set_faults([FaultRule("slow", operation="CopyObject", delay=0.3)])
    child = multiprocessing.get_context("fork").Process(target=apply_in_child, args=(pair,))
    child.start()
    while len(list_keys(s3, backup)) < 8:
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    copied_before = len(list_keys(s3, backup))
    assert 8 <= copied_before < len(keys)
    assert waiting(sqs, pair["queue_url"]) == len(keys)  # none was deleted
    fault_proxy.clear_faults()
    time.sleep(10)
    results = drain(pair)
    assert sum(r["copied"] for r in results) == len(keys)
    assert waiting(sqs, pair["queue_url"]) == 0
    assert_backup_follows(s3, source, backup, deleted=set())


def test_a_lost_event_is_caught_by_s3_backup(s3: Any, sqs: Any, pair: dict[str, str]) -> None:
    """Notifications are at-least-once and some get lost: the daily s3_backup reconciles."""
    source, backup = pair["source"], pair["backup"]
    for key in ("a", "b", "c"):
        put(s3, source, key, Obj(key.encode(), tags={"t": key}))
    drain(pair)
    put(s3, source, "lost", Obj(b"never notified"))
    s3.delete_object(Bucket=source, Key="b")
    sqs.purge_queue(QueueUrl=pair["queue_url"])  # both events lost
    run = validate(source, backup)
    work = diff(run)
    assert (work["to_copy"], work["vanished"]) == (1, 1)
    copy(run, work)
    tag(run, work)
    assert_backup_follows(s3, source, backup, deleted={"b"})
    rerun = validate(source, backup, run_id="manual__y")
    again = diff(rerun)
    assert again["to_copy"] == 0 and tag(rerun, again)["tagged"] == 0  # b: already tagged


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queue_url": ""}, "s3br_events_queue_url"),
        ({"backup": "same"}, "its own backup"),
        ({"max_messages": 0}, "max_messages must be between 1 and 100000"),
        ({"visibility_timeout": "soon"}, "visibility_timeout must be a whole number"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    change: dict[str, Any], message: str, fault_proxy: FaultProxy
) -> None:
    pair = {"source": "same", "backup": "other", "queue_url": "http://127.0.0.1:1/123/q"}
    pair |= {k: v for k, v in change.items() if k in pair}
    options = {k: v for k, v in change.items() if k not in pair}
    with pytest.raises(AirflowFailException, match=message):
        batch(pair, conn_id=PROXY_CONN_ID, **options)
    assert fault_proxy.records == []


def test_setup_with_a_prefix_is_idempotent(s3: Any, bucket_names: Any) -> None:
    source = bucket_names("setup-prefix")
    s3.create_bucket(Bucket=source)
    op = S3EventsSetupOperator(
        task_id="setup", source_bucket=source, queue_name=f"q-{source}", prefix="data/"
    )
    assert op.execute(context())["changed"] == ["queue", "queue policy", "bucket notification"]
    assert op.execute(context())["changed"] == []


def test_metrics_of_a_batch(s3: Any, pair: dict[str, str], endpoint: str) -> None:
    cloudwatch, namespace = local_client("cloudwatch", endpoint), f"s3br-events-{pair['source']}"
    batch(pair)
    for key in ("m/1", "m/2", "m/3"):
        put(s3, pair["source"], key, Obj(b"x"))
    s3.delete_object(Bucket=pair["source"], Key="m/3")
    result = batch(pair, cloudwatch_namespace=namespace)
    assert (result["copied"], result["absent"]) == (2, 1)
    now = datetime.now(UTC)
    dimensions = [
        {"Name": "SourceBucket", "Value": pair["source"]},
        {"Name": "BackupBucket", "Value": pair["backup"]},
    ]

    def point(name: str) -> dict[str, Any]:
        (found,) = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=dimensions,
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=10),
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        return found

    assert (point("ObjectsBackedUp")["Maximum"], point("ObjectsBackedUp")["Unit"]) == (2.0, "Count")
    assert point("ObjectsTaggedDeleted")["Maximum"] == 0.0
    lag = point("ReplicationLagSeconds")
    assert (lag["Maximum"], lag["Unit"]) == (pytest.approx(result["lag_p95"]), "Seconds")
    assert 0 < result["lag_p50"] <= result["lag_p95"] <= result["lag_max"]


def test_a_versioned_source(s3: Any, sqs: Any, pair: dict[str, str]) -> None:
    """Delete markers mark the backup deleted; removing the marker (a versioned delete) brings
    the object back, and removing an old version copies what is current."""
    source, backup = pair["source"], pair["backup"]
    s3.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=source, Key="v", Body=b"one")["VersionId"]
    s3.put_object(Bucket=source, Key="v", Body=b"two", Tagging="n=2")
    drain(pair)
    assert s3.get_object(Bucket=backup, Key="v")["Body"].read() == b"two"
    marker = s3.delete_object(Bucket=source, Key="v")["VersionId"]
    assert batch(pair)["tagged_deleted"] == 1
    s3.delete_object(Bucket=source, Key="v", VersionId=marker)  # undelete
    assert batch(pair)["copied"] == 1
    assert live_state(s3, backup, "v") == live_state(s3, source, "v")
    assert snapshot(s3, backup, "v", body=False).tags == {"n": "2"}
    s3.delete_object(Bucket=source, Key="v", VersionId=old)  # an old version: v stays as it is
    assert batch(pair)["copied"] == 1
    assert live_state(s3, backup, "v") == live_state(s3, source, "v")
    assert waiting(sqs, pair["queue_url"]) == 0


def test_a_batch_stays_within_the_backup_policy(
    s3: Any, sqs: Any, pair: dict[str, str], fault_proxy: FaultProxy
) -> None:
    """Every request of batches with copies, deletes, tag changes and a versioned source is
    allowed by iam/backup-policy.json; none deletes an object."""
    source, backup = pair["source"], pair["backup"]
    s3.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a", "b", "c"):
        put(s3, source, key, Obj(b"x", tags={"t": key}))
    batch(pair, conn_id=PROXY_CONN_ID)
    s3.delete_object(Bucket=source, Key="a")
    s3.put_object_tagging(Bucket=source, Key="b", Tagging={"TagSet": [{"Key": "t", "Value": "2"}]})
    batch(pair, conn_id=PROXY_CONN_ID)
    queue_arn = sqs.get_queue_attributes(QueueUrl=pair["queue_url"], AttributeNames=["QueueArn"])
    statements = policy(
        "backup-policy",
        SOURCE_BUCKET=source,
        BACKUP_BUCKET=backup,
        EVENTS_QUEUE_ARN=queue_arn["Attributes"]["QueueArn"],
    )
    records = fault_proxy.records
    sqs_records = [r for r in records if r.operation in SQS_OPERATIONS]
    assert missing_permissions([r for r in records if r not in sqs_records], statements) == {}
    for record in sqs_records:
        action = "sqs:" + record.operation.removesuffix("Batch")
        assert allowed(statements, action, queue_arn["Attributes"]["QueueArn"]), action
    assert {"s3:GetObjectVersion", "s3:GetObjectVersionTagging"} <= set(used(records))
    assert not {r.operation for r in records} & {"DeleteObject", "DeleteObjects", "DeleteObjectTagging"}
