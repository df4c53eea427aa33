"""moto's S3 server holding buckets of a million objects: seeded in memory, listed by an index.

The suite's moto server (``tests.support.moto_aws``: moto made to answer as AWS documents) with
two additions, for ``bench/inventory_noop.py`` only:

- **Seeding in memory.** ``--bucket NAME=N`` creates the bucket and puts its N objects
  (:func:`key_of`, every body ``--object-size`` bytes) straight into moto's backend with
  ``S3Backend.put_object`` before the server listens: 2M PutObject requests over HTTP take
  about half an hour on moto, this 1.5 to 6 minutes for 2.2M objects (idle or loaded machine).
  ``--bucket NAME=N@ISO`` gives the objects that LastModified (whole seconds, UTC) instead of
  the time of seeding.
- **A sorted listing index.** moto answers each ListObjectsV2 page by copying, filtering and
  sorting every key of the bucket (``S3Backend.list_objects`` and ``_get_results_from_token``):
  O(n log n) a page: 0.3 s for one page of a 100k-key bucket, 13 s at 1M keys (measured
  in-process, load average 8), nearly 4 hours for the 1,024 pages of a 1M run.
  AWS answers a page in milliseconds from an index; so does this server, for the seeded
  buckets: their key store keeps its names sorted (built once, on the first listing, then kept
  up to date by bisection as keys come and go) and a page without a ``Delimiter`` is cut from it
  with ``bisect``. The answer is moto's own: the same keys (delete markers left out, ``Prefix``,
  ``StartAfter`` and continuation tokens applied as moto does), truncated and given a
  continuation token by moto's ``_truncate_result``
  (``tests/integration/test_bench_moto_seeded.py`` compares both, before and after keys come
  and go). Listings
  with a ``Delimiter``, and every other bucket, are moto's unchanged. This is where the
  benchmark differs from plain moto, and the only place.

    python -m bench.moto_seeded -p PORT --bucket src=1000000@2026-12-01T18:00:00 --bucket dst=1000000

prints ``SEEDED <seconds>`` once the buckets are full, then serves like ``moto.server``.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moto import server as moto_server  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.s3.models import FakeDeleteMarker, S3Backend, s3_backends  # noqa: E402
from moto.s3.utils import _VersionedKeyStore  # noqa: E402

REGION = "us-east-1"


def key_of(index: int) -> str:
    """Hashed, so that no prefix is dense and the inventory's rows come out of key order."""
    return f"{hashlib.md5(str(index).encode()).hexdigest()[:8]}/obj-{index:09d}.dat"


def body_of(size: int) -> bytes:
    return (b"s3br inventory bench " * (size // 21 + 1))[:size]


class IndexedKeyStore(_VersionedKeyStore):
    """moto's key store with its names kept sorted, for :func:`list_objects_v2_indexed`."""

    def __init__(self) -> None:
        super().__init__()
        self._names: list[str] | None = None  # built on the first listing: seeding pays nothing
        self._lock = threading.Lock()

    def __setitem__(self, key: str, value: Any) -> Any:
        with self._lock:
            new = not dict.__contains__(self, key)
            super().__setitem__(key, value)
            if new and self._names is not None:
                bisect.insort(self._names, key)

    def setlist(self, key: Any, list_: Any) -> Any:
        with self._lock:
            new = not dict.__contains__(self, key)
            super().setlist(key, list_)
            if new and self._names is not None:
                bisect.insort(self._names, key)

    def pop(self, key: str) -> None:  # type: ignore[override]
        with self._lock:
            super().pop(key)
            self._forget(key)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            super().__delitem__(key)
            self._forget(key)

    def _forget(self, key: str) -> None:
        if self._names is not None:
            at = bisect.bisect_left(self._names, key)
            if at < len(self._names) and self._names[at] == key:
                del self._names[at]

    def page(self, prefix: str, after: str | None, count: int) -> list[Any]:
        """Up to ``count`` current objects (delete markers left out) whose names start with
        ``prefix`` and sort after ``after``, in moto's order (``str`` order of the names)."""
        with self._lock:
            if self._names is None or len(self._names) != len(self):  # a mutation not seen above
                self._names = sorted(dict.keys(self))
            names = self._names
            at = bisect.bisect_left(names, prefix) if prefix else 0
            if after is not None:
                at = max(at, bisect.bisect_right(names, after))
            found: list[Any] = []
            while at < len(names) and len(found) < count:
                name = names[at]
                if prefix and not name.startswith(prefix):
                    break
                current = dict.__getitem__(self, name)[-1]
                if not isinstance(current, FakeDeleteMarker):
                    found.append(current)
                at += 1
            return found


_list_objects_v2 = S3Backend.list_objects_v2


def list_objects_v2_indexed(
    self: S3Backend,
    bucket: Any,
    prefix: str | None,
    delimiter: str | None,
    continuation_token: str | None,
    start_after: str | None,
    max_keys: int,
) -> Any:
    """moto's ListObjectsV2 answer, cut from the bucket's sorted index (see the module docstring)."""
    keys = bucket.keys
    known = continuation_token is None or continuation_token in self._pagination_tokens
    if delimiter or not isinstance(keys, IndexedKeyStore) or not known:
        return _list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
    after = self._pagination_tokens[continuation_token] if continuation_token else start_after or None
    # One more than asked for: moto's own _truncate_result then decides truncation and token.
    found = keys.page(prefix or "", after, max_keys + 1)
    return self._truncate_result(found, max_keys)


def backend() -> S3Backend:
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def seed(name: str, count: int, size: int, modified: datetime | None) -> None:
    """Create bucket ``name`` with an indexed key store and ``count`` objects of ``size`` bytes."""
    s3 = backend()
    bucket = s3.create_bucket(name, REGION)
    bucket.keys = IndexedKeyStore()
    body = body_of(size)
    etag = hashlib.md5(body).hexdigest()
    for index in range(count):
        key = s3.put_object(name, key_of(index), body, etag=etag, disable_notification=True)
        if modified is not None:
            key.last_modified = modified


def parse_bucket(text: str) -> tuple[str, int, datetime | None]:
    """``NAME=N`` or ``NAME=N@ISO`` (a naive UTC time, as moto keeps them)."""
    name, _, rest = text.partition("=")
    count, _, when = rest.partition("@")
    modified = datetime.fromisoformat(when).replace(tzinfo=None, microsecond=0) if when else None
    return name, int(count), modified


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--bucket", action="append", default=[], help="NAME=N[@ISO]")
    parser.add_argument("--object-size", type=int, default=1024)
    args = parser.parse_args(argv)
    from tests.support import moto_aws  # the suite's patches: moto answering as AWS documents

    S3Backend.list_objects_v2 = list_objects_v2_indexed  # in this server only, not on import
    started = time.perf_counter()
    for text in args.bucket:
        name, count, modified = parse_bucket(text)
        seed(name, count, args.object_size, modified)
    print(f"SEEDED {time.perf_counter() - started:.1f}", flush=True)
    # Exit at once on SIGTERM: freeing millions of objects one by one takes longer than a minute.
    moto_server.signal_handler = lambda *_: os._exit(0)
    moto_aws.main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
