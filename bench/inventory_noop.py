"""An inventory-driven backup with nothing to do, at 1M keys: the real ``s3_backup`` DAG.

For each N of ``--sizes`` (default 100,000 and 1,000,000): a source bucket ``inv-N-src`` and a
backup bucket ``inv-N-backup`` of N objects each (hashed keys, ``--object-size`` bytes), every
backup copy the same size as its source and an hour newer, so the run has nothing to do; the
source's S3 Inventory report of those N objects in AWS's layout (``tests.support.inventory``:
manifest.json with its fileSchema and MD5 checksums, CSV.gz data files of ``--rows-per-file``
rows) in ``inv-reports``, delivered a minute ago, and the source's inventory configuration
(PutBucketInventoryConfiguration), so that validate accepts it.

The endpoint is moto (``bench/moto_seeded.py``: the buckets seeded in its memory, ListObjectsV2
pages cut from a sorted index, answers identical to moto's), behind the counting proxy
(``bench/proxy.py``); the DAG runs on the LocalExecutor deployment of ``bench/run.py``
(``bench.airflow_runs.S3brLocalExecutor``: PostgreSQL, parallelism 8), triggered over REST with
``listing_source=inventory`` and timed from the trigger to the run's success. Prints requests by
bucket and operation, wall time, peak RSS and CPU seconds per task, and totals; writes
``OUT/NAME.{md,json}``. Exits 1 when a run lists the source bucket (ListObjectsV2, ListObjects,
ListObjectVersions), fails, or copies or tags anything.

    python -m bench.inventory_noop [--sizes 100000,1000000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import airflow_runs  # noqa: E402
from bench.airflow_runs import DAG_ID, PG_DSN, S3brLocalExecutor, latest_report  # noqa: E402
from bench.endpoints import Endpoint  # noqa: E402
from bench.moto_seeded import body_of, key_of  # noqa: E402
from bench.procs import _high_water_mib, stop_process, tree  # noqa: E402
from bench.proxy import ProxyProcess  # noqa: E402
from bench.s3data import client  # noqa: E402
from bench.tools import RunSpec  # noqa: E402
from tests.support.inventory import Row, configure_inventory, inventory_report, write_report  # noqa: E402
from tests.support.seaweedfs import HOST, free_ports, wait_until_up  # noqa: E402

LISTINGS = ("ListObjectsV2", "ListObjects", "ListObjectVersions")
INVENTORY_BUCKET = "inv-reports"
TASK_TITLE = "airflow worker -- "
GiB = 2**30


def source_of(n: int) -> str:
    return f"inv-{n}-src"


def backup_of(n: int) -> str:
    return f"inv-{n}-backup"


# The endpoint and its data ------------------------------------------------------------------


@dataclass
class Times:
    """The sources' LastModified, the copies' (an hour later), the report's delivery."""

    source: datetime
    backup: datetime
    snapshot: datetime

    @classmethod
    def now(cls) -> Times:
        now = datetime.now(UTC).replace(microsecond=0)
        minute = now.replace(second=0)
        return cls(now - timedelta(hours=3), now - timedelta(hours=2), minute - timedelta(minutes=1))


class SeededMoto:
    """``bench/moto_seeded.py`` holding both buckets of every size, in a process of its own."""

    def __init__(self, sizes: list[int], object_size: int, times: Times, log: Path) -> None:
        (port,) = free_ports(1)
        self.url = f"http://{HOST}:{port}"
        buckets = []
        for n in sizes:
            buckets += ["--bucket", f"{source_of(n)}={n}@{times.source.isoformat()}"]
            buckets += ["--bucket", f"{backup_of(n)}={n}@{times.backup.isoformat()}"]
        self._log = open(log, "wb")  # noqa: SIM115 - the child's stderr, closed in stop()
        command = [sys.executable, "-m", "bench.moto_seeded", "-H", HOST, "-p", str(port)]
        self.proc = subprocess.Popen(
            [*command, "--object-size", str(object_size), *buckets],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("SEEDED"):
            self.stop()
            raise RuntimeError(f"bench.moto_seeded did not seed its buckets (see {log})")
        self.seed_seconds = float(line.split()[1])
        wait_until_up(self.proc, self.url, log)
        self.rss_mib = round(psutil.Process(self.proc.pid).memory_info().rss / 2**20)

    def stop(self) -> None:
        stop_process(self.proc, grace=15)
        self._log.close()


def put_inventory(s3: Any, n: int, object_size: int, times: Times, rows_per_file: int) -> dict[str, Any]:
    """The source's inventory configuration and its report of the N seeded objects."""
    import hashlib

    etag = hashlib.md5(body_of(object_size)).hexdigest()
    started = time.perf_counter()
    rows = [Row(key_of(i), size=object_size, last_modified=times.source, etag=etag) for i in range(n)]
    files = -(-n // rows_per_file)
    report = inventory_report(
        source_of(n), INVENTORY_BUCKET, rows, when=times.snapshot, data_files=files, file_format="CSV"
    )
    write_report(s3, report)
    configure_inventory(s3, source_of(n), INVENTORY_BUCKET)
    data = [body for key, body in report.files.items() if "/data/" in key]
    return {
        "inventory_uri": report.uri,
        "data_files": len(data),
        "data_bytes": sum(len(b) for b in data),
        "build_and_put_s": round(time.perf_counter() - started, 1),
    }


# Task processes ------------------------------------------------------------------------------


@dataclass
class TaskProcess:
    rss_mib: float = 0.0
    cpu_s: float = 0.0


@dataclass
class TaskSampler:
    """Peak RSS (``VmHWM``) and CPU seconds of each task process under ``roots``, by TI id.

    Airflow 3 names a task's process ``airflow worker -- <ti id>`` once it runs the task
    (forked from its supervisor, so its CPU seconds are the task's own); CPU is as of the last
    sample, up to ``interval`` before the process exited.
    """

    roots: list[int]
    interval: float = 0.1
    found: dict[str, TaskProcess] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> TaskSampler:
        self._thread = threading.Thread(target=self._loop, name="task-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for proc in tree(self.roots):
                try:
                    title = " ".join(proc.cmdline())
                    if not title.startswith(TASK_TITLE) or "LocalExecutor" in title:
                        continue
                    seen = self.found.setdefault(title[len(TASK_TITLE) :].strip(), TaskProcess())
                    times = proc.cpu_times()
                    seen.cpu_s = max(seen.cpu_s, times.user + times.system)
                    seen.rss_mib = max(seen.rss_mib, _high_water_mib(proc))
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, OSError):
                    continue
            self._stop.wait(self.interval)


class InventoryDeployment(S3brLocalExecutor):
    """``bench/run.py``'s LocalExecutor deployment, with each task's peak RSS and CPU."""

    def run(self, spec: RunSpec) -> Any:
        with TaskSampler([proc.pid for proc in self.services.values()]) as sampler:
            result = super().run(spec)
        result.details["steps"] = self._steps(result.details["run_id"], sampler.found)
        return result

    def _steps(self, run_id: str, found: dict[str, TaskProcess]) -> dict[str, Any]:
        import psycopg2

        sql = "SELECT id, task_id, state, duration FROM task_instance WHERE dag_id = %s AND run_id = %s"
        with psycopg2.connect(f"{PG_DSN} dbname={self.database}") as db, db.cursor() as cursor:
            cursor.execute(sql, (DAG_ID, run_id))
            rows = cursor.fetchall()
        grouped: dict[str, list[tuple[str, float | None, TaskProcess | None]]] = defaultdict(list)
        for ti_id, task_id, state, duration in rows:
            grouped[task_id.split(".")[-1]].append((str(state), duration, found.get(str(ti_id))))
        steps = {}
        for step, tasks in grouped.items():
            walls = [float(d) for _, d, _ in tasks if d is not None]
            procs = [p for _, _, p in tasks if p is not None]
            steps[step] = {
                "tasks": len(tasks),
                "states": dict(Counter(s for s, _, _ in tasks)),
                "wall_sum_s": round(sum(walls), 2),
                "wall_mean_s": round(statistics.mean(walls), 2) if walls else None,
                "wall_max_s": round(max(walls), 2) if walls else None,
                "sampled": len(procs),
                "peak_rss_max_mib": round(max(p.rss_mib for p in procs), 1) if procs else None,
                "peak_rss_median_mib": round(statistics.median(p.rss_mib for p in procs), 1)
                if procs
                else None,
                "cpu_sum_s": round(sum(p.cpu_s for p in procs), 2),
                "cpu_mean_s": round(statistics.mean(p.cpu_s for p in procs), 2) if procs else None,
                "cpu_max_s": round(max(p.cpu_s for p in procs), 2) if procs else None,
            }
        return dict(sorted(steps.items(), key=lambda item: STEP_ORDER.get(item[0], 99)))


STEP_ORDER = {
    name: i
    for i, name in enumerate(
        ("validate", "plan_partitions", "diff", "copy_batch", "tag_deleted", "gather_chunks", "copy_chunk")
        + ("report",)
    )
}


# One run -------------------------------------------------------------------------------------


def run_one(
    tool: InventoryDeployment, endpoint: Endpoint, n: int, inventory: dict[str, Any], args: Any
) -> dict:
    airflow_runs.EXTRA_CONF.clear()
    airflow_runs.EXTRA_CONF.update(
        {"listing_source": "inventory", "inventory_uri": inventory["inventory_uri"]}
    )
    spec = RunSpec(endpoint, source_of(n), backup_of(n), n, "noop", args.workdir, args.timeout)
    load = os.getloadavg()
    result = tool.run(spec)
    assert endpoint.proxy is not None
    by_bucket = endpoint.proxy.by_bucket
    report = latest_report(endpoint.direct_url, backup_of(n)) or {}
    totals = report.get("totals", {})
    source_lists = sum(by_bucket.get(source_of(n), {}).get(op, 0) for op in LISTINGS)
    steps = result.details.get("steps", {})
    problems = []
    if source_lists:
        problems.append(f"{source_lists} listing request(s) on the source bucket")
    if not result.ok:
        problems.append(result.note or "the run failed")
    for name in ("copied", "tagged_deleted", "failed"):
        if totals.get(name):
            problems.append(f"{name} {totals[name]}")
    if totals.get("source_objects") != n:
        problems.append(f"source_objects {totals.get('source_objects')} (expected {n})")
    return {
        "n": n,
        "ok": not problems,
        "problems": problems,
        "load": [round(x, 2) for x in load],
        "wall_s": round(result.seconds, 1),
        "airflow_cpu_s": round(result.cpu_seconds or 0, 1),
        "task_cpu_s": round(sum(s["cpu_sum_s"] for s in steps.values()), 1),
        "endpoint_cpu_s": round(result.endpoint_cpu_seconds or 0, 1),
        "proxy_cpu_s": round(result.proxy_cpu_seconds or 0, 1),
        "peak_task_rss_mib": max((s["peak_rss_max_mib"] or 0 for s in steps.values()), default=None),
        "requests": result.requests,
        "requests_total": sum((result.requests or {}).values()),
        "by_bucket": by_bucket,
        "source_list_requests": source_lists,
        "steps": steps,
        "inventory": inventory,
        "totals": {k: totals.get(k) for k in REPORT_TOTALS if k in totals},
        "airflow": {k: result.details.get(k) for k in AIRFLOW_DETAILS if k in result.details},
    }


REPORT_TOTALS = (
    "partitions",
    "source_objects",
    "backup_objects",
    "unchanged",
    "copied",
    "vanished",
    "tagged_deleted",
    "failed",
    "gone_since_inventory",
    "newer_than_inventory",
)
AIRFLOW_DETAILS = (
    "task_instances",
    "busy_s",
    "trigger_to_first_task_s",
    "in_execute_s",
    "peak_rss_mib",
    "run_id",
    "cpu_s_by_role",
)


# Output --------------------------------------------------------------------------------------


def markdown(meta: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    out = [
        "# Inventory-driven backup, nothing to do",
        "",
        f"{meta['date']}, commit {meta['commit']}, {meta['machine']}; {meta['airflow']}, {meta['moto']} "
        f"(`bench/moto_seeded.py`), through `bench/proxy.py`. `python -m bench.inventory_noop "
        f"--sizes {','.join(str(r['n']) for r in runs)}`.",
        "",
        "The real `s3_backup` DAG on the LocalExecutor deployment of `bench/run.py` (PostgreSQL, "
        "parallelism 8), triggered with `listing_source=inventory` and otherwise default Params; "
        "source and backup of N objects each "
        f"({meta['object_size']} B, hashed keys), every copy present, same size, an hour newer; the "
        "source's inventory report (CSV.gz, "
        f"{meta['rows_per_file']:,} rows a data file) delivered a minute before. Wall: trigger to "
        "the run's success.",
        "",
        "| N | result | wall s | partitions | tasks | Airflow CPU s | of it in tasks | moto CPU s "
        "| proxy CPU s | peak task RSS MiB | requests | LIST on source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        out.append(
            f"| {r['n']:,} | {'ok' if r['ok'] else '; '.join(r['problems'])} | {r['wall_s']} "
            f"| {r['totals'].get('partitions')} | {r['airflow'].get('task_instances')} "
            f"| {r['airflow_cpu_s']} "
            f"| {r['task_cpu_s']} | {r['endpoint_cpu_s']} | {r['proxy_cpu_s']} | {r['peak_task_rss_mib']} "
            f"| {r['requests_total']:,} | {r['source_list_requests']} |"
        )
    roles = [(r["n"], r["airflow"].get("cpu_s_by_role")) for r in runs]
    if any(split for _, split in roles):
        out += [
            "",
            "Airflow CPU s by process: "
            + "; ".join(
                f"{n:,}: " + ", ".join(f"{role} {sec}" for role, sec in split.items())
                for n, split in roles
                if split
            )
            + " (`tasks`: the LocalExecutor workers, i.e. the task supervisors and the task processes).",
        ]
    out += ["", "## Requests by bucket and operation", ""]
    buckets = sorted({b for r in runs for b in r["by_bucket"]})
    out += ["| N | bucket | requests |", "|---|---|---|"]
    for r in runs:
        for bucket in buckets:
            ops = r["by_bucket"].get(bucket)
            if ops:
                shown = ", ".join(f"{op} {count:,}" for op, count in sorted(ops.items()))
                out.append(f"| {r['n']:,} | `{bucket}` | {shown} |")
    out += ["", "## Per step", ""]
    out += [
        "| N | step | tasks | wall s: sum / mean / max | peak RSS MiB: max / median "
        "| CPU s: sum / mean / max |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        for step, s in r["steps"].items():
            states = ", ".join(f"{k} {v}" for k, v in s["states"].items())
            out.append(
                f"| {r['n']:,} | {step} | {s['tasks']} ({states}) "
                f"| {s['wall_sum_s']} / {s['wall_mean_s']} / {s['wall_max_s']} "
                f"| {s['peak_rss_max_mib']} / {s['peak_rss_median_mib']} "
                f"| {s['cpu_sum_s']} / {s['cpu_mean_s']} / {s['cpu_max_s']} |"
            )
    if len(runs) >= 2:
        small, big = runs[0], runs[-1]
        factor = big["n"] / small["n"]
        out += ["", f"## {big['n']:,} against {small['n']:,} ({factor:g}x the keys)", ""]
        out += ["| measure | ratio |", "|---|---|"]
        for label, get in RATIOS:
            a, b = get(small), get(big)
            if a and b is not None:
                out.append(f"| {label} | {b / a:.2f}x |")
    out += ["", "## Setup (untimed)", ""]
    out += [
        f"- moto seeded {meta['seeded_objects']:,} objects in memory in {meta['seed_s']} s; its RSS after "
        f"seeding: {meta['moto_rss_mib']:,} MiB.",
    ]
    for r in runs:
        inv = r["inventory"]
        out.append(
            f"- {r['n']:,}: inventory report of {inv['data_files']} data file(s), "
            f"{inv['data_bytes']:,} bytes, "
            f"built and put in {inv['build_and_put_s']} s; load average at the trigger {r['load']}."
        )
    out.append("")
    return "\n".join(out)


def _step(name: str, key: str) -> Any:
    return lambda r: (r["steps"].get(name) or {}).get(key)


RATIOS = (
    ("wall s", lambda r: r["wall_s"]),
    ("Airflow CPU s", lambda r: r["airflow_cpu_s"]),
    ("CPU s in tasks", lambda r: r["task_cpu_s"]),
    ("moto CPU s", lambda r: r["endpoint_cpu_s"]),
    ("requests", lambda r: r["requests_total"]),
    ("plan_partitions wall s", _step("plan_partitions", "wall_max_s")),
    ("plan_partitions CPU s", _step("plan_partitions", "cpu_sum_s")),
    ("plan_partitions peak RSS", _step("plan_partitions", "peak_rss_max_mib")),
    ("diff tasks", _step("diff", "tasks")),
    ("diff CPU s (sum)", _step("diff", "cpu_sum_s")),
    ("diff peak RSS (max)", _step("diff", "peak_rss_max_mib")),
    ("peak task RSS", lambda r: r["peak_task_rss_mib"]),
)


def summary_lines(r: dict[str, Any]) -> list[str]:
    lines = [
        f"N={r['n']:,}: {'ok' if r['ok'] else 'FAILED: ' + '; '.join(r['problems'])}; wall {r['wall_s']} s, "
        f"Airflow CPU {r['airflow_cpu_s']} s ({r['task_cpu_s']} in tasks), moto {r['endpoint_cpu_s']} s, "
        f"peak task RSS {r['peak_task_rss_mib']} MiB, {r['requests_total']:,} requests, "
        f"{r['source_list_requests']} LIST on the source",
    ]
    for bucket, ops in sorted(r["by_bucket"].items()):
        lines.append(f"  {bucket}: " + ", ".join(f"{op} {n:,}" for op, n in sorted(ops.items())))
    for step, s in r["steps"].items():
        lines.append(
            f"  {step}: {s['tasks']} task(s), wall mean {s['wall_mean_s']} s max {s['wall_max_s']} s, "
            f"peak RSS {s['peak_rss_max_mib']} MiB, CPU {s['cpu_sum_s']} s"
        )
    return lines


def _commit() -> str:
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--object-size", type=int, default=1024)
    parser.add_argument("--rows-per-file", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--name", default="", help="default inventory-noop-nLARGEST")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.workdir = Path(tempfile.mkdtemp(prefix="s3br-bench-inventory-noop-"))
    print(f"work folder {args.workdir}", flush=True)
    tool = InventoryDeployment()
    missing = tool.missing()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    import airflow
    import moto

    times = Times.now()
    started = time.perf_counter()
    server = SeededMoto(sizes, args.object_size, times, args.workdir / "moto.log")
    print(
        f"moto seeded {2 * sum(sizes):,} objects in {server.seed_seconds} s ({server.rss_mib} MiB)",
        flush=True,
    )
    proxy = None
    runs: list[dict[str, Any]] = []
    try:
        s3 = client(server.url)
        s3.create_bucket(Bucket=INVENTORY_BUCKET)
        inventories = {n: put_inventory(s3, n, args.object_size, times, args.rows_per_file) for n in sizes}
        proxy = ProxyProcess(server.url, 0.0, args.workdir / "proxy.log")
        endpoint = Endpoint(
            "moto-seeded", proxy.url, server.proc.pid, f"moto {moto.__version__}", server.url, proxy
        )
        tool.setup(endpoint, args.workdir)
        print(f"setup done in {time.perf_counter() - started:.0f} s", flush=True)
        try:
            for n in sizes:
                runs.append(run_one(tool, endpoint, n, inventories[n], args))
                print("\n".join(summary_lines(runs[-1])), flush=True)
        finally:
            tool.teardown()
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()
    memory = psutil.virtual_memory().total / GiB
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB",
        "airflow": f"apache-airflow {airflow.__version__}",
        "moto": f"moto {moto.__version__}",
        "object_size": args.object_size,
        "rows_per_file": args.rows_per_file,
        "seeded_objects": 2 * sum(sizes),
        "seed_s": server.seed_seconds,
        "moto_rss_mib": server.rss_mib,
        "times": {k: v.isoformat() for k, v in asdict(times).items()},
    }
    name = args.name or f"inventory-noop-n{sizes[-1]}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(
        json.dumps({"meta": meta, "runs": runs}, indent=2, default=str) + "\n"
    )
    (args.out / f"{name}.md").write_text(markdown(meta, runs))
    print(f"wrote {args.out / name}.md and .json", flush=True)
    return 0 if runs and all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
