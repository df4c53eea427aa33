"""BackupMetricsHook against moto's CloudWatch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from s3br_provider.hooks.metrics import BackupMetricsHook
from s3br_provider.operators.base import S3brBaseOperator
from tests.integration.conftest import PROXY_CONN_ID
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import local_client

DIMENSIONS = {"SourceBucket": "src-bucket", "BackupBucket": "bak-bucket"}


@pytest.fixture(scope="module")
def cloudwatch(endpoint: str) -> Any:
    return local_client("cloudwatch", endpoint)


@pytest.fixture
def namespace() -> str:
    return f"s3br-test-{uuid.uuid4().hex[:8]}"


def as_dict(dimensions: list[dict[str, str]]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in dimensions}


def datapoint(cloudwatch: Any, namespace: str, name: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    (point,) = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in DIMENSIONS.items()],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    return point


def test_publish_reaches_cloudwatch(cloudwatch: Any, namespace: str) -> None:
    hook = BackupMetricsHook(aws_conn_id="aws_default", namespace=namespace)
    hook.publish({"ObjectsToBackup": 7, "BytesToBackup": 4096, "ObjectsFailed": 0}, DIMENSIONS)
    metrics = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    assert sorted(m["MetricName"] for m in metrics) == ["BytesToBackup", "ObjectsFailed", "ObjectsToBackup"]
    assert all(as_dict(m["Dimensions"]) == DIMENSIONS for m in metrics)
    objects = datapoint(cloudwatch, namespace, "ObjectsToBackup")
    assert (objects["Sum"], objects["Unit"]) == (7.0, "Count")
    assert datapoint(cloudwatch, namespace, "BytesToBackup")["Sum"] == 4096.0


@pytest.mark.parametrize("name", ["BytesToBackup", "BytesBackedUp", "BytesToRestore", "BytesRestored"])
def test_byte_metrics_have_the_bytes_unit(cloudwatch: Any, namespace: str, name: str) -> None:
    BackupMetricsHook(aws_conn_id="aws_default", namespace=namespace).publish({name: 10}, DIMENSIONS)
    assert datapoint(cloudwatch, namespace, name)["Unit"] == "Bytes"


def test_empty_namespace_or_values_publish_nothing(fault_proxy: FaultProxy, namespace: str) -> None:
    BackupMetricsHook(aws_conn_id=PROXY_CONN_ID, namespace="").publish({"ObjectsToBackup": 1}, DIMENSIONS)
    BackupMetricsHook(aws_conn_id=PROXY_CONN_ID, namespace=namespace).publish({}, DIMENSIONS)
    assert fault_proxy.records == []


def test_more_than_1000_values_are_sent_in_batches(
    fault_proxy: FaultProxy, cloudwatch: Any, namespace: str
) -> None:
    values = {f"Metric{i:04d}": i for i in range(1001)}
    BackupMetricsHook(aws_conn_id=PROXY_CONN_ID, namespace=namespace).publish(values, DIMENSIONS)
    assert fault_proxy.operations()["PutMetricData"] == 2
    names = set()
    for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace=namespace):
        names |= {m["MetricName"] for m in page["Metrics"]}
    assert names == set(values)


def test_a_cloudwatch_failure_does_not_raise(
    fault_proxy: FaultProxy, cloudwatch: Any, namespace: str
) -> None:
    fault_proxy.set_faults([{"kind": "access_denied", "operation": "PutMetricData"}])
    BackupMetricsHook(aws_conn_id=PROXY_CONN_ID, namespace=namespace).publish(
        {"ObjectsToBackup": 1}, DIMENSIONS
    )
    assert [r.operation for r in fault_proxy.faulted()] == ["PutMetricData"]
    assert cloudwatch.list_metrics(Namespace=namespace)["Metrics"] == []


def test_an_operators_metrics_go_where_its_requests_go(endpoint: str, namespace: str) -> None:
    """The region (and TLS and botocore settings) of the operator reach CloudWatch too."""
    operator = S3brBaseOperator(
        task_id="report", region_name="eu-west-1", botocore_config={"user_agent_extra": "t"}
    )
    operator.metrics_hook(namespace).publish({"ObjectsToBackup": 3}, DIMENSIONS)
    there = local_client("cloudwatch", endpoint, region_name="eu-west-1").list_metrics(Namespace=namespace)
    here = local_client("cloudwatch", endpoint).list_metrics(Namespace=namespace)
    assert [m["MetricName"] for m in there["Metrics"]] == ["ObjectsToBackup"]
    assert here["Metrics"] == []
