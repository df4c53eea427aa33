"""CloudWatch metrics for backup and restore runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from s3br_provider.hooks.sdk_cache import FastClientSetupMixin


def unit(name: str) -> str:
    """The CloudWatch unit of a metric, by its name."""
    if name.startswith("Bytes"):
        return "Bytes"
    return "Seconds" if name.endswith("Seconds") else "Count"


class BackupMetricsHook(FastClientSetupMixin, AwsBaseHook):
    """Publish s3br's counters with PutMetricData.

    :param aws_conn_id: Airflow connection used for CloudWatch.
    :param namespace: CloudWatch namespace; empty turns metrics off.
    :param kwargs: ``AwsBaseHook``'s (``region_name``, ``verify``, ``config``), so metrics go
        where the operator's S3 requests go.
    """

    def __init__(
        self, *, aws_conn_id: str | None = "aws_default", namespace: str = "BackupRecovery", **kwargs: Any
    ) -> None:
        super().__init__(aws_conn_id=aws_conn_id, client_type="cloudwatch", **kwargs)
        self.namespace = namespace

    def publish(self, values: Mapping[str, float], dimensions: Mapping[str, str]) -> None:
        """Send one datum per value; names starting with ``Bytes`` get the Bytes unit, names
        ending in ``Seconds`` the Seconds unit.

        Metrics must never fail a backup: errors are logged with the namespace and skipped.
        """
        if not self.namespace or not values:
            return
        dims = [{"Name": name, "Value": value} for name, value in dimensions.items()]
        data = [
            {
                "MetricName": name,
                "Dimensions": dims,
                "Value": float(value),
                "Unit": unit(name),
            }
            for name, value in values.items()
        ]
        try:
            for start in range(0, len(data), 1000):
                self.conn.put_metric_data(Namespace=self.namespace, MetricData=data[start : start + 1000])
        except Exception:
            self.log.warning(
                "Could not publish metrics to CloudWatch namespace %s", self.namespace, exc_info=True
            )
            return
        self.log.info("Published %s to CloudWatch namespace %s", ", ".join(values), self.namespace)
