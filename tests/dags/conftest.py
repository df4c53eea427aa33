"""Shared pieces of the whole-DAG backup tests: an odd data set and object-by-object checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.s3 import Obj, Snapshot, put, seed, snapshot_bucket

__all__ = ["Obj", "put", "seed"]  # re-exported for the DAG tests

MARKER_TAGS = ("Deleted", "DeletedAt")
LONG_KEY = "e/" + "k" * 998  # 1000 bytes, close to S3's 1024-byte limit


def odd_objects() -> dict[str, Obj]:
    """Keys S3 allows but tools trip over, zero-byte objects, metadata, Content-Type and tags,
    spread over many top-level prefixes so that the plan makes several partitions."""
    text = "text/plain; charset=utf-8"
    return {
        "top-level.json": Obj(b'{"k": 1}', "application/json", {"origin": "root"}),
        "_s3br.txt": Obj(b"sorts just before the reserved prefix", text),
        "_s3brz/not-reserved.txt": Obj(b"sorts just after the reserved prefix", text),
        "a/plain.txt": Obj(b"alpha", text, {"owner": "ann", "x-y": "1"}, {"team": "data", "env": "prod"}),
        "a/empty": Obj(b"", None),
        "a/empty-typed": Obj(b"", "application/x-empty", {"kind": "marker"}, {"zero": "yes"}),
        "b/données/été.csv": Obj("é,ü\n1,2\n".encode(), "text/csv; charset=utf-8", {"lang": "fr"}),
        "b/emoji 😀🚀.bin": Obj("🎉".encode() * 3, "application/octet-stream", {}, {"fun": "yes"}),
        "c/with space/a b c.txt": Obj(b"spaces", text, {}, {"tag with space": "value with space"}),
        "c/plus+sign+.txt": Obj(b"plus", text, {"p": "a+b"}),
        "c/percent%20and%25.txt": Obj(b"percent", text),
        "c/query?x=1&y=2#frag": Obj(b"query", text),
        "d//double//slash": Obj(b"double slash", text),
        "d/folder/": Obj(b"", "application/x-directory"),
        LONG_KEY: Obj(b"long key", text, {"len": "1000"}),
        "f/_s3br/data.txt": Obj(b"a reserved-looking name below the root is data", text),
        "日本語/ファイル.txt": Obj("こんにちは".encode(), text, {}, {"lang": "ja"}),
    }


def content(snap: Snapshot) -> tuple[bytes, str, dict[str, str], dict[str, str]]:
    """The parts of an object a backup promises to keep."""
    return snap.body, snap.content_type, snap.metadata, snap.tags


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in MARKER_TAGS}


def assert_source(s3: Any, bucket: str, model: dict[str, Obj]) -> dict[str, Snapshot]:
    """Check that the source holds exactly ``model`` (so later checks compare the right thing)."""
    snaps = snapshot_bucket(s3, bucket)
    assert sorted(snaps) == sorted(model)
    for key, obj in model.items():
        snap = snaps[key]
        assert snap.body == obj.body, key
        assert snap.metadata == obj.metadata, key
        assert snap.tags == obj.tags, key
        if obj.content_type is not None:
            assert snap.content_type == obj.content_type, key
    return snaps


def assert_copies(source: dict[str, Snapshot], backup: dict[str, Snapshot], keys: Any) -> None:
    """Each key holds in the backup the source's bytes, Content-Type, metadata and tags."""
    missing = sorted(key for key in keys if key not in backup)
    assert not missing, f"missing from the backup: {missing}"
    wrong = {
        key: {"backup": _shown(backup[key]), "source": _shown(source[key])}
        for key in sorted(keys)
        if content(backup[key]) != content(source[key])
    }
    assert not wrong, f"backup differs from source: {wrong}"


def _shown(snap: Snapshot) -> tuple[Any, ...]:
    body = snap.body if len(snap.body) <= 64 else f"<{len(snap.body)} bytes>"
    return body, snap.content_type, snap.metadata, snap.tags


@pytest.fixture
def buckets(s3: Any, bucket_names: Any, airflow_db: str) -> Iterator[tuple[str, str]]:
    """A fresh, empty (source, backup) pair of buckets."""
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    yield source, backup
