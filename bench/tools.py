"""The tools under comparison: how each is run for one case, and what a run measured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.endpoints import Endpoint
from bench.procs import Usage, run_measured, tree_cpu_seconds
from bench.s3data import CREDENTIALS, REGION
from bench.toolpaths import tool_path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("full", "noop", "changed")
CASE_TITLES = {
    "full": "full first backup into an empty bucket",
    "noop": "nothing to do (run again)",
    "changed": "1% of the source rewritten",
}
PEER_THREADS = 32


@dataclass
class RunSpec:
    """One timed run: a tool copies ``src`` into ``dst`` for ``case`` at size ``n``."""

    endpoint: Endpoint
    src: str
    dst: str
    n: int
    case: str
    logdir: Path
    timeout: float

    def log(self, tool: str) -> Path:
        return self.logdir / f"{tool}-{self.n}-{self.case}.log"


@dataclass
class Result:
    tool: str
    case: str
    n: int
    seconds: float | None
    ok: bool
    peak_rss_mib: float | None = None
    cpu_seconds: float | None = None
    endpoint_cpu_seconds: float | None = None
    copied: int | None = None
    check: str = ""
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    proxy_cpu_seconds: float | None = None
    requests: dict[str, int] | None = None
    """Requests the tool sent per S3 operation, as the proxy counted them (None: no proxy)."""
    carries: str = ""
    """What a sample of copies kept of the source's Content-Type, user metadata and tags."""
    load: str = ""
    """The load average (1, 5, 15 min) when the run started."""

    @property
    def objects_per_second(self) -> float | None:
        return self.n / self.seconds if self.seconds else None

    @property
    def cpu_s_per_1000(self) -> float | None:
        """The tool's own CPU seconds per 1,000 objects of the source (examined, not copied)."""
        return self.cpu_seconds * 1000 / self.n if self.cpu_seconds is not None else None

    @property
    def endpoint_cpu_s_per_1000(self) -> float | None:
        return self.endpoint_cpu_seconds * 1000 / self.n if self.endpoint_cpu_seconds is not None else None

    @property
    def requests_per_object(self) -> float | None:
        return sum(self.requests.values()) / self.n if self.requests is not None else None

    def derived(self) -> dict[str, Any]:
        """The computed columns, for the JSON."""
        return {
            "objects_per_second": self.objects_per_second,
            "cpu_s_per_1000": self.cpu_s_per_1000,
            "endpoint_cpu_s_per_1000": self.endpoint_cpu_s_per_1000,
            "requests_per_object": self.requests_per_object,
        }


class EndpointMeter:
    """What the endpoint (and the proxy in front of it) did during one run: CPU and requests.

    Enter just before the tool starts, call :meth:`fill` once it finished: the endpoint's CPU
    is its process tree's, the proxy's its own, and the request counts are those the proxy
    forwarded in between (the counts are reset on entry).
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> EndpointMeter:
        proxy = self.endpoint.proxy
        if proxy is not None:
            proxy.take_counts()
            self._proxy_cpu = tree_cpu_seconds([proxy.pid])
        self._cpu = tree_cpu_seconds([self.endpoint.pid])
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = tree_cpu_seconds([self.endpoint.pid]) - self._cpu
        proxy = self.endpoint.proxy
        if proxy is not None:
            self.proxy_cpu: float | None = tree_cpu_seconds([proxy.pid]) - self._proxy_cpu
            self.requests: dict[str, int] | None = proxy.take_counts()
        else:
            self.proxy_cpu, self.requests = None, None

    def fill(self, result: Result) -> None:
        result.endpoint_cpu_seconds = self.cpu
        result.proxy_cpu_seconds = self.proxy_cpu
        result.requests = self.requests


def aws_env(endpoint: Endpoint, workdir: Path) -> dict[str, str]:
    """Dummy credentials for a local endpoint; no shared config or instance metadata is read."""
    # A CA bundle from the environment is of no use over plain HTTP and breaks rclone's S3 client.
    inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    return {
        **inherited,
        "AWS_ACCESS_KEY_ID": CREDENTIALS,
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "aws-credentials-none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class Tool:
    """A tool that copies one bucket into another; subclasses say how it is run."""

    name = ""
    cases: tuple[str, ...] = CASES
    description = ""
    profile_dir: Path | None = None
    """Where py-spy profiles of the runs go (the s3br tools; None: no profiling)."""
    copies = True
    """False: a reference run that copies nothing (its destination is not checked)."""

    def missing(self) -> str | None:
        """Why the tool cannot run here, or None when it can."""
        return None

    def setup(self, endpoint: Endpoint, workdir: Path) -> None:
        """Prepare once per benchmark, untimed (a database, services)."""

    def pause(self) -> None:
        """Stop using the CPU while other tools are measured (long-lived deployments)."""

    def resume(self) -> None:
        """Undo ``pause`` before this tool's own runs."""

    def teardown(self) -> None:
        """Undo :meth:`setup`."""

    def version(self) -> str:
        return ""

    def command(self, spec: RunSpec) -> list[str]:
        raise NotImplementedError

    def env(self, spec: RunSpec) -> dict[str, str]:
        return aws_env(spec.endpoint, spec.logdir)

    def run(self, spec: RunSpec) -> Result:
        with EndpointMeter(spec.endpoint) as meter:
            usage = run_measured(
                self.command(spec),
                env=self.env(spec),
                log=spec.log(self.name),
                timeout=spec.timeout,
                cwd=ROOT,
            )
        result = self.result(spec, usage)
        meter.fill(result)
        return result

    def result(self, spec: RunSpec, usage: Usage) -> Result:
        ok = usage.returncode == 0 and not usage.timed_out
        note = "" if ok else ("timed out" if usage.timed_out else f"exit code {usage.returncode}")
        return Result(
            tool=self.name,
            case=spec.case,
            n=spec.n,
            seconds=usage.seconds,
            ok=ok,
            peak_rss_mib=usage.peak_rss_mib,
            cpu_seconds=usage.cpu_seconds,
            copied=self.copied(spec.log(self.name).read_text(errors="replace")),
            note=note,
        )

    def copied(self, output: str) -> int | None:
        """How many objects the tool says it copied, from its output (None: it does not say)."""
        return None


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except OSError as error:
        return f"unknown ({error})"
    return (out.stdout or out.stderr).strip().split("\n")[0]


class RawBoto3(Tool):
    name = "raw-boto3"
    description = "ceiling: list both buckets, CopyObject on 32 threads, one client (64 connections)"

    def version(self) -> str:
        import boto3

        return f"boto3 {boto3.__version__}"

    def command(self, spec: RunSpec) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.raw_copy",
            "--endpoint",
            spec.endpoint.url,
            "--src",
            spec.src,
            "--dst",
            spec.dst,
            "--threads",
            str(PEER_THREADS),
        ]

    def result(self, spec: RunSpec, usage: Usage) -> Result:
        result = super().result(spec, usage)
        for line in reversed(spec.log(self.name).read_text().splitlines()):
            if line.startswith("{"):
                result.details = json.loads(line)
                result.copied = result.details.get("copied")
                break
        return result


class S5cmd(Tool):
    binary = "s5cmd"

    def missing(self) -> str | None:
        return None if tool_path(self.binary) else "s5cmd not installed (bench/setup_tools.sh)"

    def version(self) -> str:
        return f"s5cmd {_version([str(tool_path(self.binary)), 'version'])}"

    def copied(self, output: str) -> int | None:
        # One "cp s3://src/key s3://dst/key" line per object copied (cp and sync alike).
        return sum(1 for line in output.splitlines() if line.startswith("cp s3://"))


class S5cmdCp(S5cmd):
    name = "s5cmd-cp"
    cases = ("full",)  # cp copies everything again: it is not an incremental tool
    description = "s5cmd cp 's3://src/*' s3://dst/ (default 256 workers)"

    def command(self, spec: RunSpec) -> list[str]:
        return [
            str(tool_path(self.binary)),
            "--endpoint-url",
            spec.endpoint.url,
            "--stat",
            "cp",
            f"s3://{spec.src}/*",
            f"s3://{spec.dst}/",
        ]


class S5cmdSync(S5cmd):
    name = "s5cmd-sync"
    description = "s5cmd sync 's3://src/*' s3://dst/ (size and modification time; 256 workers)"
    options: tuple[str, ...] = ()

    def command(self, spec: RunSpec) -> list[str]:
        return [
            str(tool_path(self.binary)),
            "--endpoint-url",
            spec.endpoint.url,
            "--stat",
            "sync",
            *self.options,
            f"s3://{spec.src}/*",
            f"s3://{spec.dst}/",
        ]


class S5cmdSyncMeta(S5cmdSync):
    """The fair row: ``--metadata-directive COPY`` asks the server to keep the source's metadata
    (S3's default for a CopyObject that names no directive)."""

    name = "s5cmd-sync-meta"
    description = "s5cmd sync --metadata-directive COPY (the fair row; otherwise as s5cmd-sync)"
    options = ("--metadata-directive", "COPY")


class AwsSync(Tool):
    name = "aws-sync"
    description = "aws s3 sync (awscli v1, max_concurrent_requests 32)"
    options: tuple[str, ...] = ()

    def missing(self) -> str | None:
        return None if tool_path("aws") else "awscli not installed (bench/setup_tools.sh)"

    def version(self) -> str:
        return _version([str(tool_path("aws")), "--version"])

    def command(self, spec: RunSpec) -> list[str]:
        return [
            str(tool_path("aws")),
            "s3",
            "sync",
            f"s3://{spec.src}",
            f"s3://{spec.dst}",
            "--endpoint-url",
            spec.endpoint.url,
            "--no-progress",
            *self.options,
        ]

    def copied(self, output: str) -> int | None:
        return sum(1 for line in output.splitlines() if line.startswith("copy: "))

    def env(self, spec: RunSpec) -> dict[str, str]:
        # The default is 10 requests in flight; give it the same 32 as the others.
        config = spec.logdir / "aws-config"
        config.write_text(
            f"[default]\nregion = {REGION}\ns3 =\n  max_concurrent_requests = {PEER_THREADS}\n"
            "  max_queue_size = 10000\n"
        )
        return {**super().env(spec), "AWS_CONFIG_FILE": str(config)}


class RcloneCopy(Tool):
    name = "rclone-copy"
    description = (
        "rclone copy --transfers 32 --checkers 32 --fast-list --update --use-server-modtime "
        "(server-side copy within one remote)"
    )

    options: tuple[str, ...] = ()

    def missing(self) -> str | None:
        return None if tool_path("rclone") else "rclone not installed (apt-get install rclone)"

    def version(self) -> str:
        return _version([str(tool_path("rclone")), "version"])

    def command(self, spec: RunSpec) -> list[str]:
        # --update --use-server-modtime: copy when the source is newer than the copy, judged by
        # the listing's LastModified; without it rclone HEADs each object for its mtime metadata.
        return [
            str(tool_path("rclone")),
            "copy",
            f"s3:{spec.src}",
            f"s3:{spec.dst}",
            "--transfers",
            str(PEER_THREADS),
            "--checkers",
            str(PEER_THREADS),
            "--fast-list",
            "--update",
            "--use-server-modtime",
            "--s3-no-check-bucket",
            "--stats",
            "1h",
            "--stats-log-level",
            "NOTICE",
            *self.options,
        ]

    def copied(self, output: str) -> int | None:
        # The final stats block: "Transferred: 200 / 200, 100%" counts files (server-side copies too).
        found = re.findall(r"^Transferred:\s+(\d+) / \d+, ", output, re.MULTILINE)
        return int(found[-1]) if found else (0 if "Elapsed time" in output else None)

    def env(self, spec: RunSpec) -> dict[str, str]:
        config = spec.logdir / "rclone.conf"
        config.touch()
        return {
            **super().env(spec),
            "RCLONE_CONFIG": str(config),
            "RCLONE_CONFIG_S3_TYPE": "s3",
            "RCLONE_CONFIG_S3_PROVIDER": "Other",
            "RCLONE_CONFIG_S3_ENDPOINT": spec.endpoint.url,
            "RCLONE_CONFIG_S3_ACCESS_KEY_ID": CREDENTIALS,
            "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": CREDENTIALS,
            "RCLONE_CONFIG_S3_REGION": REGION,
            "RCLONE_CONFIG_S3_FORCE_PATH_STYLE": "true",
        }


class AwsSyncMeta(AwsSync):
    """The fair row: ``--metadata-directive COPY`` (awscli's default for single-part copies)."""

    name = "aws-sync-meta"
    description = "aws s3 sync --metadata-directive COPY (the fair row; otherwise as aws-sync)"
    options = ("--metadata-directive", "COPY")


class RcloneCopyMeta(RcloneCopy):
    """The fair row: ``--metadata`` (``-M``): rclone reads each source object's metadata and
    writes it with the copy (``MetadataDirective`` REPLACE) instead of leaving it to S3."""

    name = "rclone-copy-meta"
    description = "rclone copy --metadata (-M; the fair row; otherwise as rclone-copy)"
    options = ("--metadata",)


FAIR_TOOLS = (S5cmdSyncMeta, AwsSyncMeta, RcloneCopyMeta)
