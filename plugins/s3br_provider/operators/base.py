"""What every s3br operator shares: connection arguments, cached hooks, argument checks.

In the style of the Amazon provider's ``AwsBaseOperator`` (``aws_conn_id``, ``region_name``,
``verify``, ``botocore_config``, a cached ``hook``). That class is marked internal to the
provider and importing it loads boto3 when a DAG file is parsed; this base imports the hook
only when a task first talks to S3, which keeps DAG parsing and no-op tasks fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from s3br_provider.core.manifest import run_folder
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.partitions import LIST_SPLITS, KeyRange, split_range
from s3br_provider.core.pool import bounded_map, concat_ahead, prefetch
from s3br_provider.core.progress import Progress
from s3br_provider.core.settings import RULES, SettingsError, check_argument
from s3br_provider.hooks.errors import error_code

if TYPE_CHECKING:  # boto3 loads only in tasks that call S3: a no-op task starts faster
    from s3br_provider.hooks.async_copies import AsyncCopies, DirectCopy
    from s3br_provider.hooks.metrics import BackupMetricsHook
    from s3br_provider.hooks.s3_bucket import S3BucketHook

DEFAULT_COPY_THREADS = 32
MAX_REPORTED_FAILURES = 50
LISTINGS_AHEAD = 4
"""Sub-ranges of a split partition (``list_splits``) listed at once per bucket: four listings
of each bucket in flight, where one waits a round trip per page of 1,000 keys."""
SUB_RANGE_DEPTH = 10_000
"""Objects a sub-range's listing fetches ahead of its reader (about one sub-range of a
partition sized for listing; memory: ``LISTINGS_AHEAD`` times this per bucket)."""
R = TypeVar("R")
AWS_TEMPLATE_FIELDS = ("aws_conn_id", "region_name", "verify", "botocore_config")
WHOLE_KEY_SPACE: dict[str, Any] = {"index": 0, "start_after": None, "end": None}


class InvalidArgumentsError(AirflowFailException):
    """Bad input: the task fails at once, without retries, before anything is written."""


class S3brBaseOperator(BaseOperator):
    """Base of s3br's operators.

    :param aws_conn_id: Airflow AWS connection of the bucket the operator writes to (or reads,
        for operators that only read).
    :param region_name: AWS region; default: the connection's.
    :param verify: TLS certificate verification: False, or a CA bundle path; default: the connection's.
    :param botocore_config: botocore ``Config`` keyword arguments (a dict) on top of s3br's
        defaults (standard retries, a connection pool as large as the requests in flight).
    :param run_scope: a sub-folder of the run folder for this flow's manifests and report
        (``backup_group`` sets its ``group_id``), so several flows in one DAG run keep apart.
    :param run_folder_uri: where the run's manifests and report go, for operators that write
        them; default ``s3://<backup_bucket>/_s3br/runs/<dag_id>/<run_id>`` (see ``run_uri``).
    """

    template_fields: Sequence[str] = (*AWS_TEMPLATE_FIELDS, "run_folder_uri")
    ui_color = "#e8f1ff"

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        run_scope: str | None = None,
        run_folder_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_scope = run_scope
        self.run_folder_uri = run_folder_uri
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def check_arguments(self) -> None:
        """Check each templated argument that ``core.settings`` has a rule for (and convert it:
        a rendered ``"64"`` becomes 64); a bad one fails the task naming it. None means "not
        given" (the operator's fallback applies); TLS and botocore settings are the connection's."""
        try:
            for name in self.template_fields:
                value = getattr(self, name)
                if value is None or name not in RULES or name in ("verify", "botocore_config"):
                    continue
                setattr(self, name, check_argument(name, value))
        except SettingsError as error:
            raise InvalidArgumentsError(str(error)) from None

    @cached_property
    def hook(self) -> S3BucketHook:
        """The hook (and so the one boto3 client) of ``aws_conn_id``."""
        return self.hook_for(self.aws_conn_id)

    def hook_for(self, aws_conn_id: str | None, hook_class: type | None = None) -> Any:
        """The task's hook for a connection (of ``S3BucketHook`` or a subclass); one per
        connection and class, with this operator's region, TLS and botocore settings."""
        from s3br_provider.hooks.s3_bucket import S3BucketHook

        hook_class = hook_class or S3BucketHook
        hooks = self.__dict__.setdefault("_s3br_hooks", {})
        if (aws_conn_id, hook_class) not in hooks:
            in_flight = self.requests_in_flight
            hooks[aws_conn_id, hook_class] = hook_class(
                aws_conn_id=aws_conn_id,
                max_pool_connections=in_flight + 8,
                max_in_flight=in_flight,
                region_name=self.region_name,
                verify=self.verify,
                config=self.botocore_config,
            )
        return hooks[aws_conn_id, hook_class]

    @property
    def requests_in_flight(self) -> int:
        """The most S3 requests this task's hooks send at once (each hook's ``max_in_flight``)."""
        return DEFAULT_COPY_THREADS

    def metrics_hook(self, namespace: str) -> BackupMetricsHook:
        """CloudWatch of ``aws_conn_id`` in ``namespace`` (``""``: off), with this operator's
        region, TLS and botocore settings."""
        from s3br_provider.hooks.metrics import BackupMetricsHook

        return BackupMetricsHook(
            aws_conn_id=self.aws_conn_id,
            namespace=namespace,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def run_uri(self, context: Any, backup_bucket: str, run_folder_uri: str | None = None) -> str:
        """Where this run keeps its manifests and report: ``run_folder_uri`` if given, else
        ``s3://<backup_bucket>/_s3br/runs/<dag_id>/<run_id>``, plus ``/<run_scope>`` if set."""
        run_folder_uri = run_folder_uri or self.run_folder_uri
        if run_folder_uri:
            return run_folder_uri.rstrip("/")
        folder = run_folder(backup_bucket, self.dag_id, context["run_id"])
        return f"{folder}/{self.run_scope}" if self.run_scope else folder


class S3brPartitionOperator(S3brBaseOperator):
    """An s3br operator that works on one key partition (usually mapped over the plan).

    :param partition: ``{"index", "start_after", "end"}`` from the plan task; default: the
        whole key space as partition 0. A copy chunk's also has ``chunk`` (its number, or a
        merged ``"2-4"``) and ``chunks`` (the partition's count), shown in its label.
    :param dry_run: count and log what the step would do; write nothing.
    :param threads: requests in flight; default: the operator's ``default_threads``.
    """

    template_fields: Sequence[str] = (*S3brBaseOperator.template_fields, "partition", "dry_run")
    default_threads: int = 16

    def __init__(
        self,
        *,
        partition: dict[str, Any] | None = None,
        dry_run: bool | str = False,
        threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("map_index_template", "{{ partition_label }}")
        super().__init__(**kwargs)
        self.partition = partition
        self.dry_run = dry_run
        self.threads = threads or self.default_threads

    @property
    def key_range(self) -> KeyRange:
        return KeyRange.from_dict(self.partition or WHOLE_KEY_SPACE)

    @property
    def index(self) -> int:
        return int((self.partition or WHOLE_KEY_SPACE)["index"])

    def list_in_key_order(self, hook: S3BucketHook, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """The partition's objects of ``bucket`` under ``prefix`` in key order, fetched ahead on
        a thread; a partition the plan split (``list_splits``) is listed as its sub-ranges, up
        to ``LISTINGS_AHEAD`` of them side by side, and read back in key order."""
        sub_ranges = split_range(self.key_range, (self.partition or {}).get(LIST_SPLITS) or ())
        if len(sub_ranges) == 1:
            return prefetch(hook.iter_objects(bucket, prefix, self.key_range))
        return concat_ahead(
            (partial(hook.iter_objects, bucket, prefix, sub_range) for sub_range in sub_ranges),
            ahead=LISTINGS_AHEAD,
            depth=SUB_RANGE_DEPTH,
        )

    @property
    def part_name(self) -> str:
        """``p3``, or for a copy chunk ``p3 chunk 2/5``."""
        partition = self.partition or WHOLE_KEY_SPACE
        if partition.get("chunk") is None:
            return f"p{self.index}"
        return f"p{self.index} chunk {partition['chunk']}/{partition.get('chunks', '?')}"

    @property
    def label(self) -> str:
        return f"{self.part_name} {self.key_range.label}"

    def manifest_uri(self, run_uri: str, kind: str) -> str:
        """The URI of this partition's manifest of one kind (``copy``, ``vanished``, ...)."""
        return f"{run_uri}/{kind}/p{self.index:05d}.jsonl.gz"

    def label_partition(self, context: Any) -> None:
        """Show the partition's key range as the mapped task's name in the UI."""
        context["partition_label"] = self.label

    def run_each(
        self,
        fn: Callable[[ObjectInfo], R],
        objects: Iterable[ObjectInfo],
        result: dict[str, Any],
        what: str,
        bucket: str,
        progress: Progress | None = None,
        *,
        direct: tuple[AsyncCopies, Callable[[ObjectInfo], DirectCopy | None]] | None = None,
    ) -> Iterator[tuple[ObjectInfo, R]]:
        """Run ``fn`` on ``threads`` threads; yield what succeeded, count and log what failed.

        ``direct``: a sender and the CopyObject it sends for an object instead of ``fn`` (True
        its outcome), or None for ``fn``; ``fn`` takes over wherever that copy did not succeed.
        A failure is logged with its key and bucket and kept (up to ``MAX_REPORTED_FAILURES``)
        in ``result["failures"]``, so one bad object never stops the others.
        """
        if direct is None:
            outcomes = bounded_map(fn, objects, workers=self.threads)
        else:
            sender, request = direct
            outcomes = sender.run(objects, request, fn, workers=self.threads)
        for obj, outcome, error in outcomes:
            if error is None:
                yield obj, outcome
                continue
            result["failed"] += 1
            if progress is not None:
                progress.add(failed=True)
            self.log.warning(
                "%s of s3://%s/%s failed: %s: %s", what, bucket, obj.key, error_code(error), error
            )
            if len(result["failures"]) < MAX_REPORTED_FAILURES:
                result["failures"].append({"key": obj.key, "error": error_code(error)})

    def fail_on_failures(self, context: Any, result: dict[str, Any], what: str) -> None:
        """Fail the task naming the first failures, after keeping its result for the report."""
        if not result["failed"]:
            return
        context["ti"].xcom_push(key="return_value", value=result)  # the report still reads it
        shown = ", ".join(f"{f['key']!r} ({f['error']})" for f in result["failures"][:5])
        raise AirflowException(f"{self.part_name}: {result['failed']} object(s) {what}: {shown}")


class KeyedResultMixin:
    """For operators whose result keys are each also an XCom of their own (``op.output["key"]``).

    By default every key is (``multiple_outputs``). Each key pushed is one execution-API request,
    sent one after another as the task ends: a diff's 26 (then ``return_value``) took 0.3 s of
    each diff task, and api-server CPU (bench/results/seaweedfs-n10000-preload.md).
    ``output_keys`` names the keys to push (the whole result stays ``return_value``): the task
    groups name those they wire.
    """

    OUTPUT_KEYS: frozenset[str] = frozenset()
    """The keys every result has: what ``output_keys`` may name."""
    output_keys: list[str] | None = None

    @classmethod
    def keyed_result(
        cls, output_keys: Sequence[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[str] | None, dict[str, Any]]:
        """``output_keys`` checked against ``OUTPUT_KEYS``, and ``kwargs`` with
        ``multiple_outputs`` set to match: on for every key, off where only named keys go."""
        if output_keys is None:
            kwargs.setdefault("multiple_outputs", True)
            return None, kwargs
        unknown = sorted(set(output_keys) - cls.OUTPUT_KEYS)
        if unknown:
            raise ValueError(
                f"{kwargs.get('task_id')}: output_keys names {unknown}, not keys of its result "
                f"({', '.join(sorted(cls.OUTPUT_KEYS))})"
            )
        return list(output_keys), {**kwargs, "multiple_outputs": False}

    def push_output_keys(self, ti: Any, result: dict[str, Any]) -> None:
        """Push the ``output_keys`` of ``result`` (``multiple_outputs`` pushes every key itself)."""
        if self.output_keys is None or not getattr(self, "do_xcom_push", True):
            return
        for key in self.output_keys:
            ti.xcom_push(key, result[key])
