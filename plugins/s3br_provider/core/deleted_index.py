"""The deleted-key index: which backup keys carry ``Deleted=True``, known without a tag read each.

A backup run's diff writes, per partition, the backup keys its source lacks (the vanished
manifest), and ``tag_deleted`` marks every one of them (or finds it marked). After a run that
tagged them all, the vanished manifests together name exactly the keys marked deleted under the
run's prefix. The backup's report then writes an index of those manifests into the backup
bucket, and a restore's ``select`` reads it instead of sending a GetObjectTagging per object: a
restore of N live objects costs N copies and O(N/1000) other requests instead of 2N.

The index is trusted only where it cannot be wrong:
- for objects not modified since it was written (a later copy may have cleared a marker: those
  are read as before);
- while nothing else has marked objects deleted since: the continuous backup leaves a marker
  under ``TAGGED_PREFIX`` when it does, which retires every older index until the next backup
  run writes a new one;
- for restores under the index's prefix, without ``as_of`` (tags of older versions are read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from s3br_provider.core.keys import RESERVED_PREFIX
from s3br_provider.core.partitions import KeyRange

INDEX_PREFIX = f"{RESERVED_PREFIX}index/deleted/"
TAGGED_PREFIX = f"{INDEX_PREFIX}tagged/"
_INDEX_NAME = "prefix="
FORMAT = 1


def index_key(prefix: str) -> str:
    """Where the index of the backup of ``prefix`` lives in the backup bucket."""
    return f"{INDEX_PREFIX}{_INDEX_NAME}{quote(prefix, safe='')}.json"


def tagged_marker_key(name: str) -> str:
    """A marker that objects were tagged deleted outside a backup run (``name``: that run's id)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{TAGGED_PREFIX}{safe}.json"


def build_index(
    *, prefix: str, source_bucket: str, dag_id: str, run_id: str, partitions: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """The index of one backup run: each partition's key range and vanished manifest."""
    return {
        "format": FORMAT,
        "prefix": prefix,
        "source_bucket": source_bucket,
        "dag_id": dag_id,
        "run_id": run_id,
        "partitions": [
            {
                "start_after": part.get("start_after"),
                "end": part.get("end"),
                "vanished_manifest": part.get("vanished_manifest") or "",
                "vanished": int(part.get("vanished") or 0),
            }
            for part in partitions
        ],
    }


def choose_index(listing: Iterable[tuple[str, float]], restore_prefix: str) -> tuple[str, float] | None:
    """The usable index for a restore under ``restore_prefix``, from a listing of
    ``INDEX_PREFIX`` as ``(key, last_modified)``: the newest index whose prefix the restore's
    starts with, unless a tagged-deleted marker is as new or newer. None: read the tags."""
    best: tuple[str, float] | None = None
    newest_marker = float("-inf")
    for key, modified in listing:
        if key.startswith(TAGGED_PREFIX):
            newest_marker = max(newest_marker, modified)
            continue
        name = key.removeprefix(INDEX_PREFIX)
        if not (name.startswith(_INDEX_NAME) and name.endswith(".json")):
            continue
        if not restore_prefix.startswith(_unquoted(name)):
            continue
        if best is None or modified > best[1]:
            best = (key, modified)
    if best is None or newest_marker >= best[1]:
        return None
    return best


def _unquoted(name: str) -> str:
    return unquote(name.removeprefix(_INDEX_NAME).removesuffix(".json"))


def manifests_in_range(index: Mapping[str, Any], key_range: KeyRange) -> list[str] | None:
    """The vanished manifests of the index's partitions that overlap ``key_range`` (``""``s
    left out); None if the index is of an unknown format (then read the tags)."""
    if index.get("format") != FORMAT:
        return None
    uris = []
    for part in index.get("partitions", []):
        low, high = part.get("start_after"), part.get("end")
        below = key_range.end is not None and low is not None and low >= key_range.end
        above = key_range.start_after is not None and high is not None and high <= key_range.start_after
        if not (below or above) and part.get("vanished_manifest"):
            uris.append(part["vanished_manifest"])
    return uris
