from __future__ import annotations

from datetime import UTC, datetime

import pytest

from s3br_provider.core.list_page import parse_list_page

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def page(
    contents: str, *, truncated: bool = False, token: str | None = None, encoding: str | None = "url"
) -> bytes:
    extra = f"<EncodingType>{encoding}</EncodingType>" if encoding else ""
    extra += f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult {NS}><Name>b</Name><Prefix></Prefix>'
        f"<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>{extra}"
        f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{contents}</ListBucketResult>"
    ).encode()


def item(key: str, size: int = 3, etag: str = "&quot;abc&quot;", cls: str | None = "STANDARD") -> str:
    storage = f"<StorageClass>{cls}</StorageClass>" if cls else ""
    return (
        f"<Contents><Key>{key}</Key><LastModified>2026-11-28T21:05:09.123Z</LastModified>"
        f"<ETag>{etag}</ETag><Size>{size}</Size>{storage}</Contents>"
    )


def test_fields_are_read_and_url_encoded_keys_decoded() -> None:
    body = page(item("a%2Bb+c%20d/%C3%A9%F0%9F%98%80") + item("z&amp;", size=0, etag='"e-2"', cls="GLACIER"))

    objects, token = parse_list_page(body)

    assert token is None
    assert [o.key for o in objects] == ["a+b c d/é😀", "z&"]
    assert (objects[0].size, objects[0].etag, objects[0].storage_class) == (3, "abc", "STANDARD")
    assert objects[0].last_modified == datetime(2026, 11, 28, 21, 5, 9, 123000, tzinfo=UTC).timestamp()
    assert (objects[1].size, objects[1].etag, objects[1].storage_class) == (0, "e-2", "GLACIER")


def test_keys_are_left_alone_without_url_encoding() -> None:
    objects, _ = parse_list_page(page(item("a+b%20c"), encoding=None))
    assert [o.key for o in objects] == ["a+b%20c"]


def test_missing_storage_class_means_standard_and_empty_page_is_empty() -> None:
    assert parse_list_page(page(item("k", cls=None))).objects[0].storage_class == "STANDARD"
    assert parse_list_page(page("")) == ([], None)


def test_truncated_page_returns_its_token() -> None:
    assert parse_list_page(page(item("k"), truncated=True, token="1/abc==")).next_token == "1/abc=="
    with pytest.raises(ValueError, match="NextContinuationToken"):
        parse_list_page(page(item("k"), truncated=True))


def test_other_documents_are_refused() -> None:
    with pytest.raises(ValueError, match="not a ListObjectsV2 response"):
        parse_list_page(b"<Error><Code>AccessDenied</Code></Error>")
