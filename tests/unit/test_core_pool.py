"""The bounded worker pool, the background prefetcher and the ordered concatenation ahead."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from s3br_provider.core.pool import (
    RequestSlots,
    bounded_map,
    bounded_map_ordered,
    concat_ahead,
    map_where_ordered,
    prefetch,
)

MapFn = Callable[..., Iterator[tuple[int, int | None, BaseException | None]]]
MAPS = [pytest.param(bounded_map, id="unordered"), pytest.param(bounded_map_ordered, id="ordered")]


def square_unless_seven(item: int) -> int:
    if item % 7 == 0:
        raise ValueError(f"item {item} is bad")
    return item * item


class CountingItems:
    """An input that records, at every read, how far it has run ahead of the results seen."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read = 0
        self.results = 0
        self.most_ahead = 0

    def __iter__(self) -> Iterator[int]:
        for item in range(self.count):
            self.read += 1
            self.most_ahead = max(self.most_ahead, self.read - self.results)
            yield item


@pytest.mark.parametrize("map_fn", MAPS)
def test_every_item_once_with_its_result_or_error(map_fn: MapFn) -> None:
    outcomes = list(map_fn(square_unless_seven, range(200), workers=4))

    assert sorted(item for item, _, _ in outcomes) == list(range(200))
    for item, result, error in outcomes:
        if item % 7 == 0:
            assert result is None
            assert isinstance(error, ValueError) and str(error) == f"item {item} is bad"
        else:
            assert (result, error) == (item * item, None)


def test_ordered_map_keeps_input_order_despite_slow_items() -> None:
    def slow_first(item: int) -> int:
        if item == 0:
            time.sleep(0.05)
        return item

    assert [item for item, _, _ in bounded_map_ordered(slow_first, range(50), workers=4)] == list(range(50))


def test_unordered_map_yields_finished_items_first() -> None:
    release = threading.Event()

    def wait_on_first(item: int) -> int:
        if item == 0:
            release.wait(5)
        return item

    outcomes = bounded_map(wait_on_first, range(6), workers=2, max_in_flight=4)
    first = next(outcomes)[0]
    release.set()
    assert first != 0
    assert sorted([first, *(item for item, _, _ in outcomes)]) == list(range(6))


@pytest.mark.parametrize("map_fn", MAPS)
@pytest.mark.parametrize(
    ("workers", "max_in_flight", "limit"), [(2, None, 8), (4, 3, 3), (1, 1, 1), (8, 16, 16)]
)
def test_read_ahead_is_bounded(map_fn: MapFn, workers: int, max_in_flight: int | None, limit: int) -> None:
    items = CountingItems(300)
    for _ in map_fn(square_unless_seven, items, workers=workers, max_in_flight=max_in_flight):
        items.results += 1
    assert items.results == 300
    assert items.most_ahead == limit


def test_prefetch_yields_everything_in_order() -> None:
    assert list(prefetch(iter(range(10_000)), depth=16)) == list(range(10_000))
    assert list(prefetch([], depth=16)) == []


def test_prefetch_raises_the_producer_error_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("listing page 3 failed")

    received: list[int] = []
    with pytest.raises(RuntimeError, match="listing page 3 failed"):
        for item in prefetch(failing(), depth=4):
            received.append(item)
    assert received == [1, 2]


class ProducerProbe:
    """An endless input that remembers the thread producing it and how much it produced."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.produced = 0
        self.thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[int]:
        self.thread = threading.current_thread()
        while self.limit is None or self.produced < self.limit:
            self.produced += 1
            yield self.produced


@pytest.mark.parametrize("limit", [None, 3], ids=["endless-input", "input-exhausted-with-buffer-full"])
def test_prefetch_stops_the_producer_when_the_consumer_stops(limit: int | None) -> None:
    probe = ProducerProbe(limit)
    items = prefetch(probe, depth=2)
    assert next(items) == 1
    time.sleep(0.05)  # let the producer fill the buffer and block on it
    items.close()

    assert probe.thread is not None and probe.thread is not threading.current_thread()
    probe.thread.join(timeout=3)
    assert not probe.thread.is_alive()
    assert probe.produced <= 1 + 2 + 1  # taken, buffered, and one waiting for room


@pytest.mark.parametrize("ahead", [1, 3, 10])
def test_concat_ahead_yields_every_part_in_order(ahead: int) -> None:
    parts = [lambda i=i: range(i * 100, i * 100 + 100) for i in range(7)]
    assert list(concat_ahead(parts, ahead=ahead, depth=8)) == list(range(700))
    assert list(concat_ahead([], ahead=ahead, depth=8)) == []
    assert list(concat_ahead([list, lambda: [1], list], ahead=ahead, depth=8)) == [1]


def test_concat_ahead_produces_at_most_ahead_parts_at_once() -> None:
    started: list[int] = []
    release_first = threading.Event()

    def part(index: int) -> Iterator[int]:
        started.append(index)
        yield index
        if index == 0:
            assert release_first.wait(timeout=5)

    items = concat_ahead([lambda i=i: part(i) for i in range(6)], ahead=3, depth=4)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(started) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # a fourth part, were it started too early, would show up here
    assert sorted(started) == [0, 1, 2]  # parts 1 and 2 run while part 0 is consumed
    release_first.set()
    assert list(items) == [1, 2, 3, 4, 5]
    assert sorted(started) == [0, 1, 2, 3, 4, 5]


def test_concat_ahead_raises_a_part_error_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 10
        raise RuntimeError("listing of sub-range 2 failed")

    received: list[int] = []
    with pytest.raises(RuntimeError, match="sub-range 2 failed"):
        for item in concat_ahead([lambda: [1, 2], failing, lambda: [99]], ahead=3, depth=4):
            received.append(item)
    assert received == [1, 2, 10]


def test_concat_ahead_stops_every_part_when_the_consumer_stops() -> None:
    probes = [ProducerProbe() for _ in range(3)]
    items = concat_ahead([lambda p=p: p for p in probes], ahead=3, depth=2)
    assert next(items) == 1
    time.sleep(0.05)  # let the producers fill their buffers and block on them
    items.close()
    for probe in probes:
        assert probe.thread is not None
        probe.thread.join(timeout=3)
        assert not probe.thread.is_alive()
        assert probe.produced <= 1 + 2 + 1


def test_concat_ahead_needs_at_least_one_part_ahead() -> None:
    with pytest.raises(ValueError, match="ahead must be at least 1"):
        list(concat_ahead([list], ahead=0, depth=4))


def test_request_slots_bound_the_requests_in_flight_across_threads() -> None:
    slots = RequestSlots(3)
    lock, now, most = threading.Lock(), [0], [0]

    def request(_: int) -> None:
        with slots:
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            time.sleep(0.01)
            with lock:
                now[0] -= 1

    list(bounded_map(request, range(40), workers=10))
    assert most[0] == slots.peak == 3


def test_a_thread_holding_a_slot_reenters_without_taking_another() -> None:
    slots = RequestSlots(1)
    done = threading.Event()

    def nested() -> None:
        with slots:
            assert slots.holding()
            with slots:  # would block for good if it took a second slot
                slots.call(done.set)
        assert not slots.holding()

    worker = threading.Thread(target=nested)
    worker.start()
    worker.join(timeout=2)
    assert done.is_set() and slots.peak == 1


def test_waiters_holding_no_slot_let_their_parts_use_every_slot() -> None:
    """Like multipart copies: each item waits for parts that need slots of their own."""
    slots = RequestSlots(2)
    parts = ThreadPoolExecutor(max_workers=8)

    def large_copy(item: int) -> int:
        assert not slots.holding()
        futures = [parts.submit(slots.call, time.sleep, 0.005) for _ in range(4)]
        return sum(1 for f in futures if f.result() is None)

    outcomes = list(bounded_map(large_copy, range(6), workers=6))
    parts.shutdown()
    assert sorted(result for _, result, _ in outcomes) == [4] * 6
    assert slots.peak == 2


def test_request_slots_need_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestSlots(0)


def test_map_where_ordered_keeps_the_order_and_maps_only_what_it_picks() -> None:
    seen: list[int] = []

    def slow_square(n: int) -> int:
        seen.append(n)
        time.sleep(0.001 * (n % 3))
        return n * n

    out = list(map_where_ordered(slow_square, range(200), lambda n: n % 7 == 0, workers=4, window=5))
    assert out == [n * n if n % 7 == 0 else n for n in range(200)]
    assert sorted(seen) == list(range(0, 200, 7))


def test_map_where_ordered_raises_where_the_failed_item_would_come() -> None:
    def fail_on_ten(n: int) -> int:
        if n == 10:
            raise ValueError("ten")
        return n

    got: list[int] = []
    with pytest.raises(ValueError, match="ten"):
        for n in map_where_ordered(fail_on_ten, range(20), lambda n: n % 5 == 0, workers=2, window=3):
            got.append(n)
    assert got == list(range(10))
