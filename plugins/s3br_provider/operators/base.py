"""What every s3br operator shares: validated settings, one hook per connection, partitions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from s3br_provider.core.partitions import KeyRange

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.s3_bucket import S3BucketHook

DEFAULT_COPY_THREADS = 32


class S3brBaseOperator(BaseOperator):
    """Base of s3br's operators.

    :param settings: the dict returned by the run's validate task.
    """

    template_fields: tuple[str, ...] = ("settings",)
    ui_color = "#e8f1ff"

    def __init__(self, *, settings: dict[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    def hook(self, aws_conn_id: str) -> S3BucketHook:
        """Return this task's hook (and so its one boto3 client) for a connection."""
        from s3br_provider.hooks.s3_bucket import S3BucketHook

        hooks = self.__dict__.setdefault("_s3br_hooks", {})
        if aws_conn_id not in hooks:
            hooks[aws_conn_id] = S3BucketHook(
                aws_conn_id=aws_conn_id, max_pool_connections=DEFAULT_COPY_THREADS + 8
            )
        return hooks[aws_conn_id]


class S3brPartitionOperator(S3brBaseOperator):
    """An s3br operator mapped over one key partition.

    :param partition: ``{"index", "start_after", "end"}`` from the plan task.
    """

    template_fields: tuple[str, ...] = ("settings", "partition")

    def __init__(self, *, partition: dict[str, Any] | Any, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ partition_label }}")
        super().__init__(**kwargs)
        self.partition = partition

    @property
    def key_range(self) -> KeyRange:
        return KeyRange.from_dict(self.partition)

    @property
    def index(self) -> int:
        return int(self.partition["index"])

    def label_partition(self, context: Any) -> None:
        """Show the partition's key range as the mapped task's name in the UI."""
        context["partition_label"] = f"p{self.index} {self.key_range.label}"
