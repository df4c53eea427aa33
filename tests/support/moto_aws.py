"""``python -m tests.support.moto_aws``: moto's S3 server, where it differs from AWS, made to
answer as AWS documents. The one place s3br copes with moto's quirks in what it reads.

- GetObjectTagging on an object in GLACIER or DEEP_ARCHIVE that is not restored: AWS answers
  with the tags ("GetObjectTagging ... works on archived objects": the S3 API reference lists no
  InvalidObjectState for it); moto refuses it with InvalidObjectState. A restore selects what to
  bring back by the tags, before it restores anything, so it needs AWS's answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

from moto.s3.responses import S3Response
from moto.server import main

_get_key = S3Response._get_key


def _get_key_as_aws(self: S3Response, validate_storage_class: bool = True) -> tuple:
    if self.method == "GET" and "tagging" in self.querystring:
        validate_storage_class = False
    return _get_key(self, validate_storage_class)


S3Response._get_key = _get_key_as_aws


def server_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that runs this server: the file itself, so it needs no working directory."""
    return [sys.executable, str(Path(__file__).resolve()), "-H", host, "-p", str(port)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
