"""AWS Signature Version 4 for S3 requests without a body (CopyObject, listings), in plain Python.

Botocore signs through its event system and request model; for a request sent tens of
thousands of times a run that machinery costs more CPU than the request itself. This signs
exactly what the S3 docs specify ("Authenticating Requests: Using the Authorization Header"),
for a body-less request with the payload hash of the empty string.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALGORITHM = "AWS4-HMAC-SHA256"


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None = None


@lru_cache(maxsize=16)
def signing_key(secret_key: str, day: str, region: str, service: str = "s3") -> bytes:
    """The derived key of one secret, day (``YYYYMMDD``), region and service."""
    key = hmac.new(f"AWS4{secret_key}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    credentials: Credentials,
    region: str,
    now: datetime,
    query: str = "",
) -> dict[str, str]:
    """Return ``headers`` plus host, date, payload hash, token and Authorization, all signed.

    ``path`` is the URI-encoded path exactly as sent (S3 does not encode it twice); header
    names must be lower case; ``query`` is the canonical query string (``canonical_query``),
    sent as it is. The request has no body.
    """
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    signed = {**headers, "host": host, "x-amz-date": stamp, "x-amz-content-sha256": EMPTY_SHA256}
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical_headers = "".join(f"{name}:{' '.join(signed[name].split())}\n" for name in names)
    signed_names = ";".join(names)
    canonical = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n{EMPTY_SHA256}"
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = signing_key(credentials.secret_key, stamp[:8], region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return signed


def canonical_query(params: dict[str, str]) -> str:
    """The query string as SigV4 wants it: names sorted, names and values percent-encoded
    except for unreserved characters. Sending it as it is keeps the signature valid."""
    return "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(params.items())
    )
