from __future__ import annotations

import pytest

from s3br_provider.core.fingerprints import (
    content_differs,
    etag_is_md5,
    full_object_checksums,
    source_checksum_to_keep,
)
from s3br_provider.core.list_page import parse_list_page
from s3br_provider.core.objects import ObjectInfo, listed_checksum
from s3br_provider.core.s3_errors import (
    CUSTOMER_KEY_REASON,
    CUSTOMER_KEY_REQUIRED,
    KMS_REASON,
    lasting_failure_reason,
    needs_customer_key,
    refuses_checksum,
)

MD5 = '"5d41402abc4b2a76b9719d911017c592"'
SSE_C_MESSAGE = (
    "The object was stored using a form of Server Side Encryption. "
    "The correct parameters must be provided to retrieve the object."
)


def test_full_object_checksums_leave_out_composite_ones() -> None:
    head = {"ChecksumCRC32": "NhCmhg==", "ChecksumType": "FULL_OBJECT"}
    assert full_object_checksums(head) == {"CRC32": "NhCmhg=="}
    assert full_object_checksums({"ChecksumCRC32C": "41AYRQ==-3", "ChecksumType": "COMPOSITE"}) == {}
    assert full_object_checksums({"ChecksumSHA256": "abc=-2"}) == {}  # no type named: read the value
    assert full_object_checksums({"ChecksumSHA1": "abc="}) == {"SHA1": "abc="}
    assert full_object_checksums({"ETag": MD5}) == {}


@pytest.mark.parametrize(
    ("head", "md5"),
    [
        ({"ETag": MD5}, True),
        ({"ETag": MD5, "ServerSideEncryption": "AES256"}, True),
        ({"ETag": MD5, "ServerSideEncryption": "aws:kms"}, False),
        ({"ETag": MD5, "ServerSideEncryption": "aws:kms:dsse"}, False),
        ({"ETag": MD5, "SSECustomerAlgorithm": "AES256"}, False),
        ({"ETag": '"9b2cf535f27731c974343645a3985328-12"'}, False),
        ({}, False),
    ],
    ids=["plain", "sse-s3", "sse-kms", "dsse-kms", "sse-c", "multipart", "none"],
)
def test_an_etag_is_an_md5_only_single_part_without_kms_or_sse_c(head: dict, md5: bool) -> None:
    assert etag_is_md5(head) is md5


def test_the_first_shared_full_object_checksum_decides() -> None:
    source = {"ChecksumCRC32": "aaaa", "ETag": MD5}
    assert content_differs(source, {"ChecksumCRC32": "aaaa", "ETag": '"other"'}) is False
    assert content_differs(source, {"ChecksumCRC32": "bbbb", "ETag": MD5}) is True


def test_without_a_shared_checksum_md5_etags_decide_else_nothing_does() -> None:
    crc64 = {"ChecksumCRC64NVME": "cccc", "ChecksumType": "FULL_OBJECT"}
    assert content_differs({"ChecksumCRC32": "aaaa", "ETag": MD5}, {**crc64, "ETag": MD5}) is False
    assert content_differs({"ETag": MD5}, {**crc64, "ETag": '"0cc175b9c0f1b6a831c399e269772661"'}) is True
    kms = {"ETag": '"random"', "ServerSideEncryption": "aws:kms"}
    assert content_differs({"ETag": MD5}, kms) is None
    assert content_differs({"ETag": '"a-2"'}, {"ETag": '"b-3"'}) is None
    composite = {"ChecksumCRC32C": "x==-2", "ChecksumType": "COMPOSITE", "ETag": '"a-2"'}
    assert content_differs({"ChecksumCRC32C": "y==", "ETag": MD5}, composite) is None


def test_an_sse_c_refusal_is_known_on_every_copy_path() -> None:
    assert needs_customer_key(400, "InvalidRequest", SSE_C_MESSAGE, "CopyObject")
    assert needs_customer_key(400, "400", "Bad Request", "HeadObject")  # s3transfer's head
    assert not needs_customer_key(400, "400", "Bad Request", "CopyObject")
    assert not needs_customer_key(400, "InvalidRequest", "Found unsupported HTTP method", "CopyObject")
    assert not needs_customer_key(403, "AccessDenied", "Access Denied", "HeadObject")


def test_a_refused_checksum_algorithm_is_known() -> None:
    assert refuses_checksum(400, "InvalidArgument", "Invalid checksum algorithm CRC64NVME")
    assert refuses_checksum(501, "NotImplemented", "x-amz-checksum-algorithm is not implemented")
    assert not refuses_checksum(400, "InvalidArgument", "Invalid storage class")
    assert not refuses_checksum(503, "SlowDown", "checksum")


def test_a_copy_keeps_the_source_algorithm_where_its_checksum_stays_full_object() -> None:
    assert source_checksum_to_keep("CRC32", multipart=False) == "CRC32"
    assert source_checksum_to_keep("SHA256", multipart=False) == "SHA256"
    assert source_checksum_to_keep("CRC32", multipart=True) is None  # its parts: composite
    assert source_checksum_to_keep("CRC64NVME", multipart=True) == "CRC64NVME"
    assert source_checksum_to_keep(None, multipart=False) is None
    assert source_checksum_to_keep("MD5", multipart=False) is None


def test_listings_name_the_full_object_algorithm() -> None:
    assert listed_checksum(["CRC32"], None) == "CRC32"
    assert listed_checksum(["CRC32C"], "FULL_OBJECT") == "CRC32C"
    assert listed_checksum(["CRC32C"], "COMPOSITE") is None
    assert listed_checksum(None, None) is None
    page = (
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated>'
        b"<Contents><Key>a</Key><Size>1</Size><ETag>&quot;e&quot;</ETag>"
        b"<LastModified>2026-01-01T00:00:00.000Z</LastModified><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
        b"<ChecksumType>FULL_OBJECT</ChecksumType></Contents>"
        b"<Contents><Key>b</Key><Size>1</Size><ETag>&quot;e-2&quot;</ETag>"
        b"<LastModified>2026-01-01T00:00:00.000Z</LastModified><ChecksumAlgorithm>SHA1</ChecksumAlgorithm>"
        b"<ChecksumType>COMPOSITE</ChecksumType></Contents></ListBucketResult>"
    )
    first, second = parse_list_page(page).objects
    assert (first.checksum, second.checksum) == ("CRC32", None)
    assert ObjectInfo.from_record(first.to_record()).checksum == "CRC32"


def test_lasting_failures_have_a_reason_and_transient_ones_none() -> None:
    assert lasting_failure_reason(CUSTOMER_KEY_REQUIRED) == CUSTOMER_KEY_REASON
    assert lasting_failure_reason("KMS.NotFoundException") == KMS_REASON
    assert lasting_failure_reason("KMS.DisabledException") == KMS_REASON
    assert lasting_failure_reason("KMS.ThrottlingException") is None
    assert lasting_failure_reason("AccessDenied") is None  # a policy may be mended before a retry
    assert lasting_failure_reason("SlowDown") is None
