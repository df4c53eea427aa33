"""Run a moto S3 (and friends) server in a background thread for tests."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

import tests.support.moto_aws  # noqa: F401  (moto answering as AWS does, in this process too)

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """Return a TCP port that is free on ``host`` right now (racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_moto_server(port: int | None = None) -> Iterator[str]:
    """Start a ``ThreadedMotoServer`` on 127.0.0.1 and yield its endpoint URL.

    With ``port=None`` the OS picks the port while binding (no race); the
    yielded value looks like ``"http://127.0.0.1:PORT"``. Moto keeps its state
    in process-wide backends: call :func:`reset_moto_server` between tests
    that must not see each other's buckets.
    """
    server = ThreadedMotoServer(ip_address=HOST, port=port or 0, verbose=False)
    server.start()
    try:
        bound_host, bound_port = server.get_host_and_port()
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.stop()


def reset_moto_server(endpoint_url: str) -> None:
    """Wipe all moto state (buckets, objects, ...) via the moto control API."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
