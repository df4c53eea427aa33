"""A bounded sample of a sorted key stream, for sizing the next run's partitions."""

from __future__ import annotations


class KeySampler:
    """Keep every ``stride``-th key, doubling the stride when the buffer fills.

    Memory stays at ``capacity`` keys however long the stream is, and each kept key stands
    for ``stride`` keys, so the samples describe where the keys are dense.
    """

    def __init__(self, capacity: int = 256) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.stride = 1
        self.count = 0
        self._keys: list[str] = []

    def add(self, key: str) -> None:
        """Offer the next key of the sorted stream."""
        self.count += 1
        if self.count % self.stride:
            return
        self._keys.append(key)
        if len(self._keys) >= self.capacity:
            self._keys = self._keys[1::2]
            self.stride *= 2

    def samples(self) -> list[tuple[str, int]]:
        """Return ``(key, weight)`` pairs whose weights add up to the keys seen."""
        if not self._keys:
            return []
        pairs = [(key, self.stride) for key in self._keys]
        covered = self.stride * len(pairs)
        last_key, last_weight = pairs[-1]
        pairs[-1] = (last_key, last_weight + self.count - covered)
        return pairs
