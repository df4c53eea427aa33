"""Read one ListObjectsV2 response page (XML) into ObjectInfo, with expat and nothing else.

botocore parses a page of 1,000 keys through its shape model, field by field; a diff of a
large bucket parses thousands of pages, so this reads the few fields a backup needs directly.
Keys are decoded as botocore decodes them: only when the response says ``EncodingType`` url.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from s3br_provider.core.objects import ObjectInfo, epoch_seconds, listed_checksum


class ListPage(NamedTuple):
    objects: list[ObjectInfo]
    next_token: str | None
    """The continuation token of the next page; None on the last page."""


def parse_list_page(body: bytes) -> ListPage:
    """Return the objects (in the order listed) and the continuation token of a page."""
    root = ElementTree.fromstring(body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{ns}ListBucketResult":
        raise ValueError(f"not a ListObjectsV2 response: <{root.tag}>")
    url_encoded = root.findtext(f"{ns}EncodingType") == "url"
    key_tag, size_tag, etag_tag = f"{ns}Key", f"{ns}Size", f"{ns}ETag"
    modified_tag, class_tag = f"{ns}LastModified", f"{ns}StorageClass"
    checksum_tag, checksum_type_tag = f"{ns}ChecksumAlgorithm", f"{ns}ChecksumType"
    objects = []
    for item in root.iterfind(f"{ns}Contents"):
        key = item.findtext(key_tag) or ""
        objects.append(
            ObjectInfo(
                unquote_plus(key) if url_encoded else key,
                int(item.findtext(size_tag) or 0),
                (item.findtext(etag_tag) or "").strip('"'),
                epoch_seconds(item.findtext(modified_tag) or ""),
                item.findtext(class_tag) or "STANDARD",
                checksum=listed_checksum(item.findtext(checksum_tag), item.findtext(checksum_type_tag)),
            )
        )
    truncated = (root.findtext(f"{ns}IsTruncated") or "").strip().lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    if truncated and not token:
        raise ValueError("a truncated listing page without NextContinuationToken")
    return ListPage(objects, token)
