"""CopyObject and ListObjectsV2 without botocore's per-request machinery: the hot paths.

A copy is one body-less PUT. Through boto3 it costs 1.7-2.0 ms of client CPU (parameter
validation, event hooks, endpoint rules, user agent, response parsing); signed by botocore's
``S3SigV4Auth`` and sent on a urllib3 pool, 0.86-0.98 ms (32 threads against moto,
bench/results/transport.md), and on a machine where the copier shares the cores with other
work that is the difference between keeping up with s5cmd and not. A listing page of 1,000 keys
is one GET whose XML ``core.list_page`` reads directly: 17-22 ms of CPU instead of boto3's
90-106 ms.

Signing: botocore's maintained ``S3SigV4Auth`` signs every request. The hand-written signer
s3br used to ship (``core/sigv4.py``, 6 us a signature against botocore's 60 us) measured
0.79-0.89 ms per copy end to end, within the noise of botocore's 0.86-0.98 ms; awscrt's
(0.61-0.83 ms) is no dependency of s3br. Neither pays for a second SigV4 implementation.
On the event loop (``AsyncCopies``), where a copy costs less, the hand-written signer saved
0.067 of 0.477 ms per copy (14%, bench/results/copy-transport-signers.md): still not enough.

What botocore decides stays botocore's: the bucket's URL (path or virtual-hosted style, FIPS,
dual-stack, custom endpoints) and the signing region are read once per bucket from a URL it
presigns, credentials come from the same session (refreshed when they expire), certificates
from the same bundle, and the retry mode and attempts from the client's config. Errors become
``botocore.exceptions.ClientError`` with the S3 error code, so callers handle both paths alike.

Retries follow ``client.meta.config.retries``: in ``standard`` mode as botocore retries
(throttling codes, 5xx, request timeouts and dropped connections; truncated exponential backoff
with full jitter, at most 20 s; the same total attempts) but without its retry quota, which
only matters under sustained failure. ``legacy`` mode is treated the same way with legacy's
attempt count (botocore's legacy backoff is uncapped; this one stays capped). ``adaptive``
mode rate-limits on the client side, shared by all of a client's requests, so a direct path
beside it would escape the limiter: with ``adaptive`` there is no direct path at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, urlsplit

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError
from botocore.httpsession import get_cert_path
from botocore.utils import get_environ_proxies

from s3br_provider.core.list_page import ListPage, parse_list_page
from s3br_provider.core.s3_errors import RetryPolicy, S3Error, backoff_seconds, is_retryable, parse_error

log = logging.getLogger(__name__)
REGION_ERRORS = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
Signer = Callable[[str, str, dict[str, str], Any, str], dict[str, str]]
"""``(method, url, headers, frozen credentials, region)`` -> the headers to send, signed."""


def sign_with_botocore(
    method: str, url: str, headers: dict[str, str], credentials: Any, region: str
) -> dict[str, str]:
    """SigV4 for service ``s3`` by botocore's ``S3SigV4Auth``, payload hash of an empty body."""
    request = AWSRequest(method=method, url=url, headers=headers, data=b"")
    S3SigV4Auth(credentials, "s3", region).add_auth(request)
    return dict(request.headers.items())


def _environ_proxy(url: str) -> str | None:
    """The proxy botocore would send requests for ``url`` through, from the environment.

    Only the URL's scheme counts, as in botocore's ``proxy_url_for``: the environment scan
    takes any variable ending in ``_proxy`` (``AIRFLOW_CONN_MY_PROXY`` too) as a scheme's."""
    return get_environ_proxies(url).get(urlsplit(url).scheme)


def is_region_miss(status: int, code: str) -> bool:
    """Whether an answer says the bucket is in another region than the request was signed for."""
    return status in (301, 307) or code in REGION_ERRORS


def client_error(status: int, error: S3Error | None, operation: str, retries: int = 0) -> ClientError:
    """The ``ClientError`` boto3 would raise for this error answer."""
    return ClientError(
        {
            "Error": {
                "Code": error.code if error else str(status),
                "Message": error.message if error else "",
            },
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
        },
        operation,
    )


class NotDirectError(Exception):
    """botocore has to send this request: the direct path cannot address or sign it."""


class WrongRegionError(NotDirectError):
    """The bucket lives in another region than the client's: botocore's redirect handling
    (which learns the bucket's region) has to send this request."""


_CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class BucketAddress(NamedTuple):
    scheme: str
    host: str
    port: int | None
    netloc: str
    path: str
    region: str


def copy_source_header(bucket: str, key: str, version_id: str | None = None) -> str:
    """``x-amz-copy-source``, encoded as botocore encodes a ``CopySource`` dict."""
    value = quote(f"{bucket}/{key}", safe="-._~/")
    return f"{value}?versionId={version_id}" if version_id else value


def canonical_query(params: dict[str, str]) -> str:
    """The query string as SigV4 wants it (names sorted, all but unreserved characters
    percent-encoded), sent exactly as signed."""
    return "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(params.items())
    )


class DirectS3:
    """Send CopyObject and ListObjectsV2 requests for one boto3 S3 client. Thread-safe.

    :param client: the boto3 S3 client whose endpoint, region, TLS and retry settings apply.
    :param credentials: the botocore credentials of the client's session.
    :param pool_size: HTTP connections kept per host; at least the requests in flight.
    :param signer: signs each request; botocore's ``S3SigV4Auth`` unless a benchmark says else.
    """

    def __init__(
        self,
        client: Any,
        credentials: Any,
        *,
        pool_size: int,
        verify: bool | str | None,
        signer: Signer = sign_with_botocore,
    ) -> None:
        config = client.meta.config
        self._client = client
        self._credentials = credentials
        self._sign = signer
        self.retry = RetryPolicy.from_client_config(config.retries)
        self.verify = verify
        self.timeouts = (config.connect_timeout, config.read_timeout)
        tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"} if verify is False else {}
        if verify is not False:
            tls["ca_certs"] = get_cert_path(True if verify is None else verify)
        self._pools = urllib3.PoolManager(
            num_pools=16,
            maxsize=pool_size,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=config.connect_timeout, read=config.read_timeout),
            **tls,
        )
        self._addresses: dict[str, BucketAddress] = {}
        self._elsewhere: set[str] = set()  # buckets of another region: boto3's, from the first miss
        self._lock = threading.Lock()

    @classmethod
    def for_client(cls, client: Any, session: Any, *, pool_size: int, verify: Any) -> DirectS3 | None:
        """Return a sender, or None where the client needs what only botocore does (proxies,
        from its config or, as botocore reads them, from ``HTTPS_PROXY``/``HTTP_PROXY`` unless
        ``NO_PROXY`` exempts the endpoint; anonymous access; adaptive retries): the caller then
        sends through boto3."""
        config = client.meta.config
        if config.proxies or _environ_proxy(client.meta.endpoint_url):
            return None
        if RetryPolicy.from_client_config(config.retries).mode == "adaptive":
            return None
        credentials = session.get_credentials()
        if credentials is None:
            return None
        return cls(client, credentials, pool_size=pool_size, verify=verify)

    def address(self, bucket: str) -> BucketAddress:
        """Where requests for ``bucket`` go and which region signs them (asked of botocore once)."""
        with self._lock:
            found = self._addresses.get(bucket)
            if bucket in self._elsewhere:
                raise WrongRegionError(f"s3://{bucket} is in another region than the connection's")
        if found is not None:
            return found
        url = self._client.generate_presigned_url("head_bucket", Params={"Bucket": bucket}, ExpiresIn=60)
        parts = urlsplit(url)
        # A SigV4 presigned URL names its scope (KEY/day/region/service/aws4_request).
        credential = parse_qs(parts.query).get("X-Amz-Credential", [""])[0].split("/")
        if len(credential) == 5 and credential[3] != "s3":
            raise NotDirectError(f"s3://{bucket} is signed for {credential[3]}, not s3")
        region = credential[2] if len(credential) == 5 else self._client.meta.region_name or "us-east-1"
        found = BucketAddress(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port,
            netloc=parts.netloc,
            path=parts.path.rstrip("/"),
            region=region,
        )
        with self._lock:
            self._addresses[bucket] = found
        return found

    def signed_copy(self, bucket: str, key: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The URL and signed headers of a CopyObject, for a sender of its own (``AsyncCopies``)."""
        address, _, url, host = self._where(bucket, f"/{quote(key, safe='/~')}", {})
        return url, self._signed("PUT", url, headers, host, address.region)

    def copy(self, bucket: str, key: str, headers: dict[str, str]) -> None:
        """CopyObject: PUT ``bucket/key`` with ``headers`` (``x-amz-copy-source``, directives).

        CopyObject may answer 200 OK with an error in the body: that is an error too."""
        self._send("PUT", bucket, f"/{quote(key, safe='/~')}", {}, headers, "CopyObject", error_in_200=True)

    def list_page(self, bucket: str, prefix: str, start_after: str | None, token: str | None) -> ListPage:
        """ListObjectsV2: one page of up to 1,000 objects, keys URL-encoded on the wire."""
        params = {"list-type": "2", "encoding-type": "url", "prefix": prefix}
        if token is not None:
            params["continuation-token"] = token
        elif start_after is not None:
            params["start-after"] = start_after
        body = self._send("GET", bucket, "/", params, {}, "ListObjectsV2", error_in_200=False)
        return parse_list_page(body)

    def _send(
        self,
        method: str,
        bucket: str,
        key_path: str,
        params: dict[str, str],
        headers: dict[str, str],
        operation: str,
        *,
        error_in_200: bool,
    ) -> bytes:
        """Send one signed request, retrying as the client's retry config says; return the body."""
        address, target, url, host = self._where(bucket, key_path, params)
        pool = self._pools.connection_from_host(address.host, address.port, address.scheme)
        attempts = self.retry.total_attempts
        for attempt in range(1, attempts + 1):
            signed = self._signed(method, url, headers, host, address.region)
            try:
                response = pool.urlopen(
                    method,
                    target,
                    body=b"" if method == "PUT" else None,
                    headers=signed,
                    redirect=False,
                    assert_same_host=False,
                )
                status, body = response.status, response.data
            except _CONNECTION_ERRORS:
                if attempt == attempts:
                    raise
                time.sleep(backoff_seconds(attempt))
                continue
            error = parse_error(body) if status != 200 or error_in_200 else None
            if status == 200 and error is None:
                return body
            code = error.code if error else str(status)
            if is_region_miss(status, code):
                with self._lock:
                    self._elsewhere.add(bucket)  # one refused request per bucket, not per object
                log.info("s3://%s answered %s: its requests go through boto3 from now on", bucket, code)
                raise WrongRegionError(f"s3://{bucket} answered {code}: its region is not {address.region}")
            if attempt < attempts and is_retryable(status, code):
                time.sleep(backoff_seconds(attempt))
                continue
            raise client_error(status, error, operation, attempt - 1)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _where(
        self, bucket: str, key_path: str, params: dict[str, str]
    ) -> tuple[BucketAddress, str, str, str]:
        """``(address, path and query, full URL, Host header)`` of a request for ``bucket``."""
        address = self.address(bucket)
        path = address.path + key_path if key_path != "/" else address.path or "/"
        query = canonical_query(params)
        target = f"{path}?{query}" if query else path
        return address, target, f"{address.scheme}://{address.netloc}{target}", address.netloc

    def _signed(
        self, method: str, url: str, headers: dict[str, str], host: str, region: str
    ) -> dict[str, str]:
        credentials = self._credentials.get_frozen_credentials()
        return self._sign(method, url, {**headers, "host": host}, credentials, region)
