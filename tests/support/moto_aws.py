"""``python -m tests.support.moto_aws``: moto's S3 server, where it differs from AWS, made to
answer as AWS documents. The one place s3br copes with moto's quirks in what it reads.

- GetObjectTagging on an object in GLACIER or DEEP_ARCHIVE that is not restored: AWS answers
  with the tags ("GetObjectTagging ... works on archived objects": the S3 API reference lists no
  InvalidObjectState for it); moto refuses it with InvalidObjectState. A restore selects what to
  bring back by the tags, before it restores anything, so it needs AWS's answer.
- CopyObject into an Object Lock bucket with a retention (or one with a default retention):
  moto asks for Content-MD5 or x-amz-sdk-checksum-algorithm as it does for PutObject; AWS asks
  for them only where there is a body to check ("required for any request to upload an object
  with a retention period": PutObject, UploadPart). A copy has no body.
- CreateMultipartUpload with ``x-amz-object-lock-mode`` / ``-retain-until-date``: AWS gives the
  completed object that retention; moto drops the headers. The completed object gets them here.
- HeadObject with ``x-amz-checksum-mode: ENABLED``: AWS names the checksum's type
  (``x-amz-checksum-type`` FULL_OBJECT, as for any single-part object, or COMPOSITE) and gives
  a composite one as ``<base64>-<parts>``; moto names no type and drops the suffix (its
  GetObject has both), which would make a multipart copy's composite checksum look like a
  full-object one. Added here.
- SSE-C: AWS reads an object stored with a customer-provided key only with that key (GetObject,
  HeadObject and a copy's source: "The object was stored using a form of Server Side
  Encryption. The correct parameters must be provided to retrieve the object.", 400); moto
  ignores the key and serves the object to anyone. Such objects are refused here as AWS does.
- CopyObject with ``If-None-Match: *``: AWS copies "only if the object key name at the
  destination does not already exist", else 412 Precondition Failed; moto ignores the header on
  a copy (it honours it on PutObject and CompleteMultipartUpload) and overwrites. Refused here.
- ``S3BR_MOTO_REFUSED_CHECKSUMS=CRC64NVME`` (a test switch, not a quirk): copies that ask for
  these checksum algorithms are refused with 400 InvalidArgument, as by an endpoint that
  predates them.
- Not coped with: without awscrt installed, moto's CRC64NVME is a CRC32 under that name. Only
  moto computes it in the tests (for the source and the copies alike), so it compares alike.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from moto.s3 import notifications as s3_notifications
from moto.s3.exceptions import PreconditionFailed, S3ClientError
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.server import main
from moto.sqs.models import SQSBackend
from werkzeug.datastructures import Headers

_get_key = S3Response._get_key


def _get_key_as_aws(self: S3Response, validate_storage_class: bool = True) -> tuple:
    if self.method == "GET" and "tagging" in self.querystring:
        validate_storage_class = False
    return _get_key(self, validate_storage_class)


S3Response._get_key = _get_key_as_aws

_key_response_put = S3Response._key_response_put
_LOCK_CHECKED = ("Content-MD5", "x-amz-sdk-checksum-algorithm")


def _key_response_put_as_aws(self: S3Response, query: dict, key_name: str) -> Any:
    copies = "x-amz-copy-source" in self.headers and not query.get("uploadId")
    if copies and self.headers.get("If-None-Match") == "*" and not set(query) & {"tagging", "acl"}:
        if self.backend.get_object(self.bucket_name, key_name) is not None:
            raise PreconditionFailed("If-None-Match")
    if copies and not any(name in self.headers for name in _LOCK_CHECKED):
        # moto reads the request's headers for this check only: say a checksum was asked for.
        self.headers = Headers(self.headers)
        self.headers["x-amz-sdk-checksum-algorithm"] = "CRC32"
    return _key_response_put(self, query, key_name)


S3Response._key_response_put = _key_response_put_as_aws

_key_response_post = S3Response._key_response_post
_complete = S3Backend.complete_multipart_upload


def _key_response_post_as_aws(self: S3Response, request: Any, body: bytes, bucket: str, *rest: Any) -> Any:
    answer = _key_response_post(self, request, body, bucket, *rest)
    mode = request.headers.get("x-amz-object-lock-mode")
    until = request.headers.get("x-amz-object-lock-retain-until-date")
    text = answer[2] if isinstance(answer[2], str) else answer[2].decode(errors="replace")
    upload = re.search(r"<UploadId>([^<]+)</UploadId>", text)
    if mode and until and upload:
        self.backend.get_bucket(bucket).multiparts[upload.group(1)].s3br_lock = (mode, until)
    return answer


def _complete_as_aws(self: S3Backend, bucket_name: str, multipart_id: str, body: Any) -> Any:
    lock = getattr(self.get_bucket(bucket_name).multiparts.get(multipart_id), "s3br_lock", None)
    key = _complete(self, bucket_name, multipart_id, body)
    if key is not None and lock is not None:
        key.lock_mode, key.lock_until = lock
    return key


S3Response._key_response_post = _key_response_post_as_aws
S3Backend.complete_multipart_upload = _complete_as_aws


_key_response = S3Response._key_response
_SSE_C_ALGORITHM = "x-amz-server-side-encryption-customer-algorithm"
_SSE_C_MD5 = "x-amz-server-side-encryption-customer-key-MD5"
_COPY_SSE_C_MD5 = "x-amz-copy-source-server-side-encryption-customer-key-MD5"
_KEYLESS_READS = frozenset({"tagging", "acl", "uploadId", "retention", "legal-hold"})
_REFUSED_CHECKSUMS = frozenset(
    filter(None, os.environ.get("S3BR_MOTO_REFUSED_CHECKSUMS", "").upper().split(","))
)
_SSE_C_REFUSAL = (
    "The object was stored using a form of Server Side Encryption. "
    "The correct parameters must be provided to retrieve the object."
)


def _require_customer_key(
    backend: S3Backend, bucket: str, key: str, version: str | None, md5: str | None
) -> None:
    try:
        stored = backend.get_object(bucket, key, version_id=version)
    except S3ClientError:
        return
    wanted = getattr(stored, "s3br_customer_key_md5", None)
    if wanted is not None and md5 != wanted:
        raise S3ClientError("InvalidRequest", _SSE_C_REFUSAL)


def _key_response_as_aws(self: S3Response, request: Any, full_url: str) -> Any:
    method, headers = request.method, request.headers
    query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
    bucket, key = self.parse_bucket_name_from_url(request, full_url), self.parse_key_name()
    version = query.get("versionId", [None])[0]
    copy_source = headers.get("x-amz-copy-source")
    checksum = (headers.get("x-amz-checksum-algorithm") or "").upper()
    starts_copy = (method == "PUT" and copy_source and "uploadId" not in query) or "uploads" in query
    if checksum in _REFUSED_CHECKSUMS and starts_copy:
        raise S3ClientError("InvalidArgument", f"Checksum algorithm {checksum} is not supported")
    if method == "PUT" and copy_source:
        source = urlparse(copy_source)
        src_bucket, src_key = unquote(source.path).lstrip("/").split("/", 1)
        src_version = parse_qs(source.query).get("versionId", [None])[0]
        _require_customer_key(self.backend, src_bucket, src_key, src_version, headers.get(_COPY_SSE_C_MD5))
    elif method in ("GET", "HEAD") and not _KEYLESS_READS & set(query):
        _require_customer_key(self.backend, bucket, key, version, headers.get(_SSE_C_MD5))
    answer = _key_response(self, request, full_url)
    if method == "PUT" and not copy_source and not query and headers.get(_SSE_C_ALGORITHM):
        self.backend.get_object(bucket, key).s3br_customer_key_md5 = headers.get(_SSE_C_MD5)
    if method == "HEAD" and headers.get("x-amz-checksum-mode") == "ENABLED" and answer[0] == 200:
        stored = self.backend.get_object(bucket, key, version_id=version)
        kind = getattr(stored, "checksum_type", None) or "FULL_OBJECT"  # a single-part object's
        name = f"x-amz-checksum-{(getattr(stored, 'checksum_algorithm', None) or '').lower()}"
        if kind and name in answer[1]:
            answer[1]["x-amz-checksum-type"] = kind
            if kind == "COMPOSITE":
                answer[1][name] = f"{stored.checksum_value}-{stored.checksum_parts}"
    return answer


S3Response._key_response = _key_response_as_aws


# S3 event notifications into SQS (continuous backup) -------------------------------------------
# - moto sends s3:ObjectTagging:Put for every PutObject, CopyObject and CompleteMultipartUpload
#   (it sets their tags through the same backend method); AWS sends it for PutObjectTagging
#   requests only ("s3:ObjectTagging:Put ... when an object tag is added or updated"). Only the
#   PutObjectTagging request notifies here.
# - DeleteObject in a versioned bucket: AWS sends s3:ObjectRemoved:DeleteMarkerCreated for a
#   delete that leaves a delete marker and s3:ObjectRemoved:Delete for the removal of one version;
#   moto sends nothing, or an ObjectRemoved:Delete once the key's last version is gone. Sent here
#   as AWS does (still in moto's record format: no versionId, no sequencer).
# - Not a difference of answers, of cost: moto's ReceiveMessage computes every attribute of the
#   queue (counting all its messages) for each message it hands out, so one receive from a
#   queue of n messages costs O(n) attribute scans; the retention check reads the one
#   attribute it needs here.
_tagging_request = threading.local()
_versioned_delete = threading.local()
_delete_object = S3Backend.delete_object
_EVENTS = s3_notifications.S3NotificationEvent
_send_event = s3_notifications.send_event
_put_object_tagging_request = S3Response.put_object_tagging


def _send_event_as_aws(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
    tagging = event_name == s3_notifications.S3NotificationEvent.OBJECT_TAGGING_PUT_EVENT
    if tagging and not getattr(_tagging_request, "active", False):
        return
    if event_name == _EVENTS.OBJECT_REMOVED_DELETE_EVENT and getattr(_versioned_delete, "active", False):
        return
    _send_event(account_id, event_name, bucket, key)


def _delete_object_as_aws(
    self: S3Backend, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
) -> Any:
    bucket = self.get_bucket(bucket_name)
    if not bucket.is_versioned:
        return _delete_object(self, bucket_name, key_name, version_id, bypass)
    _versioned_delete.active = True
    try:
        deleted, meta = _delete_object(self, bucket_name, key_name, version_id, bypass)
    finally:
        _versioned_delete.active = False
    if deleted:
        event = (
            _EVENTS.OBJECT_REMOVED_DELETE_EVENT
            if version_id
            else _EVENTS.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT
        )
        removed = SimpleNamespace(name=key_name, size=0, etag="", version_id=meta.get("version-id"))
        _send_event(self.account_id, event, bucket, removed)
    return deleted, meta


def _put_object_tagging_request_as_aws(self: S3Response) -> Any:
    _tagging_request.active = True
    try:
        return _put_object_tagging_request(self)
    finally:
        _tagging_request.active = False


def _retained(self: SQSBackend, queue_name: str, message: Any) -> bool:
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > time.time()


s3_notifications.send_event = _send_event_as_aws
S3Response.put_object_tagging = _put_object_tagging_request_as_aws
S3Backend.delete_object = _delete_object_as_aws
SQSBackend.is_message_valid_based_on_retention_period = _retained


def server_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that runs this server: the file itself, so it needs no working directory."""
    return [sys.executable, str(Path(__file__).resolve()), "-H", host, "-p", str(port)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
