"""Manifests: gzip JSON Lines work lists streamed to and from object storage."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from s3br_provider.core.keys import is_reserved
from s3br_provider.core.manifest import (
    RUNS_PREFIX,
    iter_records,
    read_manifest,
    run_folder,
    split_s3_uri,
    writing_manifest,
)
from tests.support.folder_store import FolderStore

URI = "s3://backup-bucket/_s3br/runs/s3_backup/run_1/p0/copy.jsonl.gz"


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path)


def gzip_lines(*lines: bytes) -> io.BytesIO:
    return io.BytesIO(gzip.compress(b"".join(lines)))


def test_round_trip_of_100k_records(store: FolderStore) -> None:
    records = [{"k": f"photos/é 😀/中文 +%//{i}", "s": i} for i in range(100_000)]
    records[7]["t"] = {"Team": "é"}

    with writing_manifest(store, URI) as writer:
        for record in records:
            writer.write(record)
    assert writer.count == len(records)
    assert store.uploads == [URI]

    assert list(read_manifest(store, URI)) == records


def test_manifest_is_gzip_json_lines_with_raw_utf8(store: FolderStore) -> None:
    with writing_manifest(store, URI) as writer:
        writer.write({"k": "é 😀"})
        writer.write({"k": "line\nbreak"})
    assert gzip.decompress(store.path(URI).read_bytes()) == '{"k":"é 😀"}\n{"k":"line\\nbreak"}\n'.encode()
    assert list(read_manifest(store, URI)) == [{"k": "é 😀"}, {"k": "line\nbreak"}]


@pytest.mark.parametrize("count", [1, 511, 512, 513, 1024, 1025])
def test_every_line_is_written_once_whatever_the_batch_boundary(store: FolderStore, count: int) -> None:
    with writing_manifest(store, URI) as writer:
        for i in range(count):
            writer.write({"i": i})
    expected = "".join(f'{{"i":{i}}}\n' for i in range(count)).encode()
    assert gzip.decompress(store.path(URI).read_bytes()) == expected


def test_an_empty_manifest_is_not_uploaded(store: FolderStore) -> None:
    with writing_manifest(store, URI) as writer:
        pass
    assert writer.count == 0
    assert store.uploads == []


def test_nothing_is_uploaded_when_writing_fails(store: FolderStore) -> None:
    with pytest.raises(RuntimeError, match="listing broke"), writing_manifest(store, URI) as writer:
        writer.write({"k": "a"})
        raise RuntimeError("listing broke")
    assert store.uploads == []
    assert not store.path(URI).exists()


def test_reading_downloads_only_when_iterated(store: FolderStore) -> None:
    records = read_manifest(store, "s3://backup-bucket/missing.jsonl.gz")
    with pytest.raises(FileNotFoundError):
        next(records)


def test_iter_records_skips_blank_lines() -> None:
    stream = gzip_lines(b'{"k":"a"}\n', b"\n", b"   \n", b'{"k":"b"}\n', b"\n")
    assert list(iter_records(stream)) == [{"k": "a"}, {"k": "b"}]


def test_iter_records_reads_a_last_line_without_newline() -> None:
    assert list(iter_records(gzip_lines(b'{"k":"a"}\n{"k":"b"}'))) == [{"k": "a"}, {"k": "b"}]


def test_iter_records_rejects_a_broken_line() -> None:
    with pytest.raises(ValueError):
        list(iter_records(gzip_lines(b'{"k":"a"}\n{"k":\n')))


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("s3://bucket/key", ("bucket", "key")),
        ("s3://bucket/a/b/c.jsonl.gz", ("bucket", "a/b/c.jsonl.gz")),
        ("s3://bucket/é 😀//x/", ("bucket", "é 😀//x/")),
    ],
)
def test_split_s3_uri(uri: str, parts: tuple[str, str]) -> None:
    assert split_s3_uri(uri) == parts


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://bucket/key", "not an S3 URI"),
        ("bucket/key", "not an S3 URI"),
        ("S3://bucket/key", "not an S3 URI"),
        ("s3://", "needs a bucket and a key"),
        ("s3://bucket", "needs a bucket and a key"),
        ("s3://bucket/", "needs a bucket and a key"),
        ("s3:///key", "needs a bucket and a key"),
    ],
)
def test_split_s3_uri_errors(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_s3_uri(uri)


def test_run_folder_sanitises_the_run_id() -> None:
    uri = run_folder("backup-bucket", "s3_backup", "manual__2024-06-01T12:00:00+00:00")
    assert uri == "s3://backup-bucket/_s3br/runs/s3_backup/manual__2024-06-01T12_00_00_00_00"
    bucket, key = split_s3_uri(uri)
    assert bucket == "backup-bucket"
    assert key.startswith(RUNS_PREFIX) and is_reserved(key)


@pytest.mark.parametrize("run_id", ["scheduled__2024-06-01T00:00:00+00:00", "a/b c?d#e", "ok-run_1.2"])
def test_run_folder_leaves_one_safe_path_segment(run_id: str) -> None:
    segment = run_folder("b-1", "dag", run_id).rsplit("/", 1)[1]
    assert len(segment) == len(run_id)
    assert all(c.isalnum() or c in "-_." for c in segment)
