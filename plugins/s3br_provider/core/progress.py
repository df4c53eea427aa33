"""Progress lines every few seconds on long work, never one per object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Count objects and bytes; call ``log`` at most every ``interval`` seconds."""

    what: str
    log: Callable[[str], None]
    total: int | None = None
    interval: float = 5.0
    clock: Callable[[], float] = time.monotonic
    objects: int = 0
    bytes: int = 0
    failed: int = 0
    _started: float = field(default=0.0, init=False)
    _last: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._started = self._last = self.clock()

    def add(self, size: int = 0, *, failed: bool = False) -> None:
        if failed:
            self.failed += 1
        else:
            self.objects += 1
            self.bytes += size
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self.log(self.summary())

    def summary(self) -> str:
        elapsed = max(self.clock() - self._started, 1e-9)
        done = self.objects + self.failed
        of_total = f"/{self.total}" if self.total is not None else ""
        return (
            f"{self.what}: {done}{of_total} objects ({self.failed} failed), "
            f"{format_bytes(self.bytes)}, {self.objects / elapsed:.0f} objects/s"
        )


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
