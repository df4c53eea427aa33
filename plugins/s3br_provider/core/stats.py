"""Key-space statistics kept between runs, so partitions can be sized by work."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from s3br_provider.core.keys import RESERVED_PREFIX

STATS_PREFIX = f"{RESERVED_PREFIX}stats/"
MAX_SAMPLES = 4096


def stats_uri(backup_bucket: str, prefix: str) -> str:
    """Return where the statistics of a prefix of a backup bucket are kept."""
    digest = hashlib.sha256(prefix.encode("utf-8")).hexdigest()[:16]
    return f"s3://{backup_bucket}/{STATS_PREFIX}{digest}.json"


def merge_samples(parts: Iterable[list[tuple[str, int]]], limit: int = MAX_SAMPLES) -> list[tuple[str, int]]:
    """Concatenate per-partition samples (in partition order) and thin them to ``limit``.

    Thinning keeps every n-th sample and adds the weights it drops onto the kept ones, so the
    total weight still equals the number of keys.
    """
    merged = [(key, int(weight)) for part in parts for key, weight in part]
    if len(merged) <= limit:
        return merged
    step = -(-len(merged) // limit)
    thinned: list[tuple[str, int]] = []
    for start in range(0, len(merged), step):
        chunk = merged[start : start + step]
        thinned.append((chunk[-1][0], sum(weight for _, weight in chunk)))
    return thinned


def measured_copy_fraction(rows: Iterable[dict[str, Any]]) -> float | None:
    """Fraction of source keys an incremental run had to copy (new or changed), from the
    per-partition diff results; None for a run that filled an empty backup (all new) or
    listed nothing, which says nothing about how fast the source changes."""
    diffs = [row.get("diff") or {} for row in rows]
    source = sum(d.get("source_objects", 0) for d in diffs)
    backup = sum(d.get("backup_objects", 0) for d in diffs)
    if not source or not backup:
        return None
    return sum(d.get("new", 0) + d.get("changed", 0) for d in diffs) / source


def encode_stats(
    prefix: str,
    samples: list[tuple[str, int]],
    copy_fraction: float | None = None,
    *,
    unordered_listing: bool = False,
) -> bytes:
    """Serialize a run's key samples and, for an incremental run, the fraction of keys it
    copied; ``unordered_listing``: the endpoint listed out of S3's byte order (later plans make
    one partition)."""
    data: dict[str, Any] = {"prefix": prefix, "samples": samples}
    if unordered_listing:
        data["unordered_listing"] = True
    if copy_fraction is not None:
        data["copy_fraction"] = round(min(1.0, max(0.0, copy_fraction)), 6)
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _load(body: bytes | None, prefix: str) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("prefix") != prefix:
        return None
    return data


def decode_stats(body: bytes | None, prefix: str) -> list[tuple[str, int]]:
    """Return the samples of a stats file, or [] when absent, unreadable or for another prefix."""
    data = _load(body, prefix)
    if data is None:
        return []
    try:
        return [(str(key), int(weight)) for key, weight in data.get("samples", [])]
    except (TypeError, ValueError):
        return []


def decode_copy_fraction(body: bytes | None, prefix: str) -> float | None:
    """Return the fraction of keys the last incremental run copied, or None if not recorded."""
    data = _load(body, prefix)
    value = None if data is None else data.get("copy_fraction")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return None
    return float(value)


def decode_unordered_listing(body: bytes | None, prefix: str) -> bool:
    """Return whether an earlier run found the endpoint listing out of S3's byte order."""
    data = _load(body, prefix)
    return bool(data and data.get("unordered_listing"))
