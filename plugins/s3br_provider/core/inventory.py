"""S3 Inventory reports as a source listing: the manifest, the data files, the partitions.

AWS's layout (https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html):
an inventory configuration delivers into ``s3://DEST/PREFIX/SOURCE-BUCKET/CONFIG-ID/``; each
report is a folder ``YYYY-MM-DDTHH-MMZ/`` holding ``manifest.json`` (and ``manifest.checksum``,
its MD5), whose ``files`` name the data files (``data/<uuid>.csv.gz`` or ``.parquet``) with their
MD5. CSV data files have no header: the columns are ``fileSchema``'s, in order, values quoted,
keys URL-encoded. Parquet and ORC columns are the same fields in snake case
(``last_modified_date``), keys as they are.

Pure logic: no Airflow, no boto3; pyarrow is imported only to read Parquet.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from urllib.parse import unquote_plus

from s3br_provider.core.keys import is_reserved
from s3br_provider.core.objects import ObjectInfo, epoch_seconds
from s3br_provider.core.partitions import KeyRange

FORMATS = ("CSV", "Parquet", "ORC")
"""Data file formats read (Parquet and ORC with pyarrow)."""
REQUIRED_FIELDS = ("Key", "Size", "LastModifiedDate")
"""Fields without which a report cannot stand in for a listing (ETag, StorageClass: if present)."""
FOLDER = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d)-(\d\d)Z$")
"""A report's folder name: the time the inventory run started, UTC."""
PARQUET_BATCH_ROWS = 65_536
"""Rows of a Parquet file read at once (bounded memory)."""


class InventoryError(ValueError):
    """An inventory report that cannot stand in for the source's listing; the message says why."""


@dataclass(frozen=True, slots=True)
class DataFile:
    """One data file a manifest names."""

    key: str
    size: int
    md5: str


@dataclass(frozen=True, slots=True)
class InventoryManifest:
    """What a report's ``manifest.json`` says, and when the report's snapshot was taken."""

    source_bucket: str
    destination_bucket: str
    file_format: str
    fields: tuple[str, ...]
    files: tuple[DataFile, ...]
    created: datetime
    folder_time: datetime

    @property
    def snapshot(self) -> datetime:
        """The earlier of the report's folder time and its creation: objects written after this
        may be missing from the report."""
        return min(self.created, self.folder_time)


@dataclass(slots=True)
class ReadCounts:
    """What reading a report's data files found."""

    files: int = 0
    rows: int = 0
    kept: int = 0
    not_latest: int = 0
    delete_markers: int = 0
    outside_prefix: int = 0
    reserved: list[str] = field(default_factory=list)


def split_inventory_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` as ``("bucket", "a/b/")`` (the folder ends in ``/``)."""
    if not uri.startswith("s3://"):
        raise InventoryError(f"inventory_uri {uri!r} is not an s3:// URI")
    bucket, _, folder = uri[len("s3://") :].partition("/")
    return bucket, folder.rstrip("/") + "/"


def folder_time(name: str) -> datetime | None:
    """The time of a report folder's name (``2026-11-30T00-00Z``), or None for another name."""
    match = FOLDER.fullmatch(name.strip("/"))
    if match is None:
        return None
    year, month, day, hour, minute = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None


def report_folders(names: Iterable[str]) -> list[str]:
    """The names that are report folders, latest first (``hive/``, ``data/`` left out)."""
    timed = [(when, name.strip("/")) for name in names if (when := folder_time(name)) is not None]
    return [name for _, name in sorted(timed, reverse=True)]


def schema_fields(file_format: str, schema: str) -> tuple[str, ...]:
    """The field names of ``fileSchema``, in CSV's names: CSV's comma list in order; for Parquet
    (``message s3.inventory { required binary key (STRING); ... }``) and ORC
    (``struct<bucket:string,key:string,...>``), the known columns the schema names, whatever its
    exact notation (the data files' own columns are what is read)."""
    if file_format in ("Parquet", "ORC"):
        return tuple(name for name, column in _PARQUET_NAMES.items() if re.search(rf"\b{column}\b", schema))
    return tuple(part.strip() for part in schema.split(",") if part.strip())


_PARQUET_NAMES = {
    "Bucket": "bucket",
    "Key": "key",
    "VersionId": "version_id",
    "IsLatest": "is_latest",
    "IsDeleteMarker": "is_delete_marker",
    "Size": "size",
    "LastModifiedDate": "last_modified_date",
    "ETag": "e_tag",
    "StorageClass": "storage_class",
}
_CSV_NAMES = {parquet: name for name, parquet in _PARQUET_NAMES.items()}


def parse_manifest(body: bytes, folder: str, checksum: bytes | None = None) -> InventoryManifest:
    """Parse ``manifest.json`` of the report in ``folder`` (its name); with ``checksum`` (the
    body of ``manifest.checksum``), check the MD5 first."""
    if checksum is not None:
        expected = checksum.decode("ascii", "replace").strip().split()[0].lower() if checksum.strip() else ""
        if hashlib.md5(body).hexdigest() != expected:
            raise InventoryError(f"manifest.json of {folder} does not match manifest.checksum")
    when = folder_time(folder.rstrip("/").rsplit("/", 1)[-1])
    if when is None:
        raise InventoryError(f"{folder!r} is not an inventory report folder (YYYY-MM-DDTHH-MMZ)")
    try:
        data = json.loads(body)
        file_format = str(data["fileFormat"])
        created = datetime.fromtimestamp(int(data["creationTimestamp"]) / 1000, UTC)
        files = tuple(
            DataFile(str(f["key"]), int(f.get("size", 0)), str(f["MD5checksum"]).lower())
            for f in data["files"]
        )
        fields = schema_fields(file_format, str(data["fileSchema"]))
        source = str(data["sourceBucket"])
        destination = str(data.get("destinationBucket", "")).removeprefix("arn:aws:s3:::")
    except (ValueError, KeyError, TypeError) as error:
        raise InventoryError(
            f"manifest.json of {folder} is not an S3 Inventory manifest: {error!r}"
        ) from None
    return InventoryManifest(source, destination, file_format, fields, files, created, when)


def check_manifest(
    manifest: InventoryManifest, *, source_bucket: str, max_age_hours: int, now: datetime
) -> None:
    """Raise ``InventoryError`` unless the report is of ``source_bucket``, younger than
    ``max_age_hours``, in a format read here, with the required fields."""
    if manifest.source_bucket != source_bucket:
        raise InventoryError(
            f"the inventory report is of bucket {manifest.source_bucket!r}, not of source_bucket "
            f"{source_bucket!r}"
        )
    age = now - manifest.snapshot
    if age > timedelta(hours=max_age_hours):
        hours = age.total_seconds() / 3600
        raise InventoryError(
            f"the latest inventory report ({iso_minute(manifest.snapshot)}) is {hours:.0f} hours old, "
            f"older than inventory_max_age_hours {max_age_hours}: is the inventory configuration "
            "still delivering? (daily reports arrive up to 48 hours apart)"
        )
    if manifest.file_format not in FORMATS:
        raise InventoryError(
            f"the inventory report's format is {manifest.file_format}; s3br reads "
            f"{', '.join(FORMATS)}: change the inventory configuration's output format"
        )
    missing = [name for name in REQUIRED_FIELDS if name not in manifest.fields]
    if missing:
        raise InventoryError(
            f"the inventory report lacks the field(s) {', '.join(missing)}: add them to the "
            "inventory configuration's optional fields (Size, Last modified date, ETag, Storage class)"
        )


def check_configuration(config: dict[str, Any], *, config_id: str, prefix: str, destination: str) -> None:
    """Raise unless the inventory configuration (GetBucketInventoryConfiguration's
    ``InventoryConfiguration``) reports into ``destination`` and covers every key under
    ``prefix``: a key it leaves out would look deleted to the backup."""
    target = config.get("Destination", {}).get("S3BucketDestination", {}).get("Bucket", "")
    if target.removeprefix("arn:aws:s3:::") != destination:
        raise InventoryError(
            f"inventory configuration {config_id!r} delivers into {target or 'no bucket'}, not into "
            f"inventory_uri's bucket {destination!r}"
        )
    covered = (config.get("Filter") or {}).get("Prefix") or ""
    if not prefix.startswith(covered):
        raise InventoryError(
            f"inventory configuration {config_id!r} lists only keys under {covered!r}, and prefix "
            f"{prefix!r} reaches beyond it (keys it leaves out would look deleted): set prefix "
            "under it, or widen the configuration's filter"
        )


def iso_minute(when: datetime) -> str:
    """``2026-11-30T00:00Z``: how the report names a snapshot."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def inventory_minute(snapshot: str) -> str:
    """An ISO-8601 snapshot (a plan's ``inventory_snapshot``) as ``iso_minute`` shows it."""
    return iso_minute(datetime.fromisoformat(snapshot.replace("Z", "+00:00")))


def check_md5(path: str, data_file: DataFile) -> None:
    """Raise unless the downloaded data file at ``path`` has the MD5 its manifest gives."""
    if file_md5(path) != data_file.md5:
        raise InventoryError(
            f"inventory data file {data_file.key} does not match the MD5 in manifest.json "
            "(damaged or replaced): run again after the next delivery"
        )


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _row_object(row: dict[str, Any], counts: ReadCounts, prefix: str) -> ObjectInfo | None:
    """One row as an object to back up, or None (an older version, a delete marker, a key
    outside ``prefix`` or in the reserved prefix)."""
    counts.rows += 1
    if _flag(row.get("IsLatest")) is False:
        counts.not_latest += 1
        return None
    if _flag(row.get("IsDeleteMarker")):
        counts.delete_markers += 1
        return None
    key = row["Key"]
    if not key.startswith(prefix):
        counts.outside_prefix += 1
        return None
    if is_reserved(key):
        if len(counts.reserved) < 5:
            counts.reserved.append(key)
        return None
    counts.kept += 1
    modified = row["LastModifiedDate"]
    return ObjectInfo(
        key=key,
        size=int(row.get("Size") or 0),
        etag=str(row.get("ETag") or "").strip('"'),
        last_modified=modified.timestamp() if isinstance(modified, datetime) else epoch_seconds(modified),
        storage_class=row.get("StorageClass") or "STANDARD",
    )


def csv_objects(
    stream: IO[bytes], fields: tuple[str, ...], counts: ReadCounts, prefix: str
) -> Iterator[ObjectInfo]:
    """The objects of one gzip CSV data file (no header; ``fields`` in order; keys URL-encoded,
    decoded with ``unquote_plus``: S3 encodes a space as ``+`` and a ``+`` as ``%2B``)."""
    text = io.TextIOWrapper(gzip.GzipFile(fileobj=stream, mode="rb"), encoding="utf-8", newline="")
    for values in csv.reader(text):
        if not values:
            continue
        row = dict(zip(fields, values, strict=False))
        row["Key"] = unquote_plus(row["Key"])
        obj = _row_object(row, counts, prefix)
        if obj is not None:
            yield obj


def _columnar_rows(batches: Iterable[Any], counts: ReadCounts, prefix: str) -> Iterator[ObjectInfo]:
    """The objects of pyarrow record batches with AWS's snake-case columns."""
    for batch in batches:
        for values in batch.to_pylist():
            row = {_CSV_NAMES[name]: value for name, value in values.items() if name in _CSV_NAMES}
            modified = row.get("LastModifiedDate")
            if isinstance(modified, datetime) and modified.tzinfo is None:
                row["LastModifiedDate"] = modified.replace(tzinfo=UTC)
            obj = _row_object(row, counts, prefix)
            if obj is not None:
                yield obj


def orc_objects(
    stream: IO[bytes], fields: tuple[str, ...], counts: ReadCounts, prefix: str
) -> Iterator[ObjectInfo]:
    """The objects of one ORC data file, read a stripe at a time."""
    import pyarrow.orc as orc

    data = orc.ORCFile(stream)
    columns = _wanted(fields, data.schema.names)
    yield from _columnar_rows(
        (data.read_stripe(i, columns=columns) for i in range(data.nstripes)), counts, prefix
    )


def _wanted(fields: tuple[str, ...], present: Iterable[str]) -> list[str]:
    """The data file's columns to read: the known fields the manifest names, Bucket aside."""
    have = set(present)
    wanted = (_PARQUET_NAMES[name] for name in _PARQUET_NAMES if name in fields and name != "Bucket")
    return [column for column in wanted if column in have]


def parquet_objects(
    stream: IO[bytes], fields: tuple[str, ...], counts: ReadCounts, prefix: str
) -> Iterator[ObjectInfo]:
    """The objects of one Parquet data file, read a batch of rows at a time."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(stream)
    columns = _wanted(fields, parquet.schema_arrow.names)
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns)
    yield from _columnar_rows(batches, counts, prefix)


def data_file_objects(
    manifest: InventoryManifest, stream: IO[bytes], counts: ReadCounts, prefix: str
) -> Iterator[ObjectInfo]:
    """The objects of one data file of ``manifest``'s format."""
    readers = {"Parquet": parquet_objects, "ORC": orc_objects}
    reader = readers.get(manifest.file_format, csv_objects)
    counts.files += 1
    return reader(stream, manifest.fields, counts, prefix)


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """How a sorted report is cut: ``per_partition`` keys each, ``total`` keys in all."""

    total: int
    per_partition: int

    @property
    def partitions(self) -> int:
        return max(1, -(-self.total // self.per_partition))


def partition_size(total: int, target_keys: int, max_partitions: int) -> PartitionPlan:
    """About ``target_keys`` keys per partition, in at most ``max_partitions`` partitions."""
    return PartitionPlan(total, max(target_keys, -(-total // max(1, max_partitions)), 1))


def cut_sorted(
    objects: Iterable[ObjectInfo], per_partition: int, write: Callable[[int, ObjectInfo], None]
) -> list[KeyRange]:
    """Hand each of the sorted ``objects`` to ``write(partition index, object)``, ``per_partition``
    to a partition (a repeated key is dropped), and return the partitions' key ranges: they
    cover the whole key space, the first from -inf, the last to +inf."""
    last_keys: list[str] = []
    count, previous = 0, None
    for obj in objects:
        if obj.key == previous:
            continue
        if previous is not None and obj.key < previous:
            raise InventoryError(f"inventory keys out of order: {obj.key!r} after {previous!r}")
        if count == per_partition:
            last_keys.append(previous)  # type: ignore[arg-type]
            count = 0
        write(len(last_keys), obj)
        count, previous = count + 1, obj.key
    edges: list[str | None] = [None, *last_keys, None]
    return [KeyRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
