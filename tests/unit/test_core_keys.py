"""S3 key ordering: UTF-8 byte order, and Python's str order agreeing with it."""

from __future__ import annotations

import random

import pytest

from s3br_provider.core.keys import RESERVED_PREFIX, is_reserved, reaches_reserved, s3_sort_key

# Characters chosen at the edges of UTF-8's 1-, 2-, 3- and 4-byte encodings, around the
# surrogate gap (where UTF-16 order differs from code point order), and the characters that
# URL-encoding, signing and delimiters make awkward.
ALPHABET = [
    "a",
    "Z",
    "0",
    " ",
    "+",
    "%",
    "/",
    "-",
    ".",
    "_",
    "~",
    "\x01",
    "\x7f",
    "\u0080",
    "é",
    "\u07ff",
    "\u0800",
    "中",
    "\ud7ff",
    "\ue000",
    "\uff5e",
    "\ufffd",
    "\U00010000",
    "😀",
    "\U0010ffff",
]


def random_keys(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choices(ALPHABET, k=rng.randint(1, 12))) for _ in range(count)]


def test_sort_key_is_the_utf8_encoding() -> None:
    assert s3_sort_key("a/é 😀") == "a/é 😀".encode()


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        pytest.param("\ufffd", "😀", id="bmp-before-astral"),
        pytest.param("\uffff", "\U00010000", id="last-bmp-before-first-astral"),
        pytest.param("\ud7ff", "\ue000", id="around-surrogate-gap"),
        pytest.param("a b", "a+b", id="space-before-plus"),
        pytest.param("a%20", "a+", id="percent-before-plus"),
        pytest.param("a/", "a//", id="double-slash-after-slash"),
        pytest.param("a", "a/", id="trailing-slash-after-bare"),
        pytest.param("a.txt", "a/", id="dot-before-slash"),
        pytest.param("Z", "a", id="upper-before-lower"),
        pytest.param("z", "é", id="ascii-before-latin1"),
    ],
)
def test_str_order_agrees_with_byte_order(lower: str, higher: str) -> None:
    assert s3_sort_key(lower) < s3_sort_key(higher)
    assert lower < higher


def test_random_keys_sort_the_same_by_str_and_by_bytes() -> None:
    rng = random.Random(20240601)
    keys = random_keys(rng, 4000)
    assert sorted(keys) == sorted(keys, key=s3_sort_key)


def test_long_keys_sort_the_same_by_str_and_by_bytes() -> None:
    rng = random.Random(7)
    stem = "p/" * 499  # 998 bytes: keys differ only in their last characters
    keys = [stem + "".join(rng.choices(ALPHABET, k=2)) for _ in range(500)]
    assert all(len(s3_sort_key(key)) >= 1000 for key in keys)
    assert sorted(keys) == sorted(keys, key=s3_sort_key)


@pytest.mark.parametrize(
    ("key", "reserved"),
    [
        (RESERVED_PREFIX, True),
        ("_s3br/runs/s3_backup/manual__1/manifest.jsonl.gz", True),
        ("_s3br/stats/abc.json", True),
        ("_s3br", False),
        ("_s3brx/data", False),
        ("_S3BR/data", False),
        ("data/_s3br/x", False),
        ("", False),
    ],
)
def test_is_reserved(key: str, reserved: bool) -> None:
    assert is_reserved(key) is reserved


@pytest.mark.parametrize(
    ("prefix", "reaches"),
    [("", True), ("_", True), ("_s3br", True), ("_s3br/", True), ("_s3br/x/", True), ("data/", False)]
    + [("_s3bra", False), ("_t", False), ("a", False)],
)
def test_reaches_reserved(prefix: str, reaches: bool) -> None:
    assert reaches_reserved(prefix) is reaches
