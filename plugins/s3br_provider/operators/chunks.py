"""gather_chunks: the copy chunks of every partition, as the mapped ``copy_chunk``'s arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from s3br_provider.core.chunks import chunk_copies
from s3br_provider.core.report import as_list
from s3br_provider.operators.idle import skip_idle_steps, steps_to_skip

TARGET_KEYS_PER_PARTITION = 5_000  # the default of [s3br] target_keys_per_partition (operators.plan)
GATHER_TRIGGER_RULE = "all_done_setup_success"
"""Gather after every diff outcome (a failed partition must not hold back the others' chunks),
but not after a failed validate (the setup task)."""


def copy_chunk_keys() -> int:
    """Records per copy-manifest chunk: ``[s3br] copy_chunk_keys`` (env
    ``AIRFLOW__S3BR__COPY_CHUNK_KEYS``); unset: twice ``[s3br] target_keys_per_partition``, so
    no copy task holds more than twice a partition's planned work."""
    target = conf.getint("s3br", "target_keys_per_partition", fallback=TARGET_KEYS_PER_PARTITION)
    return conf.getint("s3br", "copy_chunk_keys", fallback=2 * target)


class S3GatherChunksOperator(BaseOperator):
    """Collect the partitions' extra copy chunks into the keyword arguments of a mapped copy.

    A reduce step of the diffs only (it never waits for the partitions' copies): returns a list
    of ``{"partition", "manifest_uri", "expected"}`` for ``S3CopyBatchOperator.partial(...)
    .expand_kwargs(...)``, one per chunk; with more chunks than ``max_map_length``, consecutive
    chunks of a partition are merged (``core.chunks.merge_factor``). Reads no object, writes nothing.

    :param diff_results: results of the mapped diff tasks (their ``copy_chunks``).
    :param max_map_length: most copy tasks; default: Airflow's ``[core] max_map_length`` (1024).
    :param skip_when_empty: tasks downstream of this one, by their ids within its group (the
        factories: ``copy_chunk``), marked skipped when there is no chunk to copy, so that the
        scheduler need not first expand them to nothing (one more scheduler loop before the
        report); the empty list is pushed all the same. Default: none.
    """

    template_fields: Sequence[str] = ("diff_results",)
    ui_color = "#e8f1ff"

    def __init__(
        self,
        *,
        diff_results: Any,
        max_map_length: int | None = None,
        skip_when_empty: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", GATHER_TRIGGER_RULE)
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.diff_results = diff_results
        self.max_map_length = max_map_length
        self.skip_when_empty = skip_when_empty

    def execute(self, context: Any) -> list[dict[str, Any]]:
        empty_steps = steps_to_skip(self, self.skip_when_empty, "skip_when_empty")
        limit = self.max_map_length or conf.getint("core", "max_map_length", fallback=1024)
        results = [r for r in as_list(self.diff_results) if isinstance(r, dict)]
        copies = chunk_copies(results, limit)
        chunks = sum(len(r.get("copy_chunks") or ()) for r in results)
        chunked = sum(1 for r in results if r.get("copy_chunks"))
        if chunks > len(copies):
            self.log.info(
                "%d chunk(s) merged into %d copy task(s) (max_map_length %d)", chunks, len(copies), limit
            )
        self.log.info(
            "%d partition(s) diffed, %d with more than one chunk to copy: %d chunk copy task(s)",
            len(results),
            chunked,
            len(copies),
        )
        if not copies:
            skip_idle_steps(self, context, copies, empty_steps, "No chunk to copy")
        return copies
