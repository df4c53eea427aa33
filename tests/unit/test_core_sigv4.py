"""core.sigv4 signs exactly as botocore's S3SigV4Auth does (botocore is the reference here)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from s3br_provider.core.sigv4 import EMPTY_SHA256, Credentials, canonical_query, sign, signing_key

NOW = datetime(2026, 11, 28, 21, 5, 9, tzinfo=UTC)
KEYS = ["plain/key.bin", "space and+plus %.txt", "ünï/😀/é", "a/./b/../c", "x//y", "~tilde/(paren)*!'"]


def botocore_signed(
    host: str,
    path: str,
    headers: dict[str, str],
    creds: Credentials,
    region: str,
    method: str = "PUT",
    query: str = "",
) -> dict:
    url = f"http://{host}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=b"" if method == "PUT" else None)
    signer = botocore_auth.S3SigV4Auth(BotocoreCredentials(*creds), "s3", region)
    original = botocore_auth.get_current_datetime
    botocore_auth.get_current_datetime = lambda: NOW.replace(tzinfo=None)
    try:
        signer.add_auth(request)
    finally:
        botocore_auth.get_current_datetime = original
    return {name.lower(): value for name, value in request.headers.items()}


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("token", [None, "session//token+="])
@pytest.mark.parametrize("host", ["127.0.0.1:9000", "bucket-1.s3.eu-west-1.amazonaws.com"])
def test_signature_matches_botocore(key: str, token: str | None, host: str) -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    path = "/bucket-1/" + quote(key, safe="/~")
    headers = {
        "x-amz-copy-source": quote(f"src/{key}", safe="-._~/"),
        "x-amz-metadata-directive": "COPY",
        "x-amz-tagging-directive": "REPLACE",
        "x-amz-tagging": "team=blue&note=a+b%2Bc",
        "x-amz-storage-class": "STANDARD_IA",
    }

    ours = sign("PUT", host, path, headers, creds, "eu-west-1", NOW)
    reference = botocore_signed(host, path, {**headers, "host": host}, creds, "eu-west-1")

    assert ours["authorization"] == reference["authorization"]
    assert ours["x-amz-date"] == reference["x-amz-date"] == "20261128T210509Z"
    assert ours["x-amz-content-sha256"] == EMPTY_SHA256
    assert ours.get("x-amz-security-token") == token


def test_signing_key_depends_on_every_input() -> None:
    keys = {
        signing_key("secret", "20261128", "us-east-1"),
        signing_key("secret2", "20261128", "us-east-1"),
        signing_key("secret", "20261129", "us-east-1"),
        signing_key("secret", "20261128", "eu-west-1"),
    }
    assert len(keys) == 4


@pytest.mark.parametrize("prefix", ["", "photos/2026 11/", "ünï+code/😀", "a&b=c?d"])
@pytest.mark.parametrize("start_after", [None, "photos/x y+z", "_s3br/\U0010ffff"])
def test_listing_signature_with_a_query_matches_botocore(prefix: str, start_after: str | None) -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    params = {"list-type": "2", "encoding-type": "url", "prefix": prefix}
    if start_after is not None:
        params["start-after"] = start_after
    query = canonical_query(params)

    ours = sign("GET", "127.0.0.1:9000", "/bucket-1", {}, creds, "us-east-1", NOW, query=query)
    reference = botocore_signed(
        "127.0.0.1:9000",
        "/bucket-1",
        {"host": "127.0.0.1:9000"},
        creds,
        "us-east-1",
        method="GET",
        query=query,
    )

    assert ours["authorization"] == reference["authorization"]


def test_canonical_query_sorts_and_encodes() -> None:
    assert canonical_query({"prefix": "a b+c/é", "list-type": "2", "start-after": "x~y_z.-"}) == (
        "list-type=2&prefix=a%20b%2Bc%2F%C3%A9&start-after=x~y_z.-"
    )
