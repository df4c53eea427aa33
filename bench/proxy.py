"""A pass-through proxy in front of the benchmark's endpoint: counts each tool's requests by S3
operation and, in latency mode, delays every request as a distant S3 region would.

It is ``tests/support/fault_proxy.py`` (the suite's recording proxy: its request classification
and its ``slow`` rule, a sleep before forwarding) run in a process of its own, so its CPU is not
charged to the benchmark runner or to any tool, and with a second, tiny HTTP server on another
port through which the runner reads and resets the counts between runs:

    python -m bench.proxy --upstream http://127.0.0.1:8333 --latency-ms 30

prints ``PROXY_URL CONTROL_URL`` on its first line; ``GET CONTROL_URL/counts`` answers
``{"operations": {...}, "by_bucket": {bucket: {...}}}`` for the requests forwarded since the
last read, and forgets them.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import fault_proxy  # noqa: E402

# s5cmd opens 256 connections at once; the suite's proxy listens with a backlog of 128, and a
# SYN dropped on a full backlog is retried after a second, which would be charged to the tool.
fault_proxy._ProxyServer.request_queue_size = 4096


def latency_rules(latency_ms: float) -> list[dict[str, Any]]:
    """One ``slow`` rule for every request: sleep ``latency_ms`` before forwarding it."""
    return [{"kind": "slow", "operation": "*", "delay": latency_ms / 1000}] if latency_ms > 0 else []


class _Control(BaseHTTPRequestHandler):
    proxy: fault_proxy.FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        records = self.proxy.records
        self.proxy.reset_records()
        forwarded = [r for r in records if r.forwarded and r.operation != fault_proxy.MOTO_API]
        counts = collections.Counter(r.operation for r in forwarded)
        by_bucket: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for r in forwarded:
            by_bucket[r.bucket or ""][r.operation] += 1
        body = json.dumps({"operations": dict(counts), "by_bucket": by_bucket}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with fault_proxy.FaultProxy(args.upstream, upstream_timeout=600) as proxy:
        proxy.set_faults(latency_rules(args.latency_ms))
        handler = type("Control", (_Control,), {"proxy": proxy})
        control = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=control.serve_forever, daemon=True).start()
        print(f"{proxy.endpoint_url} http://127.0.0.1:{control.server_address[1]}", flush=True)
        while not stop.wait(0.5):
            pass
        control.shutdown()
    return 0


class ProxyProcess:
    """The proxy as a child process of the benchmark runner."""

    def __init__(self, upstream: str, latency_ms: float, log: Path) -> None:
        self.latency_ms = latency_ms
        self._log = open(log, "wb")  # noqa: SIM115 - the child's stderr, closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.proxy", "--upstream", upstream, "--latency-ms", str(latency_ms)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline().split() if self.proc.stdout else []
        if len(line) != 2:
            self.stop()
            raise RuntimeError(f"bench.proxy did not start (see {log})")
        self.url, self._control = line
        self.by_bucket: dict[str, dict[str, int]] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def take_counts(self) -> dict[str, int]:
        """Requests forwarded per S3 operation since the last call (per bucket and operation
        in ``by_bucket`` afterwards)."""
        with urllib.request.urlopen(f"{self._control}/counts", timeout=60) as answer:
            counts = json.loads(answer.read())
        self.by_bucket = counts["by_bucket"]
        return counts["operations"]

    def stop(self) -> None:
        from bench.procs import stop_process

        stop_process(self.proc, grace=10)
        self._log.close()


if __name__ == "__main__":
    raise SystemExit(main())
