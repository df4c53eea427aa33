"""What a HeadObject (with checksum mode) tells of an object's content, and whether two objects
hold the same bytes: the rule of ``compare="checksum"`` and of ``verify_copies``.

S3 keeps one checksum per object. A full-object checksum (``ChecksumType`` ``FULL_OBJECT``)
depends on the bytes only; a composite one (``COMPOSITE``, its value ``<base64>-<parts>``) is
a checksum of the parts' checksums and depends on the part sizes too, so it is compared with
nothing. An ETag is an MD5 of the bytes only for a single-part object stored unencrypted or
under SSE-S3; under SSE-KMS, DSSE-KMS or SSE-C it is not (AWS: "Checking object integrity").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHECKSUM_ALGORITHMS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")
"""Every full-object checksum S3 keeps, in the order they are compared."""
COPY_CHECKSUM = "CRC64NVME"
"""What new copies ask S3 for: full-object also for multipart uploads."""
FALLBACK_COPY_CHECKSUM = "CRC32C"
"""What they ask for where an endpoint refuses CRC64NVME."""
_MD5_ENCRYPTIONS = (None, "", "AES256")


def full_object_checksums(head: Mapping[str, Any]) -> dict[str, str]:
    """``{algorithm: value}`` of the full-object checksums a HeadObject answer carries.

    An endpoint that names no ``ChecksumType`` is read by the value: a composite one ends in
    ``-<parts>`` (base64 has no ``-``).
    """
    kind = head.get("ChecksumType")
    found = {}
    for algorithm in CHECKSUM_ALGORITHMS:
        value = head.get(f"Checksum{algorithm}")
        if not value or kind == "COMPOSITE" or (kind is None and "-" in value):
            continue
        found[algorithm] = value
    return found


def etag_is_md5(head: Mapping[str, Any]) -> bool:
    """Whether the object's ETag is the MD5 of its bytes (single part, no KMS or SSE-C)."""
    etag = str(head.get("ETag", "")).strip('"')
    return (
        bool(etag)
        and "-" not in etag
        and head.get("ServerSideEncryption") in _MD5_ENCRYPTIONS
        and not head.get("SSECustomerAlgorithm")
    )


def content_differs(source: Mapping[str, Any], backup: Mapping[str, Any]) -> bool | None:
    """Whether two objects hold other bytes: by the first full-object checksum both carry, else
    by their ETags where both are MD5s; None when neither can tell (size and time decide)."""
    theirs, ours = full_object_checksums(source), full_object_checksums(backup)
    for algorithm in CHECKSUM_ALGORITHMS:
        if algorithm in theirs and algorithm in ours:
            return theirs[algorithm] != ours[algorithm]
    if etag_is_md5(source) and etag_is_md5(backup):
        return str(source["ETag"]).strip('"') != str(backup["ETag"]).strip('"')
    return None


def source_checksum_to_keep(listed: str | None, *, multipart: bool) -> str | None:
    """The algorithm a copy asks for so that it carries the source's own full-object checksum,
    comparable with it later: the listed one, but for a copy in parts only CRC64NVME (parts of
    the others make a composite checksum). None: ask for ``COPY_CHECKSUM``."""
    if listed not in CHECKSUM_ALGORITHMS or (multipart and listed != COPY_CHECKSUM):
        return None
    return listed
