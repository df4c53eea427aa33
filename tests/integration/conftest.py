"""Fixtures of the integration tests: a recording fault proxy and fast bulk object creation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import aws_conn_env, local_client

PROXY_CONN_ID = "s3br_proxy"
"""Airflow connection that reaches moto through the ``fault_proxy`` fixture."""


@pytest.fixture
def fault_proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the session's moto server, as connection ``s3br_proxy``.

    Every request made through that connection is recorded, so tests can count operations.
    """
    with FaultProxy(endpoint, seed=7) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_S3BR_PROXY", aws_conn_env(proxy.endpoint_url))
        yield proxy


@pytest.fixture(scope="session")
def bulk_s3(endpoint: str) -> Any:
    """An S3 client with a connection pool large enough for ``put_many``."""
    return local_client("s3", endpoint, pool=32)


@pytest.fixture(scope="session")
def put_many(bulk_s3: Any) -> Callable[[str, dict[str, bytes] | Iterable[str]], None]:
    """Create many objects concurrently; an iterable of keys makes zero-byte objects."""

    def put(bucket: str, bodies: dict[str, bytes] | Iterable[str]) -> None:
        items = bodies.items() if isinstance(bodies, dict) else ((key, b"") for key in bodies)
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda item: bulk_s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), items))

    return put
