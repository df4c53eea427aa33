"""Progress lines every few seconds, never one per object."""

from __future__ import annotations

import pytest

from s3br_provider.core.progress import Progress, format_bytes


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_progress(clock: FakeClock, lines: list[str], total: int | None = None) -> Progress:
    return Progress("copy p3", lines.append, total=total, interval=5.0, clock=clock)


def test_no_line_within_the_interval() -> None:
    clock, lines = FakeClock(), []
    progress = make_progress(clock, lines)
    for _ in range(10_000):
        progress.add(100)
    clock.now += 4.99
    progress.add(100)
    assert lines == []
    assert progress.objects == 10_001


def test_at_most_one_line_per_interval() -> None:
    clock, lines = FakeClock(), []
    progress = make_progress(clock, lines)
    logged_at = []
    for _ in range(1000):  # 100 s of work, 10 objects a second
        clock.now += 0.1
        before = len(lines)
        progress.add(1)
        if len(lines) > before:
            logged_at.append(clock.now)
    assert len(lines) == pytest.approx(20, abs=1)
    gaps = [b - a for a, b in zip(logged_at, logged_at[1:], strict=False)]
    assert min(gaps) >= 5.0 - 1e-9


def test_a_long_pause_gives_one_line() -> None:
    clock, lines = FakeClock(), []
    progress = make_progress(clock, lines)
    clock.now += 3600
    progress.add(1)
    progress.add(1)
    assert len(lines) == 1


def test_summary_counts_objects_bytes_failures_and_rate() -> None:
    clock, lines = FakeClock(), []
    progress = make_progress(clock, lines, total=10)
    progress.add(1024)
    progress.add(1024)
    progress.add(5000, failed=True)
    clock.now += 5
    progress.add(1024)
    assert (progress.objects, progress.failed, progress.bytes) == (3, 1, 3072)
    assert lines == ["copy p3: 4/10 objects (1 failed), 3.0 KiB, 1 objects/s"]


def test_summary_without_total_or_time() -> None:
    progress = make_progress(FakeClock(), [])
    assert progress.summary() == "copy p3: 0 objects (0 failed), 0 B, 0 objects/s"


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**3 + 512 * 1024**2, "3.5 GiB"),
        (1024**4, "1.0 TiB"),
        (2048 * 1024**4, "2048.0 TiB"),
    ],
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text
