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


def encode_stats(prefix: str, samples: list[tuple[str, int]]) -> bytes:
    return json.dumps({"prefix": prefix, "samples": samples}, ensure_ascii=False).encode("utf-8")


def decode_stats(body: bytes | None, prefix: str) -> list[tuple[str, int]]:
    """Return the samples of a stats file, or [] when absent, unreadable or for another prefix."""
    if not body:
        return []
    try:
        data: dict[str, Any] = json.loads(body)
    except ValueError:
        return []
    if not isinstance(data, dict) or data.get("prefix") != prefix:
        return []
    try:
        return [(str(key), int(weight)) for key, weight in data.get("samples", [])]
    except (TypeError, ValueError):
        return []
