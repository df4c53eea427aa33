"""Read the backup's deleted-key index (``core.deleted_index``) for one partition's key range.

Restores read it to leave deleted objects out without a GetObjectTagging each; backup diffs read
it to leave objects already marked deleted out of ``tag_deleted``'s work, so a run over a
bucket with a deletion history reads no tags at all.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NamedTuple

from s3br_provider.core.deleted_index import INDEX_PREFIX, choose_index, manifests_in_range
from s3br_provider.core.manifest import read_manifest

if TYPE_CHECKING:
    from s3br_provider.core.partitions import KeyRange
    from s3br_provider.hooks.s3_bucket import S3BucketHook


class DeletedKeys(NamedTuple):
    """The keys of a key range that the index names deleted, and the index itself."""

    keys: set[str]
    written_at: float
    """When the index was written (its LastModified, seconds since the epoch): it speaks only
    for objects last modified strictly before (LastModified has whole seconds)."""
    index_key: str

    def marked(self, key: str, last_modified: float) -> bool:
        """Whether the object ``key``, last modified at ``last_modified``, carries the marker
        by the index: named by it and not written since."""
        return last_modified < self.written_at and key in self.keys


def read_deleted_keys(
    backup: S3BucketHook,
    bucket: str,
    prefix: str,
    key_range: KeyRange,
    *,
    source_bucket: str | None = None,
) -> DeletedKeys | None:
    """The deleted keys in ``key_range`` by the newest usable index for ``prefix`` in ``bucket``;
    None where no index can be trusted (none written, retired by a tagged-deleted marker, of an
    unknown format, or, with ``source_bucket``, written by the backup of another source).

    Costs one listing of ``INDEX_PREFIX``, one GET and one per overlapping vanished manifest."""
    pages = backup.conn.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=INDEX_PREFIX)
    listing = [(o["Key"], o["LastModified"].timestamp()) for page in pages for o in page.get("Contents", [])]
    chosen = choose_index(listing, prefix)
    body = backup.get_json_bytes(f"s3://{bucket}/{chosen[0]}") if chosen else None
    index = json.loads(body) if body else None
    if chosen is None or index is None:
        return None
    if source_bucket is not None and index.get("source_bucket") != source_bucket:
        return None
    uris = manifests_in_range(index, key_range)
    if uris is None:
        return None
    keys = {
        record["k"]
        for uri in uris
        for record in read_manifest(backup, uri)
        if key_range.contains(record["k"])
    }
    return DeletedKeys(keys, chosen[1], chosen[0])
