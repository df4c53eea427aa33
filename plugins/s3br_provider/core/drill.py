"""Restore drills: a seeded random sample of a backup, the checks of each restored object, the
drill prefix's expiration rule, and the estimate of a full restore's time."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from s3br_provider.core.fingerprints import content_differs
from s3br_provider.core.objects import ARCHIVE_CLASSES
from s3br_provider.core.retrieval import expected_hours
from s3br_provider.core.tags import strip_marker

DRILL_PREFIX = "s3br-drill/"
"""Where a drill writes in its drill bucket: ``s3br-drill/<run_id>/<key>``."""
EXPIRATION_RULE_ID = "s3br-drill-expiration"
ESTIMATE_TIER = "Standard"
"""The retrieval tier the full-restore estimate assumes for archived objects (s3_restore's default)."""


def drill_key(run_id: str, key: str) -> str:
    """The key a drill restores ``key`` to."""
    return f"{DRILL_PREFIX}{run_id}/{key}"


def priority(seed: str, key: str) -> float:
    """A key's place in the drill's random order: uniform in [0, 1), the same for the same seed
    (the run id) wherever it is computed, so partitions sample independently and agree."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class BottomK:
    """The ``k`` items of smallest priority seen (a bottom-k sample): memory O(k) however long
    the stream. The bottom-k of each partition, merged, is the bottom-k of the whole backup: a
    uniform random sample without replacement."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self._heap: list[tuple[float, str, Any]] = []  # (-priority, key, item): the largest on top

    def add(self, rank: float, key: str, item: Any) -> None:
        entry = (-rank, key, item)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[tuple[float, Any]]:
        """``(priority, item)`` pairs, smallest priority first."""
        return [(-rank, item) for rank, _, item in sorted(self._heap, reverse=True)]


def smallest(candidates: Iterable[tuple[float, Any]], k: int) -> list[Any]:
    """The ``k`` items of smallest priority among ``(priority, item)`` pairs, in that order."""
    return [item for _, item in heapq.nsmallest(k, candidates, key=lambda pair: pair[0])]


# The drill bucket's expiration rule ------------------------------------------------------------


def _rule_prefix(rule: Mapping[str, Any]) -> str | None:
    """The prefix every object of the rule's scope shares, or None when the rule filters by
    more than a prefix (tags, sizes): then it does not reach every drill object."""
    if "Prefix" in rule:  # the legacy form
        return rule["Prefix"] or ""
    scope = rule.get("Filter") or {}
    if set(scope) - {"Prefix"}:
        return None
    return scope.get("Prefix", "")


def expiration_covers(rules: Iterable[Mapping[str, Any]], prefix: str = DRILL_PREFIX) -> bool:
    """Whether an enabled rule expires every object under ``prefix`` (after some days or at a
    date), so what drills write goes away without a drill deleting anything."""
    for rule in rules:
        scope = _rule_prefix(rule)
        expiration = rule.get("Expiration") or {}
        if (
            rule.get("Status") == "Enabled"
            and scope is not None
            and prefix.startswith(scope)
            and ("Days" in expiration or "Date" in expiration)
        ):
            return True
    return False


def expiration_rule(days: int, prefix: str = DRILL_PREFIX) -> dict[str, Any]:
    """The lifecycle rule validate adds when asked: objects under ``prefix`` expire after ``days``."""
    return {
        "ID": EXPIRATION_RULE_ID,
        "Filter": {"Prefix": prefix},
        "Status": "Enabled",
        "Expiration": {"Days": days},
    }


# Checks of a restored object -------------------------------------------------------------------


def differences(
    expected: Mapping[str, Any],
    got: Mapping[str, Any],
    expected_tags: dict[str, str],
    got_tags: dict[str, str],
) -> list[str]:
    """What a restored object (``got``: its HeadObject with checksums) does not share with the
    object it should equal: bytes (size, then the first full-object checksum both carry, else
    MD5 ETags), Content-Type, user metadata, tags (the deleted marker apart). An empty list:
    equal. ``"bytes unknown"`` when no checksum or MD5 can tell (the caller compares bodies)."""
    found = []
    if expected.get("ContentLength") != got.get("ContentLength"):
        found.append(f"size {got.get('ContentLength')} != {expected.get('ContentLength')}")
    else:
        differs = content_differs(expected, got)
        if differs is None:
            found.append("bytes unknown")
        elif differs:
            found.append("bytes differ")
    if (expected.get("ContentType") or "") != (got.get("ContentType") or ""):
        found.append(f"Content-Type {got.get('ContentType')!r} != {expected.get('ContentType')!r}")
    if (expected.get("Metadata") or {}) != (got.get("Metadata") or {}):
        found.append("metadata differs")
    if strip_marker(expected_tags) != strip_marker(got_tags):
        found.append("tags differ")
    return found


def unchanged_since_backup(source: Mapping[str, Any] | None, backup: Mapping[str, Any]) -> bool:
    """Whether the source object is as it was backed up: present and not modified after the
    backup copy was written. (Then the two must be equal; a backup copy changed in place since,
    whatever its size, differs.)"""
    return source is not None and source["LastModified"] <= backup["LastModified"]


# The estimate of a full restore ----------------------------------------------------------------


def full_restore_estimate(
    classes: Mapping[str, Mapping[str, int]], *, seconds: float, objects: int, size: int
) -> dict[str, Any]:
    """How long restoring the whole backup would take at the drill's measured pace: the larger
    of bytes at its bytes per second and objects at its objects per second, plus the longest
    typical retrieval time (tier ``Standard``) of the archived classes the backup holds."""
    total_objects = sum(c["objects"] for c in classes.values())
    total_bytes = sum(c["bytes"] for c in classes.values())
    bytes_per_second = size / seconds if seconds > 0 else 0.0
    objects_per_second = objects / seconds if seconds > 0 else 0.0
    copy_seconds = max(
        total_bytes / bytes_per_second if bytes_per_second else 0.0,
        total_objects / objects_per_second if objects_per_second else 0.0,
    )
    archived = [name for name, held in classes.items() if name in ARCHIVE_CLASSES and held["objects"]]
    retrieval_hours = max(
        ((expected_hours(name, ESTIMATE_TIER) or (0.0, 0.0))[1] for name in archived), default=0.0
    )
    return {
        "bytes_per_second": round(bytes_per_second, 1),
        "objects_per_second": round(objects_per_second, 2),
        "backup_objects": total_objects,
        "backup_bytes": total_bytes,
        "copy_seconds": round(copy_seconds, 1),
        "retrieval_seconds": round(retrieval_hours * 3600, 1),
        "full_restore_seconds": round(copy_seconds + retrieval_hours * 3600, 1),
        "retrieval_tier": ESTIMATE_TIER,
    }
