"""diff[p]: walk the source and backup listings of one partition side by side."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from s3br_provider.core.chunks import ChunkedManifestWriter, chunk_uri, first_chunk_partition, writing_chunks
from s3br_provider.core.diff import (
    Action,
    Compare,
    DiffEntry,
    ListingNotSortedError,
    check_sorted,
    merge_listings,
)
from s3br_provider.core.external_sort import sorted_objects
from s3br_provider.core.fingerprints import content_differs
from s3br_provider.core.idle import backup_partition_idle, nothing_to_tag
from s3br_provider.core.manifest import ManifestWriter, read_manifest, writing_manifest
from s3br_provider.core.objects import ObjectInfo, epoch_seconds
from s3br_provider.core.partitions import SORTED_LOCALLY, UNORDERED_LISTING
from s3br_provider.core.pool import map_where_ordered, prefetch
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.sampler import KeySampler
from s3br_provider.core.settings import ARCHIVED_SOURCE_RESTORE, SettingsError, check_bool
from s3br_provider.hooks.deleted_index import DeletedKeys, read_deleted_keys
from s3br_provider.hooks.errors import error_code
from s3br_provider.operators.base import (
    WHOLE_KEY_SPACE,
    InvalidArgumentsError,
    KeyedResultMixin,
    S3brPartitionOperator,
)
from s3br_provider.operators.chunks import copy_chunk_keys
from s3br_provider.operators.copy_batch import FROM_INVENTORY, REPLACE_TAGS
from s3br_provider.operators.idle import skip_idle_steps, steps_to_skip
from s3br_provider.operators.tag_deleted import MARKED_DELETED, S3TagDeletedOperator

if TYPE_CHECKING:
    from s3br_provider.hooks.s3_bucket import S3BucketHook

DRY_RUN_EXAMPLES = 10
MAX_NAMED = 50  # archived keys named per partition in the result and report
ALL_KEYS = 2**63  # copy_chunk_keys without chunk_copies: one chunk
CHECK_WINDOW = 2000  # diff entries held back, at most, behind a key whose checksums are read


class _NoWrite:
    """Manifest writer of a dry run: counts, writes nothing."""

    count = 0
    chunks: list = []

    def write(self, record: dict[str, Any]) -> None:
        self.count += 1


UNREAD = object()
"""The deleted-key index not read yet (a diff reads it once, at its first vanished key)."""


class S3DiffPartitionOperator(KeyedResultMixin, S3brPartitionOperator):
    """Classify every key of a partition as new, changed, unchanged or vanished.

    Both buckets are listed over the same key range, concurrently, and merge-joined in O(1)
    memory. Keys to copy and keys that vanished go to gzip JSON Lines manifests in the run
    folder; only counts and manifest URIs are returned, each also as its own XCom
    (``diff.output["copy_manifest"]``; ``""`` when there is none).

    With ``chunk_copies`` (``backup_group`` sets it), the copy manifest is written in chunks of
    at most ``copy_chunk_keys`` records (key ranges of the sorted diff, ``core.chunks``):
    ``copy_manifest`` is the first, copied by the partition's ``copy_batch``
    (``copy_manifest_objects`` records, over ``copy_partition``'s range); ``copy_chunks`` lists
    the others (``[{manifest, objects, bytes, start_after, end}]``) for ``gather_chunks`` and the
    mapped ``copy_chunk``. Without it, ``copy_manifest`` holds every key to copy, as a DAG that
    wires diff to one copy expects.

    :param source_bucket: bucket to back up.
    :param backup_bucket: bucket that receives the copies (and the run's manifests).
    :param prefix: only keys under this prefix.
    :param compare: ``size_mtime`` or ``checksum`` (see ``core.diff.Compare``).
    :param source_aws_conn_id: connection of the source; default: ``aws_conn_id`` (the backup's).
    :param archived_source: source objects in GLACIER / DEEP_ARCHIVE that need a copy: ``skip``
        (counted and named) or ``restore`` (a Bulk restore for 7 days is requested in the source,
        once; a later run copies the object when it is readable).
    :param chunk_copies: write the copy manifest in chunks (for ``gather_chunks``); default False.
    :param copy_chunk_keys: most records per chunk; default: the Airflow option
        ``[s3br] copy_chunk_keys`` (env ``AIRFLOW__S3BR__COPY_CHUNK_KEYS``), else twice
        ``[s3br] target_keys_per_partition`` (10,000).
    :param exact_tag_copy: the backup endpoint's CopyObject with TaggingDirective=COPY gives a
        copy exactly its source's tags, dropping those of the object it overwrites (validate's
        tag probe: ``backup_group`` passes its XCom ``exact_tag_copy``). Then a changed object is
        copied so, without a GetObjectTagging first. Default False: each changed object is
        flagged for copy_batch to read its tags and set them (TaggingDirective=REPLACE), so a
        returning object never keeps ``Deleted=True`` on an endpoint that merges old tags in.
    :param tag_deleted: the backup's option: off, vanished objects leave nothing to tag.
    :param skip_when_idle: tasks downstream of this one in its mapped task group, by their ids
        within the group (``backup_group``: ``copy_batch``, ``tag_deleted``), marked skipped
        for this map index when the partition has nothing to copy and nothing to tag, so they
        never start (``operators.idle``); the result then says ``idle_steps_skipped``, and the
        report counts them as zero work. Default: none, every task runs.
    :param output_keys: the keys of the result also pushed as XComs of their own (any of
        ``OUTPUT_KEYS``); default None: every key. ``backup_group`` names the five it wires.
    """

    OUTPUT_KEYS = frozenset(
        {
            *("index", "label", "source_objects", "backup_objects", "new", "changed", "unchanged"),
            *("vanished", "marked_deleted", "to_tag", "to_copy", "skipped_archived"),
            *("archive_restores_requested", "bytes_to_copy", "content_checked", "content_unknown"),
            *("source_bytes", "copy_manifest", "vanished_manifest", "copy_manifest_objects"),
            *("copy_partition", "copy_chunks", "archived_keys", SORTED_LOCALLY),
        }
    )

    template_fields: Sequence[str] = (
        *S3brPartitionOperator.template_fields,
        "source_bucket",
        "backup_bucket",
        "prefix",
        "compare",
        "source_aws_conn_id",
        "archived_source",
        "exact_tag_copy",
        "tag_deleted",
    )

    def __init__(
        self,
        *,
        source_bucket: str,
        backup_bucket: str,
        prefix: str = "",
        compare: str = Compare.SIZE_MTIME.value,
        source_aws_conn_id: str | None = None,
        archived_source: str = "skip",
        chunk_copies: bool = False,
        copy_chunk_keys: int | None = None,
        exact_tag_copy: bool | str = False,
        tag_deleted: bool | str = True,
        skip_when_idle: Sequence[str] = (),
        output_keys: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        output_keys, kwargs = self.keyed_result(output_keys, kwargs)
        super().__init__(**kwargs)
        self.output_keys = output_keys
        self.source_bucket = source_bucket
        self.backup_bucket = backup_bucket
        self.prefix = prefix
        self.compare = compare
        self.source_aws_conn_id = source_aws_conn_id
        self.archived_source = archived_source
        self.chunk_copies = chunk_copies
        self.copy_chunk_keys = copy_chunk_keys
        self.exact_tag_copy = exact_tag_copy
        self.tag_deleted = tag_deleted
        self.skip_when_idle = skip_when_idle

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_arguments()
        try:
            self.exact_tag_copy = check_bool(self.exact_tag_copy, "exact_tag_copy")
        except SettingsError as error:
            raise InvalidArgumentsError(str(error)) from None
        self.label_partition(context)
        self._deleted_keys: DeletedKeys | None | object = UNREAD  # read at the first vanished key
        idle_steps = steps_to_skip(self, self.skip_when_idle)
        # Without chunk_copies one chunk holds everything: the manifest of a diff without chunks.
        chunk_keys = int(self.copy_chunk_keys or copy_chunk_keys())
        self.copy_chunk_keys = chunk_keys if self.chunk_copies else ALL_KEYS
        source = self.hook_for(self.source_aws_conn_id or self.aws_conn_id)
        backup = self.hook
        run_uri = self.run_uri(context, self.backup_bucket)
        copy_uri, vanished_uri = self.manifest_uri(run_uri, "copy"), self.manifest_uri(run_uri, "vanished")
        sort = bool((self.partition or {}).get(UNORDERED_LISTING))
        if sort:
            self.log.info(
                "%s: the plan found the endpoint listing out of S3's byte order: listing the "
                "partition whole and sorting both listings (bounded in memory, spilled to disk)",
                self.label,
            )
            joined = self._join(source, backup, copy_uri, vanished_uri, sort=True)
        else:
            try:
                joined = self._join(source, backup, copy_uri, vanished_uri, sort=False)
            except ListingNotSortedError as error:
                # Nothing of the failed walk is kept: writing_manifest uploads only on success.
                self.log.warning(
                    "%s: %s: the endpoint does not list keys in S3's UTF-8 byte order; listing the "
                    "partition again and sorting both listings (bounded in memory, spilled to disk)",
                    self.label,
                    error,
                )
                joined, sort = self._join(source, backup, copy_uri, vanished_uri, sort=True), True
        counts, archived_keys, sampler, to_copy, vanished = joined
        result = self._result(counts, to_copy, vanished, copy_uri, vanished_uri)
        result |= {"archived_keys": archived_keys, SORTED_LOCALLY: sort}
        if self.inventory_snapshot is not None:
            result |= {"listing_source": "inventory", "newer_than_inventory": counts["newer_than_inventory"]}
            if counts["newer_than_inventory"]:
                self.log.info(
                    "%s: %d backup object(s) the inventory does not list were written after its "
                    "snapshot (%s): left as they are, not tagged deleted",
                    self.label,
                    counts["newer_than_inventory"],
                    self.partition["inventory_snapshot"],
                )
        if archived_keys:
            self.log.warning(
                "%s: %d archived source object(s) not copied (archived_source=%s: %d skipped, "
                "%d restore(s) requested, %d in progress), e.g. %s",
                self.label,
                result["skipped_archived"],
                self.archived_source,
                counts["archived_skipped"],
                counts["archived_requested"],
                counts["archived_in_progress"],
                archived_keys[:5],
            )
        if not self.dry_run:
            samples_uri = self.manifest_uri(run_uri, "samples").replace(".jsonl.gz", ".json")
            backup.put_json(samples_uri, json.dumps(sampler.samples(), ensure_ascii=False).encode())
            result["samples_uri"] = samples_uri
        self.log.info(
            "%s: %d source, %d backup objects; %d new, %d changed (%s to copy), %d unchanged, "
            "%d vanished (%d of them marked deleted before)%s",
            self.label,
            result["source_objects"],
            result["backup_objects"],
            result["new"],
            result["changed"],
            format_bytes(result["bytes_to_copy"]),
            result["unchanged"],
            result["vanished"],
            result["marked_deleted"],
            " (dry run: nothing written)" if self.dry_run else "",
        )
        self._skip_idle(context, result, idle_steps)  # ends the task when it skips them
        self.push_output_keys(context["ti"], result)
        return result

    def _skip_idle(self, context: Any, result: dict[str, Any], idle_steps: list[str]) -> None:
        """With nothing to copy and nothing to tag, end with ``idle_steps`` skipped; with only
        nothing to tag, the tag steps among them (``S3TagDeletedOperator``), so a partition that
        copies but found nothing vanished (every partition of a first backup) starts one task
        less. A copy step is never skipped alone: its tag step waits for it."""
        if not idle_steps:
            return
        tagging = bool(self.tag_deleted)
        if backup_partition_idle(result, tag_deleted=tagging):
            why = "dry run" if self.dry_run else "nothing to copy or tag"
            skip_idle_steps(self, context, result, idle_steps, f"{self.label}: {why}")
        elif nothing_to_tag(result, tag_deleted=tagging):
            tag_steps = [t for t in idle_steps if isinstance(self.dag.get_task(t), S3TagDeletedOperator)]
            why = (
                "tag_deleted is off"
                if not tagging
                else "every vanished object marked deleted before"
                if result["vanished"]
                else "nothing vanished"
            )
            skip_idle_steps(self, context, result, tag_steps, f"{self.label}: {why}")

    def _listings(
        self, source: S3BucketHook, backup: S3BucketHook, *, sort: bool
    ) -> tuple[Iterator[ObjectInfo], ...]:
        """Both listings of the partition, fetched concurrently: as listed, checked to be in
        order; or, with ``sort``, listed whole in any order and sorted (``core.external_sort``).
        A partition planned from an inventory report has its source side in ``source_manifest``
        (sorted by the plan): the source is not listed."""
        sides = ((source, self.source_bucket, "source"), (backup, self.backup_bucket, "backup"))
        if sort:
            listings = tuple(
                prefetch(sorted_objects(hook.iter_objects_any_order(bucket, self.prefix, self.key_range)))
                for hook, bucket, _ in sides[self.inventory_snapshot is not None :]
            )
        else:
            listings = tuple(
                check_sorted(self.list_in_key_order(hook, bucket, self.prefix), what)
                for hook, bucket, what in sides[self.inventory_snapshot is not None :]
            )
        if self.inventory_snapshot is None:
            return listings
        return check_sorted(prefetch(self._inventory_listing(backup)), "source"), *listings

    @property
    def inventory_snapshot(self) -> float | None:
        """Seconds since the epoch of the inventory snapshot the partition was planned from, or None."""
        snapshot = (self.partition or {}).get("inventory_snapshot")
        return epoch_seconds(snapshot) if snapshot else None

    def _inventory_listing(self, backup: S3BucketHook) -> Iterator[ObjectInfo]:
        """The partition's source objects as the inventory listed them (``source_manifest``,
        in the backup bucket's run folder), each marked as such for copy_batch."""
        uri = self.partition.get("source_manifest") if self.partition else ""
        for record in read_manifest(backup, uri) if uri else ():
            obj = ObjectInfo.from_record(record)
            obj.extra[FROM_INVENTORY] = True
            yield obj

    def _after_snapshot(self, entries: Iterable[DiffEntry], counts: Counter[str]) -> Iterator[DiffEntry]:
        """The entries without the backup objects missing from the inventory whose copy was
        written at or after its snapshot: their source may be newer than the report (written
        since, by the continuous backup, say), so they are left as they are and counted."""
        snapshot = self.inventory_snapshot
        assert snapshot is not None
        for entry in entries:
            action, _, dst = entry
            if action is Action.VANISHED and dst is not None and dst.last_modified >= snapshot:
                counts["newer_than_inventory"] += 1
                continue
            yield entry

    def _join(
        self, source: S3BucketHook, backup: S3BucketHook, copy_uri: str, vanished_uri: str, *, sort: bool
    ) -> tuple[
        Counter[str], list[str], KeySampler, ChunkedManifestWriter | _NoWrite, ManifestWriter | _NoWrite
    ]:
        """Merge-join the partition's listings into the copy and vanished manifests."""
        source_listing, backup_listing = self._listings(source, backup, sort=sort)
        counts: Counter[str] = Counter()
        archived_keys: list[str] = []
        sampler = KeySampler()
        with ExitStack() as stack:
            if self.dry_run:
                to_copy, vanished = _NoWrite(), _NoWrite()
            else:
                to_copy = stack.enter_context(
                    writing_chunks(
                        backup,
                        lambda number: chunk_uri(copy_uri, number),
                        self.copy_chunk_keys,
                        self.key_range.start_after,
                        self.key_range.end,
                    )
                )
                vanished = stack.enter_context(writing_manifest(backup, vanished_uri))
            entries: Iterable[DiffEntry] = merge_listings(
                source_listing, backup_listing, Compare(self.compare)
            )
            if Compare(self.compare) is Compare.CHECKSUM:
                entries = self._checked(entries, source, backup, counts)
            if self.inventory_snapshot is not None:
                entries = self._after_snapshot(entries, counts)
            for action, src, dst in entries:
                counts[action] += 1
                if src is not None:
                    sampler.add(src.key)
                    counts["source_bytes"] += src.size
                if (action is Action.NEW or action is Action.CHANGED) and src.is_archived:
                    outcome = self._archived(src)
                    if outcome != "ready":
                        counts[f"archived_{outcome}"] += 1
                        if len(archived_keys) < MAX_NAMED:
                            archived_keys.append(src.key)
                        continue
                if action is Action.NEW or action is Action.CHANGED:
                    counts["bytes_to_copy"] += src.size
                    if action is Action.CHANGED and not self.exact_tag_copy:
                        src.extra[REPLACE_TAGS] = True
                    to_copy.write(src.to_record())
                    self._example(action, src.key, counts)
                elif action is Action.VANISHED:
                    if self._marked_deleted(backup, dst):
                        counts["marked_deleted"] += 1
                        dst.extra[MARKED_DELETED] = True
                    vanished.write(dst.to_record())
                    self._example(action, dst.key, counts)
        return counts, archived_keys, sampler, to_copy, vanished

    def _marked_deleted(self, backup: S3BucketHook, obj: ObjectInfo) -> bool:
        """Whether the vanished backup object ``obj`` already carries the deleted marker by the
        backup's deleted-key index (``hooks.deleted_index``): then ``tag_deleted`` sends nothing
        for it, and a run over a bucket with a deletion history reads no tags. The index is read
        at the first vanished object (none: no request), once per partition."""
        if not self.tag_deleted:
            return False
        if self._deleted_keys is UNREAD:
            read = read_deleted_keys(
                backup, self.backup_bucket, self.prefix, self.key_range, source_bucket=self.source_bucket
            )
            self._deleted_keys = read
            self.log.info(
                "%s: %s",
                self.label,
                f"deleted-key index {read.index_key}: {len(read.keys)} key(s) in range marked deleted"
                if read is not None
                else "no usable deleted-key index: every vanished object's tags are read",
            )
        found = self._deleted_keys
        return isinstance(found, DeletedKeys) and found.marked(obj.key, obj.last_modified)

    def _checked(
        self, entries: Iterable[DiffEntry], source: S3BucketHook, backup: S3BucketHook, counts: Counter[str]
    ) -> Iterator[DiffEntry]:
        """The entries with each CHECK judged CHANGED or UNCHANGED by the two objects' checksums
        (HeadObject with checksum mode on both sides; ``core.fingerprints.content_differs``),
        in their order. Only CHECKed keys are read, on ``threads`` threads, each request within
        the hooks' request slots. Where the heads cannot tell (or cannot be read: an SSE-C
        source, a key gone since it was listed), size and time have already said unchanged."""
        lock = threading.Lock()
        unknown: list[str] = []

        def judge(entry: DiffEntry) -> DiffEntry:
            _, src, dst = entry
            assert src is not None and dst is not None
            try:
                theirs = source.head(self.source_bucket, src.key, checksums=True)
                ours = backup.head(self.backup_bucket, dst.key, checksums=True)
                differs = content_differs(theirs, ours)
            except ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status not in (400, 403, 404):
                    raise
                self.log.debug("Checksums of %r unread: %s", src.key, error_code(error))
                differs = None
            with lock:
                counts["content_checked"] += 1
                if differs is None:
                    counts["content_unknown"] += 1
                    if len(unknown) < 5:
                        unknown.append(src.key)
            return (Action.CHANGED if differs else Action.UNCHANGED), src, dst

        yield from map_where_ordered(judge, entries, _to_check, workers=self.threads, window=CHECK_WINDOW)
        if unknown:
            self.log.warning(
                "%s: %d key(s) whose content could not be compared by checksum or ETag (size and "
                "time decided), e.g. %s",
                self.label,
                counts["content_unknown"],
                unknown,
            )

    def _archived(self, obj: ObjectInfo) -> str:
        """``skipped``, or with ``archived_source="restore"`` the restore's state in the source
        (``ready``: copy it now; ``requested``, ``in_progress``: a later run copies it)."""
        if self.archived_source != "restore" or self.dry_run:
            return "skipped"
        from s3br_provider.hooks.glacier_restore import GlacierRestoreHook

        hook = self.hook_for(self.source_aws_conn_id or self.aws_conn_id, GlacierRestoreHook)
        return hook.ensure_restore(self.source_bucket, obj, **ARCHIVED_SOURCE_RESTORE)

    def _example(self, action: Action, key: str, counts: Counter[str]) -> None:
        if self.dry_run and counts[action] <= DRY_RUN_EXAMPLES:
            self.log.info("dry run: would %s %r", "tag" if action is Action.VANISHED else "copy", key)

    def _result(
        self,
        counts: Counter[str],
        to_copy: ChunkedManifestWriter | _NoWrite,
        vanished: ManifestWriter | _NoWrite,
        copy_uri: str,
        vanished_uri: str,
    ) -> dict[str, Any]:
        new, changed = counts[Action.NEW], counts[Action.CHANGED]
        skipped_archived = sum(counts[f"archived_{o}"] for o in ("skipped", "requested", "in_progress"))
        unchanged, gone = counts[Action.UNCHANGED], counts[Action.VANISHED]
        written = not self.dry_run
        first, *more = to_copy.chunks or [None]
        return {
            "index": self.index,
            "label": self.key_range.label,
            "source_objects": new + changed + unchanged,
            "backup_objects": changed + unchanged + gone,
            "new": new,
            "changed": changed,
            "unchanged": unchanged,
            "vanished": gone,
            "marked_deleted": counts["marked_deleted"],
            "to_tag": gone - counts["marked_deleted"],
            "to_copy": new + changed - skipped_archived,
            "skipped_archived": skipped_archived,
            "archive_restores_requested": counts["archived_requested"],
            "bytes_to_copy": counts["bytes_to_copy"],
            "content_checked": counts["content_checked"],
            "content_unknown": counts["content_unknown"],
            "source_bytes": counts["source_bytes"],
            # "" not None: Airflow reads a stored None XCom as missing, failing a template.
            "copy_manifest": copy_uri if written and to_copy.count else "",
            "vanished_manifest": vanished_uri if written and vanished.count else "",
            # The partition's copy_batch copies the first chunk, over its range; the others
            # are gather_chunks' (sorted, each its key range).
            "copy_manifest_objects": first.objects if first is not None else 0,
            "copy_partition": first_chunk_partition(self.partition or WHOLE_KEY_SPACE, to_copy.chunks),
            "copy_chunks": [chunk.to_dict() for chunk in more],
        }


def _to_check(entry: DiffEntry) -> bool:
    return entry[0] is Action.CHECK
