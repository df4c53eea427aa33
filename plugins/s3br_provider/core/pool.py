"""One bounded worker pool: many small jobs, bounded memory, results as they finish; and the
request slots that bound a task's S3 requests in flight, however many threads send them."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, max_in_flight: int | None = None
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Run ``fn`` over ``items`` on ``workers`` threads; yield ``(item, result, error)``.

    At most ``max_in_flight`` items (default ``4 * workers``) are read ahead of the results,
    so a manifest of a billion keys streams through in constant memory. Errors are returned,
    not raised, so one bad object never hides the outcome of the others.
    """
    limit = max_in_flight or 4 * workers
    pending: dict[Future[R], T] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3br") as pool:
        for item in items:
            pending[pool.submit(fn, item)] = item
            # Free a slot before reading the next item, so at most `limit` are ever read ahead.
            if len(pending) >= limit:
                yield from _drain(pending, FIRST_COMPLETED)
        while pending:
            yield from _drain(pending, FIRST_COMPLETED)


def _drain(pending: dict[Future, T], mode: str) -> Iterator[tuple[T, object, BaseException | None]]:
    done, _ = wait(pending, return_when=mode)
    for future in done:
        item = pending.pop(future)
        error = future.exception()
        yield item, (None if error else future.result()), error


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2000) -> Iterator[T]:
    """Produce ``items`` on a background thread, at most ``depth`` ahead of the consumer.

    Two listings walked side by side then fetch their pages concurrently instead of in turn.
    An error in the producer is raised in the consumer.
    """
    producer = _Producer(items, depth)
    try:
        yield from producer
    finally:
        producer.close()


def concat_ahead(parts: Iterable[Callable[[], Iterable[T]]], *, ahead: int, depth: int) -> Iterator[T]:
    """Yield every item of ``parts[0]()``, then of ``parts[1]()``, and so on, while up to
    ``ahead`` parts are produced at once, each on its own thread and at most ``depth`` items
    ahead of the consumer (memory: ``ahead * depth`` items).

    One listing split into key sub-ranges then walks in key order as fast as ``ahead`` listings
    side by side, where each page costs a round trip. A part's error is raised in the consumer
    once the items before it are yielded; stopping early stops every part."""
    if ahead < 1:
        raise ValueError(f"ahead must be at least 1, got {ahead}")
    waiting = iter(parts)
    running: deque[_Producer[T]] = deque()
    try:
        for make in waiting:
            running.append(_Producer(make(), depth))
            if len(running) == ahead:
                break
        while running:
            yield from running[0]
            running.popleft()
            make = next(waiting, None)
            if make is not None:
                running.append(_Producer(make(), depth))
    finally:
        for producer in running:
            producer.close()


class _Producer(Generic[T]):
    """``items`` produced on a daemon thread (started at once) into a buffer of ``depth``;
    iterate once to consume, ``close`` to stop the thread whatever was consumed."""

    def __init__(self, items: Iterable[T], depth: int) -> None:
        self._items = items
        self._buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        threading.Thread(target=self._produce, name="s3br-prefetch", daemon=True).start()

    def _put(self, item: Any) -> bool:
        # Never block for good: a consumer that stopped early takes nothing more from the buffer.
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.5)
                return not self._stop.is_set()
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(_Failure(error))

    def __iter__(self) -> Iterator[T]:
        while (item := self._buffer.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        # Empty the buffer: frees what it holds and wakes a producer waiting for room.
        with contextlib.suppress(queue.Empty):
            while True:
                self._buffer.get_nowait()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def bounded_map_ordered(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, max_in_flight: int | None = None
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Like :func:`bounded_map`, but yield results in input order.

    Manifests must stay sorted by key (a retry merge-joins them with a listing), so steps that
    write one from parallel work use this; a slow item holds back at most ``max_in_flight``.
    """
    limit = max_in_flight or 4 * workers
    window: deque[tuple[T, Future[R]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3br") as pool:
        for item in items:
            window.append((item, pool.submit(fn, item)))
            if len(window) >= limit:
                yield _result(*window.popleft())
        while window:
            yield _result(*window.popleft())


def map_where_ordered(
    fn: Callable[[T], T], items: Iterable[T], where: Callable[[T], bool], *, workers: int, window: int
) -> Iterator[T]:
    """``items`` in their order, each one ``where`` picks replaced by ``fn(item)``, which runs on
    ``workers`` threads; at most ``window`` items are held back behind a pending one. Items
    ``where`` leaves alone never enter the pool, so a stream that picks few costs no more per
    item than the stream itself. An error of ``fn`` is raised where its item would come."""
    held: deque[T | Future[T]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3br") as pool:
        for item in items:
            if where(item):
                held.append(pool.submit(fn, item))
            elif not held:
                yield item
                continue
            else:
                held.append(item)
            while held and (len(held) >= window or _settled(held[0])):
                yield _taken(held.popleft())
        while held:
            yield _taken(held.popleft())


def _settled(item: object) -> bool:
    return not isinstance(item, Future) or item.done()


def _taken(item: T | Future[T]) -> T:
    return item.result() if isinstance(item, Future) else item


def _result(item: T, future: Future[R]) -> tuple[T, R | None, BaseException | None]:
    error = future.exception()
    return item, (None if error else future.result()), error


class RequestSlots:
    """At most ``limit`` requests in flight at once, across every thread that shares this object.

    A request holds its slot while it runs, retries included (backing off while holding it slows
    a throttled task down, as it should). A thread that only waits for other requests (a
    multipart copy waiting for its parts) must not hold one: then parts take whatever slots are
    free and no set of waiting threads can hold every slot their parts need. A thread already
    holding a slot re-enters without taking a second one, so nesting cannot deadlock either.

    Use as ``with slots: send()``; ``peak`` is the most requests seen in flight at once.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the request limit must be at least 1, got {limit}")
        self.limit = limit
        self.peak = 0
        self._free = threading.Semaphore(limit)
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self._held = threading.local()

    def holding(self) -> bool:
        """Whether the calling thread holds a slot."""
        return getattr(self._held, "depth", 0) > 0

    def __enter__(self) -> RequestSlots:
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            self.take()
        self._held.depth = depth + 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._held.depth -= 1
        if self._held.depth == 0:
            self.give()

    def take(self) -> None:
        """Take a slot for a request that another thread finishes (an event loop's): give it
        back with ``give``. Not re-entrant."""
        self._free.acquire()
        with self._count_lock:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)

    def give(self) -> None:
        """Give back a slot taken with ``take``, from any thread."""
        with self._count_lock:
            self._in_flight -= 1
        self._free.release()

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` holding a slot."""
        with self:
            return fn(*args, **kwargs)
