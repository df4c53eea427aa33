"""Plan the key partitions that the mapped tasks of a run work on."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from airflow.configuration import conf

from s3br_provider.core.diff import ListingNotSortedError
from s3br_provider.core.external_sort import sorted_objects
from s3br_provider.core.inventory import InventoryError, ReadCounts, cut_sorted, iso_minute, partition_size
from s3br_provider.core.keys import RESERVED_PREFIX, is_reserved
from s3br_provider.core.manifest import ManifestWriter
from s3br_provider.core.objects import ObjectInfo
from s3br_provider.core.partitions import (
    ASSUMED_COPY_FRACTION,
    LIST_SPLITS,
    UNORDERED_LISTING,
    KeyRange,
    keys_per_partition,
    plan_from_samples,
    split_points,
)
from s3br_provider.core.pool import bounded_map
from s3br_provider.core.probe_plan import Probe, plan_by_probing
from s3br_provider.core.progress import Progress
from s3br_provider.core.settings import BACKUP_DEFAULTS
from s3br_provider.core.stats import decode_copy_fraction, decode_stats, decode_unordered_listing, stats_uri
from s3br_provider.operators.base import InvalidArgumentsError, S3brBaseOperator

TARGET_KEYS_PER_PARTITION = 5_000
"""Keys per mapped partition: enough work to outweigh a task's start-up (about a second),
small enough to spread a large bucket over many workers."""
PROBE_WORKERS = 16
"""Planning probes in flight at once (the hook's request slots bound them too)."""
_AFTER_RESERVED = RESERVED_PREFIX + "\U0010ffff"
PROGRESS_SECONDS = 30.0
"""How often a plan from an inventory report logs its progress (1B keys take hours)."""


def listing_probe(hook: Any, bucket: str, prefix: str) -> Probe:
    """A probe for ``plan_by_probing``: one ListObjectsV2 request (``StartAfter``, ``MaxKeys``)
    under ``prefix``, holding one of the hook's request slots. Keys under the reserved
    ``_s3br/`` prefix are left out; a page that ends in them is filled from after the prefix
    with a second request, so the reserved keys never look like the end of the key space."""

    def page(start_after: str | None, max_keys: int) -> list[str]:
        # Read on past short truncated pages, or one would look like the end of the keys.
        return hook.first_keys(bucket, prefix, max_keys, start_after)

    def probe(start_after: str | None, max_keys: int) -> list[str]:
        keys = page(start_after, max_keys)
        kept = [key for key in keys if not is_reserved(key)]
        if len(kept) < len(keys) == max_keys and (start_after or "") < _AFTER_RESERVED:
            kept += page(_AFTER_RESERVED, max_keys - len(kept))
        for before, after in zip(kept, kept[1:], strict=False):
            if before >= after:  # str order is S3's UTF-8 byte order (core/keys.py)
                raise ListingNotSortedError(f"{bucket!r} listed {after!r} after {before!r}")
        return kept

    return probe


class S3PlanPartitionsOperator(S3brBaseOperator):
    """Split the key space of ``bucket`` under ``prefix`` into at most ``max_partitions`` ranges.

    With statistics from an earlier run (key samples kept in ``stats_bucket``'s ``_s3br/stats/``),
    partitions are sized to about ``target_keys`` keys each. Without them (a first run), the key
    space is probed with short listings (``StartAfter`` and ``MaxKeys``, in parallel, at most two
    requests per partition planned; see ``core/probe_plan.py``) and split into ranges of about
    ``target_keys`` keys, however flat, hashed or skewed it is.
    Returns the partitions, ``[{"index", "start_after", "end"}, ...]``, to map over. A partition
    planned from statistics that holds at least twice ``target_keys`` keys (one sized for a run
    that mostly lists, or capped by ``max_partitions``) also carries ``list_splits``: keys
    cutting it into up to eight sub-ranges of at least ``target_keys``, which its diff lists
    side by side.

    :param bucket: the bucket whose key space is split (a backup's source, a restore's backup).
    :param prefix: only keys under this prefix.
    :param max_partitions: upper bound (also capped by Airflow's ``core.max_map_length``).
    :param stats_bucket: the backup bucket that keeps the statistics; default: ``bucket``.
    :param stats_aws_conn_id: connection of ``stats_bucket``; default: ``aws_conn_id``.
    :param target_keys: keys per partition when every key is copied; default: the Airflow option
        ``[s3br] target_keys_per_partition`` (env ``AIRFLOW__S3BR__TARGET_KEYS_PER_PARTITION``), 5,000.
    :param size_by_change_rate: backups: when statistics exist, size partitions by the work the
        last run measured (a run that mostly lists gets fewer, larger partitions; see
        ``keys_per_partition``). Restores copy every key and leave this off.
    :param listing_source: ``list``, or ``inventory``: the source's latest S3 Inventory report
        under ``inventory_uri`` (read with ``aws_conn_id``) is sorted and cut into partitions of
        about ``target_keys`` keys, each partition's sorted listing written as a manifest in the
        run folder (``stats_bucket``'s); each partition then carries ``source_manifest`` and
        ``inventory_snapshot`` (ISO-8601), and nothing lists the source.
    :param inventory_uri: the inventory configuration's destination folder for this source.
    """

    template_fields: Sequence[str] = (
        *S3brBaseOperator.template_fields,
        "bucket",
        "prefix",
        "max_partitions",
        "stats_bucket",
        "stats_aws_conn_id",
        "listing_source",
        "inventory_uri",
    )

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        max_partitions: int | str = BACKUP_DEFAULTS.max_partitions,
        stats_bucket: str | None = None,
        stats_aws_conn_id: str | None = None,
        target_keys: int | None = None,
        size_by_change_rate: bool = False,
        listing_source: str = BACKUP_DEFAULTS.listing_source,
        inventory_uri: str = BACKUP_DEFAULTS.inventory_uri,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.listing_source = listing_source
        self.inventory_uri = inventory_uri
        self.bucket = bucket
        self.prefix = prefix
        self.max_partitions = max_partitions
        self.stats_bucket = stats_bucket
        self.stats_aws_conn_id = stats_aws_conn_id
        self.target_keys = target_keys
        self.size_by_change_rate = size_by_change_rate

    def execute(self, context: Any) -> list[dict[str, Any]]:
        self.check_arguments()
        self.target_keys = self.target_keys or conf.getint(
            "s3br", "target_keys_per_partition", fallback=TARGET_KEYS_PER_PARTITION
        )
        limit = min(self.max_partitions, conf.getint("core", "max_map_length", fallback=1024))
        if self.listing_source == "inventory":
            return self._plan_from_inventory(context, limit)
        planned = self._plan(limit)
        skipped = None if self.unordered_listing else self._start_after_skips(planned.ranges)
        if skipped:
            planned = self._one_partition(f"a StartAfter check: {skipped}")
        self.log.info(
            "Planned %d partition(s) from %s (limit %d):", len(planned.ranges), planned.source, limit
        )
        plan: list[dict[str, Any]] = []
        for index, key_range in enumerate(planned.ranges):
            item: dict[str, Any] = {"index": index, **key_range.to_dict()}
            points = split_points(planned.samples, key_range, keys_per_split=self.target_keys)
            if points:
                item[LIST_SPLITS] = points
            shown = f", listed in {len(points) + 1} sub-ranges side by side" if points else ""
            self.log.info("  p%d %s%s", index, key_range.label, shown)
            plan.append(item)
        if self.unordered_listing:
            plan[0][UNORDERED_LISTING] = True
        return plan

    unordered_listing = False
    """Whether the endpoint lists out of S3's byte order: then the plan is one partition."""

    def _plan(self, limit: int) -> _Planned:
        stats_hook = self.hook_for(self.stats_aws_conn_id or self.aws_conn_id)
        body = stats_hook.get_json_bytes(stats_uri(self.stats_bucket or self.bucket, self.prefix))
        if decode_unordered_listing(body, self.prefix):
            return self._one_partition("an earlier run: the endpoint lists out of S3's byte order")
        samples = decode_stats(body, self.prefix)
        if samples:
            target, how = self.target_keys, ""
            if self.size_by_change_rate:
                fraction = decode_copy_fraction(body, self.prefix)
                target = keys_per_partition(self.target_keys, fraction)
                measured = "last run copied" if fraction is not None else "assumed"
                shown = ASSUMED_COPY_FRACTION if fraction is None else fraction
                how = f"; {measured} {shown:.1%} of keys to copy: about {target} keys each"
            ranges = plan_from_samples(samples, target_keys=target, max_partitions=limit)
            return _Planned(ranges, f"statistics of {sum(w for _, w in samples)} keys{how}", samples)
        try:
            probed = plan_by_probing(
                listing_probe(self.hook, self.bucket, self.prefix),
                target_keys=self.target_keys,
                max_partitions=limit,
                prefix=self.prefix,
                workers=PROBE_WORKERS,
            )
        except ListingNotSortedError as error:
            return self._one_partition(f"a listing probe: {error}")
        counted = "counted" if probed.exact else "estimated"
        return _Planned(
            probed.ranges, f"{probed.probes} listing probes ({counted}: {probed.estimated_keys} keys)"
        )

    def _start_after_skips(self, ranges: Sequence[KeyRange]) -> str | None:
        """Where a listing from a partition's start would skip keys, or None. A start is a key;
        SeaweedFS answers ``StartAfter=K`` from after the whole directory ``K/``, so where ``K``
        is an object and a directory both, the keys under ``K/`` would never be listed (AWS
        lists them next, in byte order). Off AWS, each start not ending in ``/`` is checked:
        one listing under ``K/`` (MaxKeys 1), and where that finds a key, one after ``K``."""
        starts = [r.start_after for r in ranges if r.start_after and not r.start_after.endswith("/")]
        if not starts or self.hook.is_aws:
            return None

        def check(start: str) -> str | None:
            under = self.hook.first_key(self.bucket, f"{start}/")
            if under is None:
                return None
            after = self.hook.first_key(self.bucket, self.prefix, start_after=start)
            if after is not None and after <= under:
                return None
            return f"StartAfter {start!r} listed {after!r} first, skipping {under!r}"

        for _, found, error in bounded_map(check, starts, workers=PROBE_WORKERS):
            if error is not None:
                raise error
            if found:
                return found
        return None

    def _one_partition(self, seen_by: str) -> _Planned:
        """The plan of an endpoint that lists out of S3's byte order (SeaweedFS walks directory
        by directory: ``a/b`` before ``a-``): ranges split by ``StartAfter`` and early stops
        there can hide keys between them, so the whole key space is one partition, listed whole
        and sorted by its diff (its copies still spread over workers in chunks)."""
        self.unordered_listing = True
        self.log.warning(
            "%s lists keys out of S3's UTF-8 byte order (seen by %s): planning one partition, "
            "listed whole and sorted, so no key falls between partitions",
            self.bucket,
            seen_by,
        )
        return _Planned([KeyRange()], "one partition for an endpoint listing out of order")

    def _plan_from_inventory(self, context: Any, limit: int) -> list[dict[str, Any]]:
        """Sort the latest inventory report and write each partition's sorted source listing."""
        from s3br_provider.hooks.s3_inventory import S3InventoryReader

        reader = S3InventoryReader(self.hook, self.inventory_uri)
        try:
            report = reader.latest()
        except InventoryError as error:
            raise InvalidArgumentsError(str(error)) from None
        manifest, counts = report.manifest, ReadCounts()
        snapshot = manifest.snapshot.isoformat()
        read = Progress(f"inventory {report.uri}: read", self.log.info, interval=PROGRESS_SECONDS)
        listing = sorted_objects(_counted(reader.objects(manifest, self.prefix, counts), read))
        first = next(listing, None)  # the sort has read every data file once it yields
        if counts.reserved:
            raise InvalidArgumentsError(
                f"the inventory of {self.bucket!r} lists keys under {RESERVED_PREFIX!r} (first: "
                f"{counts.reserved[0]!r}), the prefix where s3br keeps its run files, and a backup "
                "never copies them. Is it an s3br backup bucket? Set prefix to the keys to back up."
            )
        cut = partition_size(counts.kept, self.target_keys, limit)
        run_uri = self.run_uri(context, self.stats_bucket or self.bucket)
        store = self.hook_for(self.stats_aws_conn_id or self.aws_conn_id)
        written = Progress("partition listings: written", self.log.info, counts.kept, PROGRESS_SECONDS)
        with _PartitionManifests(store, f"{run_uri}/inventory") as manifests:
            objects = listing if first is None else _chain(first, listing)
            ranges = cut_sorted(_counted(objects, written), cut.per_partition, manifests.write)
        plan = [
            {
                "index": i,
                **r.to_dict(),
                "source_manifest": manifests.uris.get(i, ""),
                "inventory_snapshot": snapshot,
            }
            for i, r in enumerate(ranges)
        ]
        self.log.info(
            "Inventory report %s (snapshot %s, %s): %d data file(s), %d rows, %d keys under prefix "
            "%r (%d older versions, %d delete markers, %d outside the prefix left out)",
            report.uri,
            iso_minute(manifest.snapshot),
            manifest.file_format,
            counts.files,
            counts.rows,
            counts.kept,
            self.prefix,
            counts.not_latest,
            counts.delete_markers,
            counts.outside_prefix,
        )
        self.log.info(
            "Planned %d partition(s) of up to %d keys from the inventory (limit %d):",
            len(plan),
            cut.per_partition,
            limit,
        )
        for item, key_range in zip(plan, ranges, strict=True):
            self.log.info("  p%d %s", item["index"], key_range.label)
        return plan


class _Planned(NamedTuple):
    """Ranges planned, how (for the log), and the statistics' key samples if they were used
    (for ``list_splits``)."""

    ranges: list[KeyRange]
    source: str
    samples: Sequence[tuple[str, int]] = ()


def _counted(objects: Iterator[ObjectInfo], progress: Progress) -> Iterator[ObjectInfo]:
    for obj in objects:
        progress.add(obj.size)
        yield obj


def _chain(first: ObjectInfo, rest: Any) -> Any:
    yield first
    yield from rest


class _PartitionManifests:
    """Writes partition after partition to local files, uploading each as soon as it is full
    (``<folder>/p00000.jsonl.gz``), so at most one partition's listing is on disk at a time."""

    def __init__(self, store: Any, folder_uri: str) -> None:
        self.store, self.folder_uri = store, folder_uri
        self.uris: dict[int, str] = {}
        self._index: int | None = None
        self._writer: ManifestWriter | None = None
        self._stream: Any = None

    def __enter__(self) -> _PartitionManifests:
        self._folder = tempfile.TemporaryDirectory(prefix="s3br-plan-")
        self._path = os.path.join(self._folder.name, "partition.jsonl.gz")
        return self

    def write(self, index: int, obj: ObjectInfo) -> None:
        if index != self._index:
            self._finish()
            self._index, self._stream = index, open(self._path, "wb")
            self._writer = ManifestWriter(self._stream)
        assert self._writer is not None
        self._writer.write(obj.to_record())

    def _finish(self) -> None:
        if self._writer is None or self._index is None:
            return
        self._writer.close()
        self._stream.close()
        uri = f"{self.folder_uri}/p{self._index:05d}.jsonl.gz"
        self.store.upload(self._path, uri)
        self.uris[self._index] = uri
        self._writer = None

    def __exit__(self, kind: Any, *rest: Any) -> None:
        try:
            if kind is None:
                self._finish()
            elif self._stream is not None:
                self._stream.close()
        finally:
            self._folder.cleanup()
