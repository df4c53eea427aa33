"""Plan key-range partitions of a key space nothing is known about, by probing it.

A probe is one listing request: the first ``max_keys`` keys after ``start_after`` (S3's
ListObjectsV2 with ``StartAfter`` and ``MaxKeys``). Each probe shows a run of real keys and how
dense the key space is where it landed. The space between the probed points is estimated from
those densities, and wherever an estimate holds more keys than a partition should, more points
are chosen in it (interpolated over the characters the keys use) and probed in parallel, in
rounds that double in size, while the requests stay within a budget of ``PROBES_PER_PARTITION``
per partition planned. Where partitions are smaller than a page, probes continue the listing
right after the keys already seen, so sizes are exact. Keys compare as Python strings, which for
valid Unicode is S3's UTF-8 byte order (``core/keys.py``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from s3br_provider.core.partitions import KeyRange, plan_from_samples, ranges_from_boundaries
from s3br_provider.core.pool import bounded_map

Probe = Callable[[str | None, int], list[str]]
"""``probe(start_after, max_keys)``: the first ``max_keys`` keys after ``start_after`` (None: from
the start), sorted; fewer only where the key space ends."""

PAGE = 1000
"""Keys per probe: the most one ListObjectsV2 request returns."""
PROBES_PER_PARTITION = 2
"""Request budget: at most this many probes per partition the plan makes..."""
SEARCH_PROBES = 32
"""... or this many, to find where the keys are in a space of few partitions."""
CONTINUATION_SPACING = 0.8
"""Where partitions are smaller than a page, points are about this share of a page apart, so
that each probe's run reaches the next point and every key is counted."""
SAMPLE_STRIDE = 50
"""Keys of each run whose characters are learned: one in this many."""
SKEW = 4
"""A gap whose ends' densities differ more than this much is searched near its dense end."""
SKEWED_POINTS = 3
"""Points probed at once, at least, in a skewed gap (at doubling distances from its dense end)."""
MAX_DIGITS = 128
"""Characters (after the plan's prefix) that positions are resolved over."""
NEIGHBOURS = 2
"""A varying character position may hold what varying positions this close to it hold."""
DIGITS = "0123456789"


@dataclass(frozen=True)
class ProbedPlan:
    """Partitions found by probing, with what it cost and what it found."""

    ranges: list[KeyRange]
    probes: int
    estimated_keys: int
    exact: bool
    """Whether every key was seen (then every partition's size is exact)."""


@dataclass(frozen=True)
class _Segment:
    """Keys after one probed point up to the next: the run seen, then a gap not yet seen."""

    end: str | None  # the next probed point (None: the end of the key space)
    keys: list[str]  # the run's keys up to ``end``
    gap: float  # estimated keys in ``(keys[-1], end]``; 0 when the run reached ``end``
    most: float  # how many keys the gap might hold (at the denser end's density)
    skew: int  # 1: dense where the gap starts (or nothing seen after it), -1: where it ends, 0: even
    dense: float  # keys per unit of position at the denser end
    scale: _Scale | None  # positions in the gap's neighbourhood (None: no gap)


class _Scale:
    """Order-keeping integer positions of strings, in mixed radix: at each character position,
    the characters keys may hold there (``_widened``), in order. A string shorter than the scale
    is read as if padded with each position's smallest character, so a point sits where the
    first key that could follow it would. Digits span only the characters keys use where they
    use them (a position of decimal digits has base 10, a constant ``/`` base 1), so positions
    are close to proportional to how many keys could lie between.
    """

    def __init__(self, strings: list[str], prefix: str, everywhere: list[set[str]]) -> None:
        self.common = prefix  # not the strings' common prefix: keys past those seen may differ sooner
        alphabets: list[set[str]] = []
        for text in strings:
            _add_chars(alphabets, text, prefix)
        self.length = min(MAX_DIGITS, max(len(s) for s in strings) - len(prefix))
        for i, chars in enumerate(alphabets[: min(self.length, len(everywhere))]):
            # Characters seen anywhere in the key space at this position, between those seen here.
            low, high = min(chars), max(chars)
            chars |= {c for c in everywhere[i] if low < c < high}
        self.chars = _widened(alphabets[: self.length])
        self.rank = [{c: r for r, c in enumerate(chars)} for chars in self.chars]
        self.bases = [len(chars) for chars in self.chars]
        self.top = math.prod(self.bases) - 1

    def position(self, text: str | None) -> int:
        if text is None:
            return self.top
        suffix = text[len(self.common) :]
        value = 0
        for i, base in enumerate(self.bases):
            value = value * base + (self.rank[i][suffix[i]] if i < len(suffix) else 0)
        return value

    def between(self, low: str, high: str | None, position: int, tolerance: int) -> str | None:
        """The shortest string within ``tolerance`` below ``position`` and strictly between
        ``low`` and ``high``, or None if rounding leaves none."""
        digits, rest = [], position
        for base in reversed(self.bases):
            rest, digit = divmod(rest, base)
            digits.append(digit)
        text = self.common + "".join(self.chars[i][d] for i, d in enumerate(reversed(digits)))
        if text <= low or (high is not None and text >= high):
            return None
        for length in range(len(self.common) + 1, len(text)):
            shorter = text[:length]
            if shorter > low and self.position(shorter) >= position - tolerance:
                return shorter
        return text


def _widened(seen: list[set[str]]) -> list[list[str]]:
    """The characters each position may hold, in order, from those seen in a sample: a varying
    position also takes what its varying neighbours (``NEIGHBOURS`` either side) hold (a hash
    shows only some of its hex digits in a sample), any decimal digit where one was seen
    (counters and timestamps reach digits not seen yet), and every letter between the smallest
    and the largest of each case; a constant non-digit position (``/``, a fixed word) stays."""
    varying = [len(chars) > 1 for chars in seen]
    widened = []
    for i, own in enumerate(seen):
        chars = set(own)
        if varying[i]:
            for j in range(max(0, i - NEIGHBOURS), min(len(seen), i + NEIGHBOURS + 1)):
                if varying[j]:
                    chars |= seen[j]
        if chars & set(DIGITS):
            chars |= set(DIGITS)
        for low, high in (("a", "z"), ("A", "Z")):
            letters = [c for c in chars if low <= c <= high]
            if letters:
                chars |= {chr(o) for o in range(ord(min(letters)), ord(max(letters)) + 1)}
        widened.append(sorted(chars))
    return widened


def _add_chars(alphabets: list[set[str]], text: str, prefix: str) -> None:
    """Note which character ``text`` has at each position after ``prefix``."""
    suffix = text[len(prefix) : len(prefix) + MAX_DIGITS]
    while len(alphabets) < len(suffix):
        alphabets.append(set())
    for i, char in enumerate(suffix):
        alphabets[i].add(char)


def _density(keys: list[str], scale: _Scale) -> float:
    """Keys per unit of position over sorted ``keys``."""
    if len(keys) < 2:
        return 0.0
    return (len(keys) - 1) / max(1, scale.position(keys[-1]) - scale.position(keys[0]))


def _measured(run: list[str]) -> list[str]:
    """The keys of a run whose positions densities are measured between."""
    if not run:
        return []
    half = len(run) // 2
    return [run[0], run[max(1, half) - 1], run[half], run[-1]]


def _learn(everywhere: list[set[str]], run: list[str], prefix: str) -> None:
    """Note the characters a sample of a run holds at each position."""
    for key in run[::SAMPLE_STRIDE]:
        _add_chars(everywhere, key, prefix)


def _end_densities(
    run: list[str], end: str | None, after: list[str], scale: _Scale
) -> tuple[float, float | None]:
    """Keys per unit of position where a gap starts (the run's last half) and where it ends
    (from ``end`` to the middle of its run, so a probe that found nothing near its point shows
    a sparse place); None for the end when nothing was seen after it."""
    start = _density(run[len(run) // 2 :], scale)
    if end is None or not after:
        return start, None
    half = after[: max(1, len(after) // 2)]
    return start, len(half) / max(1, scale.position(half[-1]) - scale.position(end))


def _local_scale(
    run: list[str], after: list[str], end: str | None, prefix: str, everywhere: list[set[str]]
) -> _Scale:
    """A scale for one gap, learned from the runs on both sides of it: a key space mixes
    structures (``cold/00/000123`` next to ``hot/9f3a...``), and a gap is measured in the
    characters of its neighbourhood, not of the whole space."""
    strings = [*run[::SAMPLE_STRIDE], *_measured(run), *after[::SAMPLE_STRIDE], *_measured(after)]
    return _Scale(strings if end is None else [*strings, end], prefix, everywhere)


def _segment(
    point: str | None,
    end: str | None,
    runs: dict[str | None, list[str]],
    page: int,
    prefix: str,
    everywhere: list[set[str]],
) -> _Segment:
    """What is known of the keys after ``point`` up to the next probed point ``end``."""
    run = runs[point]
    keys = run if end is None else run[: bisect.bisect_right(run, end)]
    if len(run) < page or len(keys) < len(run) or keys[-1] == end:
        return _Segment(end, keys, 0.0, 0.0, 0, 0.0, None)  # the run reached the next point
    after = [] if end is None else runs[end]
    scale = _local_scale(run, after, end, prefix, everywhere)
    width = scale.position(end) - scale.position(keys[-1])
    start, finish = _end_densities(run, end, after, scale)
    skew = 1
    if finish is None:  # the key space may end anywhere in the gap: follow it from its start
        gap = most = width * start
    else:
        # Density is taken to change geometrically across the gap; where the two ends differ
        # much, the dense keys stop (or start) somewhere inside and are looked for near the
        # dense end.
        gap, most = width * math.sqrt(start * finish), width * max(start, finish)
        skew = 1 if start > SKEW * finish else -1 if finish > SKEW * start else 0
    return _Segment(end, keys, max(1.0, gap), most, skew, max(start, finish or 0.0), scale)


def _gap_points(segment: _Segment, count: int, spacing: float, continue_listing: bool) -> list[str]:
    """``count`` points in a segment's gap. Evenly spread where both ends are alike; where one
    end is dense (or nothing was seen after the gap), at 1, 2, 4, ... times ``spacing`` keys
    at that density from the dense end, so where the dense keys stop is found in a few probes
    however narrow they are. The first point is the gap's start itself when the listing is to
    be continued."""
    low, high, scale = segment.keys[-1], segment.end, segment.scale
    assert scale is not None
    start, stop = scale.position(low), scale.position(high)
    found = [low] if continue_listing else []
    inner = count - len(found)
    step = spacing / segment.dense if segment.dense else 0.0
    if segment.skew > 0 and step:
        positions = [start + round(step * 2**j) for j in range(inner)]
    elif segment.skew < 0 and step:
        positions = [stop - round(step * 2**j) for j in range(inner - 1, -1, -1)]
    else:
        positions = [start + (stop - start) * j // (inner + 1) for j in range(1, inner + 1)]
    tolerance = min(stop - start, max(1, round(step))) // 8 if step else (stop - start) // (8 * (count + 1))
    if segment.end is None:
        # Jumps past the last position the scale can name land on it: a probe there finds the
        # keys after everything this scale knows of, and the characters they bring.
        positions = sorted({min(position, stop) for position in positions})
    for position in positions:
        if not start < position <= stop:
            continue
        point = scale.between(low, high, position, tolerance)
        if point is not None and point not in found:
            found.append(point)
    return found


def _may_be_large(segment: _Segment, target: int) -> bool:
    """Whether a gap may hold more keys than a partition should: an even gap's estimate above
    the target; a skewed gap's at its denser end above twice the target (a gap that may hold
    less ends in a partition of at most about twice the target anyway)."""
    return segment.most > 2 * target if segment.skew else segment.gap > target


def _next_points(segments: list[_Segment], target: int, page: int, limit: int) -> list[str]:
    """Where to probe next: the gaps estimated to hold the most keys first, at most ``limit``."""
    exact = target < page
    spacing = CONTINUATION_SPACING * page if exact else target
    # The largest first (a skewed gap by half of what it may hold); the open end always, as
    # where the key space ends is not known.
    open_gaps = sorted(
        (s for s in segments if s.gap > 0 and (exact or s.end is None or _may_be_large(s, target))),
        key=lambda s: s.most / 2 if s.skew else s.gap,
        reverse=True,
    )
    chosen: list[str] = []
    for segment in open_gaps:
        room = limit - len(chosen)
        if room <= 0:
            break
        wanted = math.ceil(segment.gap / spacing) if exact else math.ceil(segment.gap / target) - 1
        count = min(room, max(SKEWED_POINTS if segment.skew else 1, wanted))
        chosen += _gap_points(segment, count, spacing, continue_listing=exact)
    return chosen


def _sizes(segments: list[_Segment]) -> Iterable[tuple[str | None, float]]:
    """``(end, keys)`` pieces in key order: each key seen, then each gap up to its end point."""
    for segment in segments:
        for key in segment.keys:
            yield key, 1
        if segment.gap:
            yield segment.end, segment.gap


def _boundaries(segments: list[_Segment], target: int) -> list[str]:
    """Where to cut the pieces into ranges of about ``target`` keys: none above ``2 * target``
    unless a single unseen gap is."""
    boundaries: list[str] = []
    filled, last_end = 0.0, None
    for end, keys in _sizes(segments):
        over = filled + keys > target
        if last_end is not None and filled and over and (filled >= target / 2 or filled + keys > 2 * target):
            boundaries.append(last_end)
            filled = 0.0
        filled += keys
        last_end = end
    return boundaries


def _listed(
    boundaries: Iterable[str | None], segments: list[_Segment], runs: dict[str | None, list[str]]
) -> list[str]:
    """The boundaries as keys the endpoint listed: a probed point becomes the first key its
    probe listed after it (the range before it then ends there; a point nothing follows is
    dropped). On S3 that moves no key across partitions; on endpoints that walk directories
    (SeaweedFS), ``StartAfter`` at a string that is no key can skip a whole directory
    (``StartAfter=d24`` lists from ``d25/``), while at a listed key it resumes right after it."""
    seen = {key for segment in segments for key in segment.keys}
    listed = []
    for boundary in boundaries:
        if boundary is None:
            continue
        if boundary in seen:
            listed.append(boundary)
        elif runs.get(boundary):
            listed.append(runs[boundary][0])
    return sorted(set(listed))


def _probe_all(probe: Probe, points: list[str], page: int, workers: int) -> dict[str | None, list[str]]:
    found: dict[str | None, list[str]] = {}
    for point, run, error in bounded_map(lambda p: probe(p, page), points, workers=workers):
        if error is not None:
            raise error
        found[point] = list(run or [])
    return found


def plan_by_probing(
    probe: Probe,
    *,
    target_keys: int,
    max_partitions: int,
    prefix: str = "",
    page: int = PAGE,
    workers: int = 8,
) -> ProbedPlan:
    """Split a key space into ranges of about ``target_keys`` keys by probing it.

    :param probe: lists the keys after a point (see ``Probe``); called from ``workers`` threads.
    :param target_keys: keys per partition wanted.
    :param max_partitions: upper bound on the ranges returned (partitions grow to stay within it).
    :param prefix: what every key starts with.
    :param page: keys asked of each probe (S3 returns at most 1,000).
    :param workers: probes in flight at once.
    """
    if target_keys < 1 or max_partitions < 1 or page < 2:
        raise ValueError(
            f"need target_keys >= 1, max_partitions >= 1 and page >= 2, got {target_keys}, "
            f"{max_partitions} and {page}"
        )
    runs: dict[str | None, list[str]] = {None: list(probe(None, page))}
    known: dict[tuple[str | None, str | None], _Segment] = {}
    everywhere: list[set[str]] = []
    _learn(everywhere, runs[None], prefix)
    probes, round_size = 1, 1
    while True:
        points = [None, *sorted(p for p in runs if p is not None)]
        segments = []
        for point, end in zip(points, [*points[1:], None], strict=True):
            if (point, end) not in known:
                known[point, end] = _segment(point, end, runs, page, prefix, everywhere)
            segments.append(known[point, end])
        total = sum(len(s.keys) + s.gap for s in segments)
        target = max(target_keys, math.ceil(total / max_partitions))
        wanted = min(max_partitions, max(1, math.ceil(total / target)))
        budget = max(SEARCH_PROBES, PROBES_PER_PARTITION * wanted) - probes
        # Half of what is left at most: estimates fall as probes find empty places.
        limit = min(round_size, budget - budget // 2)
        new = [p for p in dict.fromkeys(_next_points(segments, target, page, limit)) if p not in runs]
        if not new:
            break
        found = _probe_all(probe, new, page, workers)
        runs.update(found)
        for run in found.values():
            _learn(everywhere, run, prefix)
        probes += len(new)
        round_size *= 2
    exact = all(not s.gap for s in segments)
    boundaries = _boundaries(segments, target)
    if len(boundaries) >= max_partitions:  # too many: cut where the estimated keys divide evenly
        pieces = [(end, max(1, round(keys))) for end, keys in _sizes(segments) if end is not None]
        boundaries = [
            r.end for r in plan_from_samples(pieces, target_keys=target, max_partitions=max_partitions)
        ]
    ranges = ranges_from_boundaries(_listed(boundaries, segments, runs))
    return ProbedPlan(ranges, probes, round(total), exact)
