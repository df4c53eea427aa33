"""Fault-injecting HTTP reverse proxy for S3 (standard library only).

Put it between a client (boto3, Airflow, the s3br operators...) and a moto
server to classify every request into the S3 operation name boto3 uses,
record it, and inject faults (throttling, 5xx, dropped connections, delays,
``200 OK`` with an embedded error) per operation, bucket and key::

    with running_moto_server() as moto, FaultProxy(moto) as proxy:
        proxy.set_faults([{"operation": "GetObject", "kind": "slowdown", "count": 2}])
        s3 = boto3.client("s3", endpoint_url=proxy.endpoint_url, ...)
        ...
        assert proxy.operations()["GetObject"] == 1

Command line (for other processes)::

    python -m tests.support.fault_proxy --upstream http://127.0.0.1:5000 \
        --port 0 --faults '[{"operation": "*", "kind": "internal", "rate": 0.1}]'

prints the proxy endpoint URL on its first stdout line and serves until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import fnmatch
import html
import http.client
import json
import random
import re
import shutil
import signal
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from xml.sax.saxutils import escape

#: Fault kinds that answer with an S3 error document: kind -> (status, code, message).
ERROR_KINDS: dict[str, tuple[int, str, str]] = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (
        500,
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    "access_denied": (403, "AccessDenied", "Access Denied"),
    "error_200": (
        200,
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
}
#: Every supported fault kind. ``short_page`` answers a ListObjectsV2 with only its first
#: ``keep`` keys, truncated, as AWS may ("the response might contain fewer keys"; a bucket of many
#: delete markers can answer none): its continuation token is the proxy's, resolved by it.
FAULT_KINDS = frozenset(ERROR_KINDS) | {"drop", "slow", "short_page"}
#: Continuation tokens of ``short_page`` answers: this, the last key given (base64url), ``.``, a
#: unique suffix.
SHORT_PAGE_TOKEN = "s3br-proxy-short:"

#: Operations that change state (used by :meth:`FaultProxy.writes`).
MUTATING_OPERATIONS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "UploadPartCopy",
        "UploadPart",
        "CreateMultipartUpload",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "PutObjectTagging",
        "DeleteObjectTagging",
        "DeleteObject",
        "DeleteObjects",
        "CreateBucket",
        "DeleteBucket",
        "PutBucketVersioning",
        "RestoreObject",
    }
)
_READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Head", "Select")
MOTO_API = "MotoApi"

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
_VERB = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}
_BUCKET_SUBRESOURCES = {
    "tagging": "BucketTagging",
    "versioning": "BucketVersioning",
    "location": "BucketLocation",
    "policy": "BucketPolicy",
    "acl": "BucketAcl",
    "cors": "BucketCors",
    "encryption": "BucketEncryption",
    "lifecycle": "BucketLifecycleConfiguration",
    "notification": "BucketNotificationConfiguration",
    "replication": "BucketReplication",
    "website": "BucketWebsite",
    "logging": "BucketLogging",
    "ownershipControls": "BucketOwnershipControls",
    "publicAccessBlock": "PublicAccessBlock",
    "object-lock": "ObjectLockConfiguration",
    "accelerate": "BucketAccelerateConfiguration",
    "requestPayment": "BucketRequestPayment",
    "inventory": "BucketInventoryConfiguration",
}
_OBJECT_SUBRESOURCES = {
    "tagging": "ObjectTagging",
    "acl": "ObjectAcl",
    "retention": "ObjectRetention",
    "legal-hold": "ObjectLegalHold",
    "attributes": "ObjectAttributes",
}
_CHUNK = 1024 * 1024

#: Request headers: ``http.server`` gives a case-insensitive ``Message``.
Headers = Mapping[str, str] | Message


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class RequestInfo:
    """What a request is, as far as S3 is concerned."""

    operation: str
    bucket: str | None = None
    key: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    copy_source: str | None = None
    headers: frozenset[str] = frozenset()
    """The request's header names, lower-case."""


@dataclass
class RequestRecord:
    """One request seen by the proxy.

    It is appended just before the reply goes out, so a client never sees a
    reply whose record is missing; ``ended`` is that moment (the body of a
    large GET is still streaming). ``status`` is None for dropped
    connections; ``forwarded`` is True when the request reached the upstream
    (including ``slow`` and ``short_page`` faults); ``copy_source`` is the URL-decoded
    ``x-amz-copy-source`` header; ``headers`` the request's header names, lower-case.
    """

    operation: str
    method: str
    bucket: str | None
    key: str | None
    query: dict[str, str]
    status: int | None
    faulted_kind: str | None
    started: float
    ended: float
    copy_source: str | None = None
    forwarded: bool = False
    headers: frozenset[str] = frozenset()


@dataclass
class FaultRule:
    """When and how to break a request.

    ``operation`` is a boto3 operation name or ``"*"``; ``bucket`` and
    ``key`` are exact names or ``fnmatch`` patterns (None matches all).
    The rule fires with probability ``rate``, at most ``count`` times, and
    not after the ``time.monotonic()`` deadline ``until``. ``delay`` is the
    sleep of the ``slow`` kind. ``fired`` counts how often it fired.
    ``unless_header`` spares requests that carry that header, as a bucket
    policy denying writes without ``x-amz-server-side-encryption`` does.
    ``keep`` is how many keys a ``short_page`` answer keeps.
    """

    kind: str
    operation: str = "*"
    bucket: str | None = None
    key: str | None = None
    rate: float = 1.0
    count: int | None = None
    until: float | None = None
    delay: float = 0.0
    unless_header: str | None = None
    keep: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {self.rate}")

    def active(self, now: float) -> bool:
        """True while the rule is neither spent nor expired."""
        spent = self.count is not None and self.fired >= self.count
        expired = self.until is not None and now >= self.until
        return not (spent or expired)

    def matches(self, info: RequestInfo) -> bool:
        """True if the rule targets this request (ignoring rate/count/until)."""
        return (
            self.operation in ("*", info.operation)
            and _name_matches(self.bucket, info.bucket)
            and _name_matches(self.key, info.key)
            and (self.unless_header is None or self.unless_header.lower() not in info.headers)
        )


def _name_matches(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    return value is not None and (value == pattern or fnmatch.fnmatchcase(value, pattern))


def is_mutating(operation: str, method: str) -> bool:
    """True for state-changing requests (known S3 writes or other PUT/POST/DELETE)."""
    if operation == MOTO_API:
        return False
    if operation in MUTATING_OPERATIONS:
        return True
    return method in ("PUT", "POST", "DELETE") and not operation.startswith(_READ_ONLY_PREFIXES)


# ------------------------------------------------------------------ classification


def classify(method: str, target: str, headers: Headers, body: bytes = b"") -> RequestInfo:
    """Name the AWS operation of a request (``target`` is path plus raw query)."""
    split = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    if split.path.startswith("/moto-api/"):
        return RequestInfo(MOTO_API, query=query)
    service = _signing_service(headers, query)
    if service not in (None, "s3") or "X-Amz-Target" in headers:
        operation = _non_s3_operation(split.path, headers, query, body)
        return RequestInfo(operation, query=query)
    bucket, key = _bucket_and_key(split.path, headers.get("Host", ""))
    copy_source = headers.get("x-amz-copy-source")
    if copy_source is not None:
        copy_source = urllib.parse.unquote(copy_source)
    if bucket is None:
        operation = "ListBuckets" if method == "GET" else "Other"
    elif key is None:
        operation = _bucket_operation(method, query)
    else:
        operation = _object_operation(method, query, copy_source is not None)
    names = frozenset(name.lower() for name in headers.keys())
    return RequestInfo(operation, bucket, key, query, copy_source, names)


def _signing_service(headers: Headers, query: Mapping[str, str]) -> str | None:
    """Service name from the SigV4 credential scope (header or presigned query)."""
    auth = headers.get("Authorization", "")
    credential = query.get("X-Amz-Credential", "")
    if "Credential=" in auth:
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
    parts = credential.split("/")
    return parts[3] if len(parts) >= 5 else None


def _non_s3_operation(path: str, headers: Headers, query: Mapping[str, str], body: bytes) -> str:
    """X-Amz-Target (JSON), /service/S/operation/Op (CBOR) or Action= (query)."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if "/operation/" in path:
        return path.rsplit("/operation/", 1)[1].strip("/") or "Other"
    if "Action" in query:
        return query["Action"]
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        return form.get("Action", ["Other"])[0]
    return "Other"


def _bucket_and_key(path: str, host: str) -> tuple[str | None, str | None]:
    """Split path-style (or ``bucket.localhost`` virtual-host) addressing."""
    hostname = host.rsplit(":", 1)[0]
    if hostname.endswith(".localhost"):
        key = urllib.parse.unquote(path[1:])
        return hostname[: -len(".localhost")], key or None
    bucket, slash, key = path[1:].partition("/")
    if not bucket:
        return None, None
    return urllib.parse.unquote(bucket), urllib.parse.unquote(key) if slash and key else None


def _bucket_operation(method: str, query: Mapping[str, str]) -> str:
    if method == "GET" and "versions" in query:
        return "ListObjectVersions"
    if method == "GET" and "uploads" in query:
        return "ListMultipartUploads"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "DELETE" and "lifecycle" in query:
        return "DeleteBucketLifecycle"
    for subresource, noun in _BUCKET_SUBRESOURCES.items():
        if subresource in query and method in _VERB:
            return _VERB[method] + noun
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method, "Other")


def _object_operation(method: str, query: Mapping[str, str], has_copy_source: bool) -> str:
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if has_copy_source else "UploadPart"
        multipart = {
            "GET": "ListParts",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
        }
        return multipart.get(method, "Other")
    if method == "POST":
        for subresource, operation in (
            ("uploads", "CreateMultipartUpload"),
            ("restore", "RestoreObject"),
            ("select", "SelectObjectContent"),
        ):
            if subresource in query:
                return operation
        return "Other"
    for subresource, noun in _OBJECT_SUBRESOURCES.items():
        if subresource in query and method in _VERB:
            return _VERB[method] + noun
    if method == "PUT":
        return "CopyObject" if has_copy_source else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "Other")


def error_xml(code: str, message: str, resource: str, request_id: str) -> bytes:
    """An S3-style ``<Error>`` document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId>"
        f"<HostId>fault-proxy/{request_id}</HostId></Error>"
    ).encode()


# --------------------------------------------------------------------------- proxy


class FaultProxy:
    """Reverse proxy in front of ``upstream`` that records and breaks S3 requests."""

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        upstream_timeout: float = 120.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream = upstream
        self._upstream_addr = (parsed.hostname, parsed.port or 80)
        self._upstream_timeout = upstream_timeout
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._records: list[RequestRecord] = []
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("proxy already started")
        self._server = _ProxyServer(self._bind, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open client connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_client_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running proxy."""
        if self._server is None:
            raise RuntimeError("proxy not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- faults

    def set_faults(
        self, rules: Iterable[FaultRule | Mapping[str, Any]], *, seed: int | None = None
    ) -> list[FaultRule]:
        """Replace all fault rules (first matching, firing rule wins).

        Rules are :class:`FaultRule` objects or dicts of its fields. Returns
        the installed rules, whose ``fired`` counters update live. ``seed``
        re-seeds the random generator behind ``rate``.
        """
        parsed = [r if isinstance(r, FaultRule) else FaultRule(**r) for r in rules]
        with self._lock:
            self._rules = parsed
            if seed is not None:
                self._rng.seed(seed)
        return parsed

    def clear_faults(self) -> None:
        """Remove all fault rules."""
        self.set_faults([])

    def pick_fault(self, info: RequestInfo) -> FaultRule | None:
        """Return the rule that fires for this request, if any (counts it)."""
        if info.operation == MOTO_API:
            return None
        with self._lock:
            now = time.monotonic()
            for rule in self._rules:
                if rule.active(now) and rule.matches(info) and self._rng.random() < rule.rate:
                    rule.fired += 1
                    return rule
        return None

    # -- records

    def add_record(self, record: RequestRecord) -> None:
        """Append a record (called by the request handler)."""
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        """Snapshot of all records, in completion order."""
        with self._lock:
            return list(self._records)

    def reset_records(self) -> None:
        """Forget all records."""
        with self._lock:
            self._records.clear()

    def operations(self) -> collections.Counter[str]:
        """Count of forwarded requests per operation (``MotoApi`` excluded)."""
        return collections.Counter(
            r.operation for r in self.records if r.forwarded and r.operation != MOTO_API
        )

    def writes(self) -> list[RequestRecord]:
        """Forwarded state-changing requests (see :func:`is_mutating`)."""
        return [r for r in self.records if r.forwarded and is_mutating(r.operation, r.method)]

    def faulted(self) -> list[RequestRecord]:
        """Requests a fault rule fired on (including ``slow``)."""
        return [r for r in self.records if r.faulted_kind is not None]

    def open_upstream(self) -> http.client.HTTPConnection:
        """A fresh connection to the upstream server."""
        host, port = self._upstream_addr
        return http.client.HTTPConnection(host, port, timeout=self._upstream_timeout)


# ------------------------------------------------------------------------- server


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._clients_lock:
            if alive:
                self._clients.add(sock)
            else:
                self._clients.discard(sock)

    def close_client_connections(self) -> None:
        with self._clients_lock:
            clients, self._clients = list(self._clients), set()
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer
    timeout = 300  # idle keep-alive connections are closed after this

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, alive=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""

    def handle_any(self) -> None:
        """Classify, maybe fault, forward; record before the client sees a reply."""
        started = time.monotonic()
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True  # unreadable body: give up on this connection
            return
        info = classify(self.command, self.path, self.headers, body)
        if info.operation == "ListObjectsV2":
            self.path = _resolve_short_page_token(self.path)
        rule = self.server.proxy.pick_fault(info)
        kind = rule.kind if rule else None
        try:
            if kind == "drop":
                self._record(info, started, None, kind)
                self.close_connection = True
            elif kind in ERROR_KINDS:
                self._record(info, started, ERROR_KINDS[kind][0], kind)
                self._send_error(kind, info)
            else:
                time.sleep(rule.delay if rule else 0)
                keep = rule.keep if kind == "short_page" and info.operation == "ListObjectsV2" else None
                self._forward(info, started, kind, body, keep)
        except (OSError, http.client.HTTPException):
            self.close_connection = True  # a peer went away mid-response

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = handle_any

    def _record(self, info: RequestInfo, started: float, status: int | None, kind: str | None) -> None:
        record = RequestRecord(
            **dataclasses.asdict(info),
            method=self.command,
            status=status,
            faulted_kind=kind,
            started=started,
            ended=time.monotonic(),
            forwarded=kind in (None, "slow", "short_page"),
        )
        self.server.proxy.add_record(record)

    def _read_body(self) -> bytes:
        """The whole request body, de-chunked if ``Transfer-Encoding: chunked``."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _send_error(self, kind: str, info: RequestInfo) -> None:
        status, code, message = ERROR_KINDS[kind]
        request_id = uuid.uuid4().hex[:16].upper()
        resource = "/" + "/".join(p for p in (info.bucket, info.key) if p)
        self._send_xml(status, error_xml(code, message, resource, request_id), request_id)

    def _send_xml(self, status: int, body: bytes, request_id: str) -> None:
        if self.command == "HEAD":
            body = b""  # S3 sends no body for HEAD errors
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Date", self.date_time_string())
        self.send_header("Server", "AmazonS3")
        self.end_headers()
        self.wfile.write(body)

    def _forward(
        self, info: RequestInfo, started: float, kind: str | None, body: bytes, keep: int | None = None
    ) -> None:
        """Send the request upstream unchanged and relay the response (``keep``: a listing
        answered with only that many of its keys, see ``short_page``)."""
        conn = self.server.proxy.open_upstream()
        try:
            response = self._call_upstream(conn, body)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._record(info, started, 502, kind)
            message = f"upstream failed: {exc!r}"
            self._send_xml(502, error_xml("BadGateway", message, self.path, "0"), "0")
            return
        try:
            self._record(info, started, response.status, kind)
            if keep is not None and response.status == 200:
                self._send_xml(200, _short_page(response.read(), keep, self.path), "short-page")
            else:
                self._relay(response)
        finally:
            conn.close()

    def _call_upstream(self, conn: http.client.HTTPConnection, body: bytes) -> http.client.HTTPResponse:
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                conn.putheader(name, value)
        if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        return conn.getresponse()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """Copy status, headers and body back (stream if Content-Length known)."""
        has_body = self.command != "HEAD" and response.status not in (204, 304)
        length = response.getheader("Content-Length")
        buffered = response.read() if has_body and length is None else None
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP or name.lower() == "content-length":
                self.send_header(name, value)
        if buffered is not None:
            self.send_header("Content-Length", str(len(buffered)))
        self.end_headers()
        if buffered is not None:
            self.wfile.write(buffered)
        elif has_body:
            shutil.copyfileobj(response, self.wfile, _CHUNK)


def _short_page(body: bytes, keep: int, path: str) -> bytes:
    """A ListObjectsV2 answer cut to its first ``keep`` keys, truncated, with a continuation
    token that resumes after the last key kept (or where the request started, if none)."""
    text = body.decode("utf-8")
    entries = list(re.finditer(r"<Contents>.*?</Contents>", text, re.DOTALL))
    if len(entries) <= keep:
        return body
    kept = entries[:keep]
    if kept:
        last = re.search(r"<Key>(.*?)</Key>", kept[-1].group(0), re.DOTALL)
        assert last is not None
        resume = html.unescape(last.group(1))
        if "<EncodingType>url</EncodingType>" in text:
            resume = urllib.parse.unquote(resume)
    else:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query, keep_blank_values=True))
        resume = query.get("start-after", "")
    # Unique, as a real token is: a client stops on a token it has seen before.
    token = f"{SHORT_PAGE_TOKEN}{base64.urlsafe_b64encode(resume.encode()).decode()}.{uuid.uuid4().hex}"
    head, tail = text[: entries[0].start()], text[entries[-1].end() :]
    tail = re.sub(r"<NextContinuationToken>.*?</NextContinuationToken>", "", tail, flags=re.DOTALL)
    cut = head + "".join(m.group(0) for m in kept) + tail
    cut = re.sub(r"<IsTruncated>\w+</IsTruncated>", "<IsTruncated>true</IsTruncated>", cut)
    cut = re.sub(r"<KeyCount>\d+</KeyCount>", f"<KeyCount>{keep}</KeyCount>", cut)
    return cut.replace(
        "</ListBucketResult>", f"<NextContinuationToken>{token}</NextContinuationToken></ListBucketResult>"
    ).encode()


def _resolve_short_page_token(path: str) -> str:
    """A request continuing a ``short_page`` answer, as the upstream can serve it: the
    proxy's token becomes ``start-after`` (S3 ignores StartAfter beside a token)."""
    split = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
    token = dict(query).get("continuation-token", "")
    if not token.startswith(SHORT_PAGE_TOKEN):
        return path
    resume = base64.urlsafe_b64decode(token[len(SHORT_PAGE_TOKEN) :].split(".")[0]).decode()
    kept = [(k, v) for k, v in query if k not in ("continuation-token", "start-after")]
    if resume:
        kept.append(("start-after", resume))
    return urllib.parse.urlunsplit(
        split._replace(query=urllib.parse.urlencode(kept, quote_via=urllib.parse.quote))
    )


def _read_chunked(stream: Any) -> bytes:
    """Decode an HTTP/1.1 chunked body (trailers are discarded)."""
    parts: list[bytes] = []
    while True:
        size_line = stream.readline(65537)
        if not size_line:
            raise ConnectionError("client closed the connection mid-body")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while stream.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(stream.read(size))
        stream.readline(65537)


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Run a proxy until SIGTERM/SIGINT; print its endpoint URL first."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:5000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--faults", default="[]", help="JSON list of FaultRule dicts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rules = json.loads(args.faults)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with FaultProxy(args.upstream, host=args.host, port=args.port, seed=args.seed) as proxy:
        proxy.set_faults([rules] if isinstance(rules, dict) else rules)
        print(proxy.endpoint_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
