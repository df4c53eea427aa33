"""The bounded external sort: S3's byte order, spilled runs, memory held."""

from __future__ import annotations

import random
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from s3br_provider.core.external_sort import sorted_objects, sorted_records
from s3br_provider.core.keys import s3_sort_key
from s3br_provider.core.objects import ObjectInfo

UNICODE = ["é", "日本", "\U0001f600", "ß", "\u00a0", "z", "-", "/", "0", "A"]


def _keys(count: int) -> list[str]:
    rng = random.Random(15)
    keys = {
        f"order/{rng.choice(UNICODE)}{i:06d}{rng.choice(UNICODE)}/{rng.choice(UNICODE)}" for i in range(count)
    }
    keys |= {"order/a-", "order/a/b", "order/a0", "trailing-dir/"}
    shuffled = sorted(keys)
    rng.shuffle(shuffled)
    return shuffled


def _objects(keys: list[str]) -> list[ObjectInfo]:
    return [ObjectInfo(key, i, f"etag{i}", 1.5e9 + i, tags={"n": str(i)}) for i, key in enumerate(keys)]


def test_100k_shuffled_keys_come_out_in_utf8_byte_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    keys = _keys(100_000)
    objects = _objects(keys)
    out = sorted_objects(objects, run_size=1_000)
    first = next(out)
    (folder,) = tmp_path.glob("s3br-sort-*")
    assert len(list(folder.iterdir())) == 100  # 100 spilled runs, the last one kept in memory
    result = [first, *out]
    assert [o.key for o in result] == sorted(keys, key=s3_sort_key)
    assert result[0] == next(o for o in objects if o.key == result[0].key)  # every field survives
    assert {o.key: o for o in result} == {o.key: o for o in objects}
    assert list(tmp_path.iterdir()) == []  # temporary runs removed


def _peak_memory(sort: Callable[[Iterator[dict]], Iterator[dict]]) -> int:
    records = ({"k": f"{(i * 7919) % 20_000:08d}", "pad": f"{i:0200d}"} for i in range(20_000))
    tracemalloc.start()
    try:
        keys = [record["k"] for record in sort(records)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert keys == sorted(keys)
    return peak - sys.getsizeof(keys) - 20_000 * 57  # the keys kept to check the order


def test_memory_is_bounded_by_the_run_size() -> None:
    in_memory = _peak_memory(lambda records: iter(sorted(records, key=lambda r: r["k"])))
    bounded = _peak_memory(lambda records: sorted_records(records, key=lambda r: r["k"], run_size=1_000))
    assert bounded < in_memory / 4, (bounded, in_memory)


def test_a_short_input_is_sorted_in_memory_and_empty_input_is_empty() -> None:
    assert [o.key for o in sorted_objects(_objects(["b", "a/b", "a-", "a0"]))] == ["a-", "a/b", "a0", "b"]
    assert list(sorted_objects([])) == []
    with pytest.raises(ValueError, match="run_size"):
        list(sorted_records([], key=str, run_size=0))
