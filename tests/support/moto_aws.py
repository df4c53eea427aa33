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
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.server import main
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


def server_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that runs this server: the file itself, so it needs no working directory."""
    return [sys.executable, str(Path(__file__).resolve()), "-H", host, "-p", str(port)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
