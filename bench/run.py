"""Benchmark s3br's ``s3_backup`` against raw boto3, s5cmd, aws s3 sync and rclone.

One S3 endpoint (moto or SeaweedFS) in its own process; for each N a source bucket of N objects;
every tool copies it into its own empty bucket (full), runs again (noop), and runs once more after
1% of the source was rewritten (changed). Results go to ``bench/results/NAME.{md,json,png}``.

    .venv/bin/python bench/run.py --sizes 1000,10000 --endpoint moto
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import airflow_runs, s3data  # noqa: E402
from bench.airflow_runs import (  # noqa: E402
    AirflowFloor,
    AirflowLocalFloor,
    AirflowLocalFloorTuned,
    S3brDagsTest,
    S3brLocalExecutor,
    S3brLocalNoPreload,
    S3brLocalTuned,
)
from bench.endpoints import ENDPOINTS, running_endpoint  # noqa: E402
from bench.report import console_table, write_all  # noqa: E402
from bench.tools import (  # noqa: E402
    CASES,
    FAIR_TOOLS,
    AwsSync,
    RawBoto3,
    RcloneCopy,
    Result,
    RunSpec,
    S5cmdCp,
    S5cmdSync,
    Tool,
)

RESULTS = ROOT / "bench" / "results"
BIG = 100_000


def all_tools() -> list[Tool]:
    return [
        RawBoto3(),
        S5cmdCp(),
        S5cmdSync(),
        AwsSync(),
        RcloneCopy(),
        *(fair() for fair in FAIR_TOOLS),
        S3brDagsTest(),
        AirflowFloor(),
        S3brLocalExecutor(),
        S3brLocalTuned(),
        S3brLocalNoPreload(),
        AirflowLocalFloor(),
        AirflowLocalFloorTuned(),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated object counts N")
    parser.add_argument("--endpoint", choices=ENDPOINTS, default="moto")
    parser.add_argument("--object-size", type=int, default=1024, help="bytes per object (default 1 KiB)")
    names = ", ".join(t.name for t in all_tools())
    parser.add_argument("--tools", default="", help=f"comma-separated subset of: {names}")
    parser.add_argument(
        "--fair",
        action="store_true",
        help="also run the peers' fair rows (metadata options: "
        + ", ".join(t.name for t in FAIR_TOOLS)
        + ")",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay every request this long in the proxy (latency mode; 30 is a distant region)",
    )
    parser.add_argument(
        "--no-proxy",
        action="store_true",
        help="tools talk to the endpoint directly: no request counts (not with --latency-ms)",
    )
    parser.add_argument("--profile", help="folder for py-spy profiles of the s3br tools' runs")
    parser.add_argument(
        "--s3br-conf",
        default="{}",
        help="JSON Params for every s3br run on top of the defaults, e.g. '{\"max_partitions\": 1}'",
    )
    parser.add_argument(
        "--s3br-airflow",
        default="{}",
        help="JSON Airflow options (environment variables) for every s3br deployment, "
        'e.g. \'{"AIRFLOW__CORE__PARALLELISM": "3"}\'',
    )
    parser.add_argument(
        "--s3br-suffix", default="", help="appended to the s3br tools' names (rows with other Params)"
    )
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of the cases")
    parser.add_argument("--skip", default="", help="comma-separated tools to leave out")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per tool run")
    parser.add_argument("--merge-pairs", type=int, default=1_000_000, help="merge-join pairs; 0 skips it")
    parser.add_argument("--no-check", action="store_true", help="do not list destinations to verify them")
    parser.add_argument("--workdir", help="logs and Airflow homes (default: a new folder in /tmp)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    parser.add_argument("--name", help="results file name (default ENDPOINT-nSIZES)")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.cases = [c for c in args.cases.split(",") if c]
    args.s3br_conf = json.loads(args.s3br_conf)
    args.s3br_airflow = {str(k): str(v) for k, v in json.loads(args.s3br_airflow).items()}
    if set(args.cases) - set(CASES):
        parser.error(f"cases are {', '.join(CASES)}")
    if args.no_proxy and args.latency_ms > 0:
        parser.error("--latency-ms needs the proxy")
    if any(n < 1 or n > BIG for n in args.sizes):
        parser.error(f"sizes must be between 1 and {BIG:,}")
    return args


def select_tools(args: argparse.Namespace) -> tuple[list[Tool], dict[str, str]]:
    tools = all_tools()
    airflow_runs.EXTRA_CONF.update(args.s3br_conf)
    airflow_runs.EXTRA_AIRFLOW.update(args.s3br_airflow)
    for tool in tools:
        if tool.name.startswith("s3br") and (args.s3br_suffix or args.s3br_conf or args.s3br_airflow):
            tool.name += args.s3br_suffix
            if args.s3br_conf:
                tool.description += f"; Params {json.dumps(args.s3br_conf)}"
            if args.s3br_airflow:
                tool.description += f"; Airflow {json.dumps(args.s3br_airflow)}"
    fair = {cls.name for cls in FAIR_TOOLS}
    wanted = {t + (args.s3br_suffix if t.startswith("s3br") else "") for t in args.tools.split(",") if t} or {
        t.name for t in tools if t.name not in fair
    }
    if args.fair:
        wanted |= fair
    wanted -= {t for t in args.skip.split(",") if t}
    unknown = wanted - {t.name for t in tools}
    if unknown:
        raise SystemExit(f"unknown tools: {', '.join(sorted(unknown))}")
    chosen, skipped = [], {}
    for tool in tools:
        if tool.name not in wanted:
            continue
        reason = tool.missing()
        if reason:
            skipped[tool.name] = reason
        else:
            chosen.append(tool)
    return chosen, skipped


def run_merge_join(pairs: int, workdir: Path) -> dict[str, Any] | None:
    print(f"== merge-join micro-benchmark: {pairs:,} pairs on one core", flush=True)
    out = subprocess.run(
        [sys.executable, "-m", "bench.merge_join", "--pairs", str(pairs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    (workdir / "merge-join.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        print(f"   failed (see {workdir / 'merge-join.log'})")
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for label in ("merge_listings", "with_check_sorted"):
        print(f"   {label}: {result[label]['keys_per_second']:,} keys/s (CPU time)", flush=True)
    return result


def show(result: Result) -> None:
    speed = f"{result.objects_per_second:8.0f} obj/s" if result.objects_per_second else ""
    rss = f"rss {result.peak_rss_mib:5.0f} MiB" if result.peak_rss_mib else ""
    seconds = f"{result.seconds:8.2f} s" if result.seconds is not None else "       - s"
    print(
        f"   {result.tool:15} {result.case:8} N={result.n:<7} {seconds} {speed} {rss}  "
        f"{result.check or ''} {result.note}",
        flush=True,
    )


def benchmark_size(
    tools: list[Tool], endpoint: Any, n: int, args: argparse.Namespace, logdir: Path, results: list[Result]
) -> None:
    s3 = s3data.client(endpoint.direct_url)  # seeding and checks: neither delayed nor counted
    src = f"bench-{n}-src"
    seconds = s3data.seed(s3, src, n, args.object_size)
    print(f"== N={n}: seeded s3://{src} in {seconds:.1f} s ({n / seconds:.0f} puts/s)", flush=True)
    for tool in tools:
        s3data.create_bucket(s3, f"bench-{n}-{tool.name}")
    source = s3data.listing(s3, src)
    for case in CASES:
        if case not in args.cases:
            continue
        if case == "changed":
            changed = s3data.rewrite_one_percent(s3, src, n, args.object_size)
            source = s3data.listing(s3, src)
            print(f"   rewrote {changed} source objects (same size, new content)", flush=True)
        for tool in tools:
            if case not in tool.cases:
                continue
            dst = f"bench-{n}-{tool.name}"
            spec = RunSpec(endpoint, src, dst, n, case, logdir, args.timeout)
            for other in tools:  # an idle Airflow deployment still polls: keep it off the cores
                if other is not tool:
                    other.pause()
            tool.resume()
            load = _load()
            try:
                result = tool.run(spec)
            except Exception as error:  # one broken tool must not lose the others' results
                result = Result(tool.name, case, n, None, False, note=f"{type(error).__name__}: {error}")
            result.load = load
            if tool.copies and not args.no_check:
                check = s3data.check_copy(source, s3, dst)
                result.check = check.describe()
                result.ok = result.ok and check.ok
                if check.ok:
                    result.carries = s3data.carried(s3, src, dst, s3data.sample_keys(n))
            show(result)
            results.append(result)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (and SIGINT, which a shell ignores in a background job) stop the runs, tear the
    # deployments and the endpoint down and write the results measured so far.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    tools, skipped = select_tools(args)
    for name, reason in skipped.items():
        print(f"== {name}: skipped: {reason}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="s3br-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logdir = workdir / "logs"
    logdir.mkdir(exist_ok=True)
    print(f"== work folder (logs, Airflow homes): {workdir}", flush=True)
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}",
        "load_before": _load(),
        "endpoint": args.endpoint,
        "sizes": args.sizes,
        "object_size": args.object_size,
        "latency_ms": args.latency_ms,
        "s3br_conf": args.s3br_conf,
        "proxy": not args.no_proxy,
        "argv": sys.argv[1:] if argv is None else argv,
        "commit": _commit(),
    }
    merge_join = run_merge_join(args.merge_pairs, workdir) if args.merge_pairs else None
    results: list[Result] = []
    latency = f"-latency{args.latency_ms:g}ms" if args.latency_ms else ""
    name = args.name or f"{args.endpoint}{latency}-n{'-'.join(map(str, args.sizes))}"
    if args.profile:
        for tool in tools:
            tool.profile_dir = Path(args.profile).resolve()
    with running_endpoint(
        args.endpoint, workdir, proxy=not args.no_proxy, latency_ms=args.latency_ms
    ) as endpoint:
        meta["endpoint_version"] = endpoint.version
        via = f" through the proxy at {endpoint.url}" if endpoint.proxy else ""
        delay = f", {args.latency_ms:g} ms added to every request" if args.latency_ms else ""
        print(f"== {endpoint.version} at {endpoint.direct_url}{via}{delay}", flush=True)
        s3data.wait_writable(s3data.client(endpoint.direct_url))
        ready = []
        try:
            for tool in tools:
                began = time.perf_counter()
                try:
                    tool.setup(endpoint, workdir)
                except Exception as error:
                    skipped[tool.name] = f"set-up failed: {error} (logs in {workdir})"
                    print(f"== {tool.name}: {skipped[tool.name]}", flush=True)
                    tool.teardown()
                    continue
                ready.append(tool)
                if time.perf_counter() - began > 1:
                    print(
                        f"== {tool.name}: set up in {time.perf_counter() - began:.0f} s (untimed)", flush=True
                    )
            meta["tools"] = {t.name: {"version": t.version(), "description": t.description} for t in ready}
            try:
                for n in args.sizes:
                    benchmark_size(ready, endpoint, n, args, logdir, results)
            except KeyboardInterrupt:  # keep what was measured
                meta["interrupted"] = True
                print("== interrupted: writing the results so far", flush=True)
        finally:
            for tool in ready:
                tool.teardown()
    meta["load_after"] = _load()
    shutil.rmtree(workdir / "seaweedfs", ignore_errors=True)
    print()
    print(console_table(results))
    written = write_all(Path(args.out), name, results, meta, merge_join, skipped)
    print(
        "\n== wrote "
        + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in written)
    )
    print(f"== logs: {workdir}")
    return 0 if all(r.ok for r in results) else 1


def _commit() -> str:
    """The git commit of the tree measured (``+ changes`` when its plugins/ or dags/ differ);
    ``BENCH_COMMIT`` names it for a tree exported with ``git archive``."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "plugins", "dags"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "not a git tree") + (" + changes in plugins/ or dags/" if dirty else "")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
