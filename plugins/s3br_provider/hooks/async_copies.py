"""Whole-object CopyObject requests sent on one event loop instead of one thread each.

A task copying thousands of small objects spends its CPU per request, not per byte. On 32
threads each copy wakes a thread, takes the GIL from the others and goes through urllib3's
connection pool: 0.73 ms of client CPU per copy through ``S3BucketHook.copy`` on ``bounded_map``,
against 0.51 ms for the same requests sent by aiohttp on one event loop with as many in flight
(4,000 copies of 1 KiB, SeaweedFS behind a 30 ms proxy, ``bench/copy_transport.py``,
bench/results/copy-transport-latency30ms.md). Under contention the gap grows: in the 100,000
object backup at 30 ms on 2 cores the tasks' CPU fell from 1.58 to 0.83 s per 1,000 copies
(bench/results/seaweedfs-latency30ms-n100000-async.md). On a small machine where the copier
shares the cores with the endpoint and Airflow, that CPU is the backup's speed. aiohttp is
Airflow's own HTTP client (the Amazon provider's aiobotocore and the HTTP provider run on it).

Only the common case goes this way: a single CopyObject that ``S3BucketHook.direct_copy``
can state up front (whole object, direct path, no tag read, no check after). Everything else,
and every request the loop did not see answered 200 without an error, goes to the caller's
``fallback`` (the hook's threaded ``copy``), which owns retries, checksum and region
fallbacks, conditional-write answers, directory markers and error reporting. An answer no
retry mends (AccessDenied, NoSuchKey, PreconditionFailed, a refused checksum) is handed over
as the fallback's first answer, so it is not sent twice; one that a retry may mend (throttling,
5xx, no answer) is sent again by the fallback with all its retries: one request more.

Each request here holds one of the hook's ``RequestSlots`` (taken before it is sent, given back
when it is answered), so the hook's ``max_in_flight`` still bounds every request of the task.
"""

from __future__ import annotations

import asyncio
import queue
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import aiohttp
from botocore.exceptions import ClientError
from botocore.httpsession import get_cert_path
from yarl import URL

from s3br_provider.core.pool import RequestSlots
from s3br_provider.core.s3_errors import is_retryable, parse_error
from s3br_provider.hooks.direct_s3 import DirectS3, NotDirectError, client_error, is_region_miss

T = TypeVar("T")
R = TypeVar("R")
_SKIP_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class DirectCopy(NamedTuple):
    """One CopyObject as the direct path sends it: into ``bucket``/``key`` with ``headers``."""

    bucket: str
    key: str
    headers: dict[str, str]


class AsyncCopies:
    """Send ``DirectCopy`` requests of one task on an event loop of its own thread.

    :param direct: the hook's direct path: addresses, signing, TLS and timeouts.
    :param slots: the hook's request slots.
    """

    def __init__(self, direct: DirectS3, slots: RequestSlots) -> None:
        self._direct = direct
        self._slots = slots

    def run(
        self,
        items: Iterable[T],
        request: Callable[[T], DirectCopy | None],
        fallback: Callable[[T, ClientError | None], R],
        *,
        workers: int,
    ) -> Iterator[tuple[T, R | bool | None, BaseException | None]]:
        """Copy every item; yield ``(item, result, error)`` as each finishes, in any order.

        ``request(item)`` states the item's CopyObject, or None for ``fallback(item, None)`` on
        one of ``workers`` threads; a direct copy's result is True, a fallback's what it
        returned. A copy answered with an error no retry mends goes to ``fallback(item, error)``,
        which handles that answer as its own first (without sending it again); one unanswered,
        throttled, failed on the server or sent to the wrong region to ``fallback(item, None)``.
        At most ``4 * workers`` items (twice the slots, if more) are read ahead of the results
        (bounded memory)."""
        done: queue.SimpleQueue[tuple[T, Future[Any]]] = queue.SimpleQueue()
        room = threading.Semaphore(max(4 * workers, 2 * self._slots.limit))
        outstanding = 0
        with _EventLoop(self._session) as loop, ThreadPoolExecutor(workers, "s3br") as pool:

            def finish(item: T, future: Future[Any]) -> None:
                room.release()
                done.put((item, future))

            for item in items:
                room.acquire()
                outstanding += 1
                try:
                    copy = request(item)
                    if copy is not None:
                        url, headers = self._direct.signed_copy(copy.bucket, copy.key, copy.headers)
                except NotDirectError:
                    copy = None
                if copy is None:
                    future = pool.submit(fallback, item, None)
                else:
                    self._slots.take()
                    future = loop.submit(self._copy(loop, pool, item, url, headers, fallback))
                future.add_done_callback(lambda f, item=item: finish(item, f))
                while not done.empty():
                    outstanding -= 1
                    yield _outcome(*done.get())
            while outstanding:
                outstanding -= 1
                yield _outcome(*done.get())

    async def _copy(
        self,
        loop: _EventLoop,
        pool: ThreadPoolExecutor,
        item: T,
        url: str,
        headers: dict[str, str],
        fallback: Callable[[T, ClientError | None], R],
    ) -> R | bool:
        answered: ClientError | None = None
        try:
            async with loop.session.put(URL(url, encoded=True), headers=headers, data=b"") as response:
                status, body = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            status, body = 0, b""  # unanswered: the fallback sends it again, with retries
        finally:
            self._slots.give()
        if status:
            error = parse_error(body)  # CopyObject may answer 200 OK with an error in the body
            if status == 200 and error is None:
                return True
            code = error.code if error else str(status)
            if not (is_region_miss(status, code) or is_retryable(status, code)):
                answered = client_error(status, error, "CopyObject")  # final: not sent again
        return await asyncio.get_running_loop().run_in_executor(pool, fallback, item, answered)

    def _session(self) -> aiohttp.ClientSession:
        """The loop's HTTP session: the direct path's TLS settings and timeouts, no proxies
        (``DirectS3.for_client`` gives no direct path where the connection has any)."""
        verify = self._direct.verify
        context: ssl.SSLContext | bool = False
        if verify is not False:
            context = ssl.create_default_context(cafile=get_cert_path(True if verify is None else verify))
        connect, read = self._direct.timeouts
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._slots.limit, ssl=context),
            timeout=aiohttp.ClientTimeout(sock_connect=connect, sock_read=read),
            auto_decompress=False,
            skip_auto_headers=_SKIP_HEADERS,
        )


def _outcome(item: T, future: Future[Any]) -> tuple[T, Any, BaseException | None]:
    error = future.exception()
    return item, (None if error else future.result()), error


class _EventLoop:
    """An asyncio loop on a daemon thread with one ``aiohttp`` session, closed on exit."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        self._make_session = session
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="s3br-copies", daemon=True)
        self.session: aiohttp.ClientSession

    def __enter__(self) -> _EventLoop:
        self._thread.start()

        async def open_session() -> aiohttp.ClientSession:
            return self._make_session()

        self.session = self.submit(open_session()).result()
        return self

    def submit(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.submit(self.session.close()).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
