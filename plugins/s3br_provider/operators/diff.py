"""diff[p]: walk the source and backup listings of one partition side by side."""

from __future__ import annotations

import json
from collections import Counter
from contextlib import ExitStack
from typing import Any

from s3br_provider.core.diff import Action, Compare, check_sorted, merge_listings
from s3br_provider.core.manifest import ManifestWriter, writing_manifest
from s3br_provider.core.pool import prefetch
from s3br_provider.core.progress import format_bytes
from s3br_provider.core.sampler import KeySampler
from s3br_provider.operators.base import S3brPartitionOperator
from s3br_provider.operators.copy_batch import REPLACE_TAGS

DRY_RUN_EXAMPLES = 10


class _NoWrite:
    """Manifest writer of a dry run: counts, writes nothing."""

    count = 0

    def write(self, record: dict[str, Any]) -> None:
        self.count += 1


class S3DiffPartitionOperator(S3brPartitionOperator):
    """Classify every key of a partition as new, changed, unchanged or vanished.

    Both buckets are listed over the same key range, concurrently, and merge-joined in
    O(1) memory. Keys to copy and keys that vanished go to gzip JSON Lines manifests in the
    run folder; only counts and manifest URIs are returned (XCom).
    """

    def execute(self, context: Any) -> dict[str, Any]:
        self.label_partition(context)
        s = self.settings
        source = self.hook(s["source_aws_conn_id"])
        backup = self.hook(s["backup_aws_conn_id"])
        source_listing = check_sorted(
            prefetch(source.iter_objects(s["source_bucket"], s["prefix"], self.key_range)), "source"
        )
        backup_listing = check_sorted(
            prefetch(backup.iter_objects(s["backup_bucket"], s["prefix"], self.key_range)), "backup"
        )
        copy_uri = f"{s['run_uri']}/copy/p{self.index:05d}.jsonl.gz"
        vanished_uri = f"{s['run_uri']}/vanished/p{self.index:05d}.jsonl.gz"
        counts: Counter[str] = Counter()
        sampler = KeySampler()
        with ExitStack() as stack:
            if s["dry_run"]:
                to_copy, vanished = _NoWrite(), _NoWrite()
            else:
                to_copy = stack.enter_context(writing_manifest(backup, copy_uri))
                vanished = stack.enter_context(writing_manifest(backup, vanished_uri))
            for action, src, dst in merge_listings(source_listing, backup_listing, Compare(s["compare"])):
                counts[action] += 1
                if src is not None:
                    sampler.add(src.key)
                if action is Action.NEW or action is Action.CHANGED:
                    counts["bytes_to_copy"] += src.size
                    if action is Action.CHANGED:
                        src.extra[REPLACE_TAGS] = True
                    to_copy.write(src.to_record())
                    self._example(s, action, src.key, counts)
                elif action is Action.VANISHED:
                    vanished.write(dst.to_record())
                    self._example(s, action, dst.key, counts)
        result = self._result(counts, to_copy, vanished, copy_uri, vanished_uri)
        if not s["dry_run"]:
            samples_uri = f"{s['run_uri']}/samples/p{self.index:05d}.json"
            backup.put_json(samples_uri, json.dumps(sampler.samples(), ensure_ascii=False).encode())
            result["samples_uri"] = samples_uri
        self.log.info(
            "p%d %s: %d source, %d backup objects; %d new, %d changed (%s to copy), "
            "%d unchanged, %d vanished%s",
            self.index,
            self.key_range.label,
            result["source_objects"],
            result["backup_objects"],
            result["new"],
            result["changed"],
            format_bytes(result["bytes_to_copy"]),
            result["unchanged"],
            result["vanished"],
            " (dry run: nothing written)" if s["dry_run"] else "",
        )
        return result

    def _example(self, s: dict[str, Any], action: Action, key: str, counts: Counter[str]) -> None:
        if s["dry_run"] and counts[action] <= DRY_RUN_EXAMPLES:
            self.log.info("dry run: would %s %r", "tag" if action is Action.VANISHED else "copy", key)

    def _result(
        self,
        counts: Counter[str],
        to_copy: ManifestWriter | _NoWrite,
        vanished: ManifestWriter | _NoWrite,
        copy_uri: str,
        vanished_uri: str,
    ) -> dict[str, Any]:
        new, changed = counts[Action.NEW], counts[Action.CHANGED]
        unchanged, gone = counts[Action.UNCHANGED], counts[Action.VANISHED]
        written = not self.settings["dry_run"]
        return {
            "index": self.index,
            "label": self.key_range.label,
            "source_objects": new + changed + unchanged,
            "backup_objects": changed + unchanged + gone,
            "new": new,
            "changed": changed,
            "unchanged": unchanged,
            "vanished": gone,
            "bytes_to_copy": counts["bytes_to_copy"],
            "copy_manifest": copy_uri if written and to_copy.count else None,
            "vanished_manifest": vanished_uri if written and vanished.count else None,
        }
