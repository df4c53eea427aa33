"""The bounded key sampler that sizes the next run's partitions."""

from __future__ import annotations

import pytest

from s3br_provider.core.sampler import KeySampler


def key(i: int) -> str:
    return f"data/{i:08d}"


def sample_stream(count: int, capacity: int) -> KeySampler:
    sampler = KeySampler(capacity=capacity)
    for i in range(1, count + 1):
        sampler.add(key(i))
    return sampler


@pytest.fixture(scope="module")
def million() -> KeySampler:
    return sample_stream(1_000_000, capacity=256)


def test_memory_stays_below_capacity(million: KeySampler) -> None:
    assert million.count == 1_000_000
    assert 128 <= len(million.samples()) < 256


def test_weights_add_up_to_the_keys_seen(million: KeySampler) -> None:
    assert sum(weight for _, weight in million.samples()) == 1_000_000


def test_samples_are_sorted_and_distinct(million: KeySampler) -> None:
    keys = [k for k, _ in million.samples()]
    assert keys == sorted(set(keys))


def test_samples_are_evenly_spaced(million: KeySampler) -> None:
    samples = million.samples()
    stride = samples[0][1]
    # every kept key stands for the same number of keys, the last one also for the tail
    assert all(weight == stride for _, weight in samples[:-1])
    assert stride <= samples[-1][1] < 2 * stride
    # and sits exactly one stride after the previous one
    assert [k for k, _ in samples] == [key(stride * (i + 1)) for i in range(len(samples))]


@pytest.mark.parametrize("count", [1, 2, 3, 255, 256, 257, 1000, 4097])
def test_weights_add_up_for_any_length(count: int) -> None:
    sampler = sample_stream(count, capacity=16)
    samples = sampler.samples()
    assert len(samples) < 16
    assert sum(weight for _, weight in samples) == count


def test_short_stream_keeps_every_key() -> None:
    assert sample_stream(3, capacity=256).samples() == [(key(1), 1), (key(2), 1), (key(3), 1)]


def test_no_keys_no_samples() -> None:
    assert KeySampler().samples() == []


@pytest.mark.parametrize("capacity", [1, 0, -5])
def test_capacity_below_two_is_rejected(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        KeySampler(capacity=capacity)
