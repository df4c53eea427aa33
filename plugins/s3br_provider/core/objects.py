"""What a listing says about one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
"""Storage classes whose objects must be restored (RestoreObject) before they can be read."""


@dataclass(slots=True)
class ObjectInfo:
    """One listed object. ``last_modified`` is seconds since the epoch (UTC); ``checksum`` the
    algorithm of its full-object checksum where the listing names one (``ChecksumAlgorithm``,
    unless ``ChecksumType`` says COMPOSITE)."""

    key: str
    size: int
    etag: str
    last_modified: float
    storage_class: str = "STANDARD"
    version_id: str | None = None
    tags: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    checksum: str | None = None

    @classmethod
    def from_listing(cls, item: dict[str, Any]) -> ObjectInfo:
        """Build from one ``Contents`` (or ``Versions``) entry of a boto3 listing."""
        return cls(
            key=item["Key"],
            size=int(item.get("Size", 0)),
            etag=item.get("ETag", "").strip('"'),
            last_modified=epoch_seconds(item["LastModified"]),
            storage_class=item.get("StorageClass") or "STANDARD",
            version_id=item.get("VersionId"),
            checksum=listed_checksum(item.get("ChecksumAlgorithm"), item.get("ChecksumType")),
        )

    @property
    def is_archived(self) -> bool:
        return self.storage_class in ARCHIVE_CLASSES

    def to_record(self) -> dict[str, Any]:
        """Return the compact JSON-able form written to manifests."""
        record: dict[str, Any] = {
            "k": self.key,
            "s": self.size,
            "e": self.etag,
            "m": self.last_modified,
        }
        if self.storage_class != "STANDARD":
            record["c"] = self.storage_class
        if self.version_id is not None:
            record["v"] = self.version_id
        if self.tags is not None:
            record["t"] = self.tags
        if self.extra:
            record["x"] = self.extra
        if self.checksum is not None:
            record["a"] = self.checksum
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ObjectInfo:
        return cls(
            key=record["k"],
            size=record["s"],
            etag=record["e"],
            last_modified=record["m"],
            storage_class=record.get("c", "STANDARD"),
            version_id=record.get("v"),
            tags=record.get("t"),
            extra=record.get("x", {}),
            checksum=record.get("a"),
        )


def listed_checksum(algorithms: list[str] | str | None, kind: str | None) -> str | None:
    """The full-object checksum algorithm a listing entry names, or None (none, or composite)."""
    if not algorithms or kind == "COMPOSITE":
        return None
    return algorithms if isinstance(algorithms, str) else algorithms[0]


def epoch_seconds(value: datetime | float | str) -> float:
    """Seconds since the epoch of a datetime (naive means UTC), an ISO 8601 string or a number."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return float(value)
