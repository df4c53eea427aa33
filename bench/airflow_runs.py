"""s3br's ``s3_backup`` DAG as a benchmarked tool: ``airflow dags test`` on SQLite, and a
LocalExecutor deployment (scheduler, dag-processor, api-server) on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.endpoints import HOST, Endpoint, free_ports
from bench.procs import ProcessPeak, TreeSampler, Usage, stop_process, tree_cpu_by_role, tree_cpu_seconds
from bench.s3data import client
from bench.toolpaths import tool_path
from bench.tools import ROOT, EndpointMeter, Result, RunSpec, Tool

sys.path.insert(0, str(ROOT))
from tests.support.s3 import env_for_airflow  # noqa: E402

DAG_ID = "s3_backup"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
PG_DSN = "host=127.0.0.1 port=5432 user=postgres"
TERMINAL = ("success", "failed")
LOCAL_PARALLELISM = 8


#: Params on top of the defaults for every s3br run (``run.py --s3br-conf``).
EXTRA_CONF: dict[str, Any] = {}
EXTRA_AIRFLOW: dict[str, str] = {}
"""Airflow options (environment variables) for every s3br deployment on top of its own
(``--s3br-airflow``), e.g. ``{"AIRFLOW__CORE__PARALLELISM": "3"}``."""


def backup_conf(spec: RunSpec) -> dict[str, Any]:
    # Metrics off: the peers publish none, and SeaweedFS serves no CloudWatch API.
    return {"source_bucket": spec.src, "backup_bucket": spec.dst, "cloudwatch_namespace": "", **EXTRA_CONF}


def _epoch(value: datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # Airflow stores UTC
    return value.timestamp()


def summarize_tasks(rows: list[tuple[Any, ...]], started: float | None = None) -> dict[str, Any]:
    """Per-task-type durations of one run, and how much of the run any task was running.

    ``rows`` are ``(task_id, map_index, state, start_date, end_date, duration, queued_dttm)``.
    ``busy_s`` is the length of the union of the task intervals: the rest of the wall time is
    spent outside any task (process start, scheduling, state changes).
    """
    per_task: dict[str, list[float]] = defaultdict(list)
    intervals: list[tuple[float, float]] = []
    queue_delays: list[float] = []
    states: Counter[str] = Counter()
    for task_id, _map_index, state, start, end, duration, queued in rows:
        states[str(state)] += 1
        begin, finish = _epoch(start), _epoch(end)
        if begin is None or finish is None:
            continue
        per_task[task_id.split(".")[-1]].append(float(duration or finish - begin))
        intervals.append((begin, finish))
        if queued is not None:
            queue_delays.append(begin - (_epoch(queued) or begin))
    summary: dict[str, Any] = {
        "task_instances": len(rows),
        "states": dict(states),
        "in_tasks_s": round(sum(sum(v) for v in per_task.values()), 3),
        "busy_s": round(_union_length(intervals), 3),
        "per_task": {
            name: {
                "count": len(v),
                "sum_s": round(sum(v), 3),
                "mean_s": round(sum(v) / len(v), 3),
                "max_s": round(max(v), 3),
            }
            for name, v in sorted(per_task.items())
        },
    }
    if intervals:
        first, last = min(b for b, _ in intervals), max(e for _, e in intervals)
        summary["first_task_start_to_last_end_s"] = round(last - first, 3)
        if started is not None:
            summary["trigger_to_first_task_s"] = round(first - started, 3)
    if queue_delays:
        summary["mean_queued_to_start_s"] = round(sum(queue_delays) / len(queue_delays), 3)
    return summary


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for begin, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(begin, reach)
        reach = end
    return total


PRE_EXECUTE_END = "::endgroup::"
POST_EXECUTE = "::group::Post Execute"
_DAGS_TEST_LINE = re.compile(r"^(\S+Z) \[\w+\s*\] (.*)$")
_DAGS_TEST_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")


def _execute_span(events: Iterable[tuple[str, str]]) -> float | None:
    """Seconds inside ``execute()``: from the end of the task runner's "Pre Execute" log
    group (DAG file parsed, context built) to the start of its "Post Execute" group."""
    began = None
    for timestamp, event in events:
        if event.startswith(PRE_EXECUTE_END) and began is None:
            began = timestamp
        elif event.startswith(POST_EXECUTE) and began is not None:
            return _epoch(timestamp.replace("Z", "+00:00")) - _epoch(began.replace("Z", "+00:00"))
    return None


def execute_times_from_dags_test(output: str) -> dict[str, list[float]]:
    """``execute()`` seconds per task type, from ``airflow dags test`` output."""
    per_task: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in output.splitlines():
        match = _DAGS_TEST_LINE.match(line)
        if not match:
            continue
        timestamp, event = match.groups()
        start = _DAGS_TEST_START.search(event)
        if start:
            current = f"{start.group(1)}[{start.group(2)}]"
            per_task[current] = []
        elif current is not None:
            per_task[current].append((timestamp, event.strip()))
    return _by_type({name: _execute_span(events) for name, events in per_task.items()})


def execute_times_from_task_logs(folder: Path) -> dict[str, list[float]]:
    """``execute()`` seconds per task type, from one run's JSON task log files."""
    spans: dict[str, float | None] = {}
    for path in sorted(folder.rglob("*.log")):
        events = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            events.append((str(record.get("timestamp", "")), str(record.get("event", ""))))
        spans[str(path.relative_to(folder))] = _execute_span(events)
    return _by_type(spans)


def _task_type(name: str) -> str:
    """``partition.copy_batch[3]`` or ``task_id=partition.copy_batch/map_index=3/...`` -> ``copy_batch``."""
    return name.split("task_id=")[-1].split("/")[0].split("[")[0].split(".")[-1]


def _by_type(spans: dict[str, float | None]) -> dict[str, list[float]]:
    grouped: dict[str, list[float]] = defaultdict(list)
    for name, seconds in spans.items():
        if seconds is not None:
            grouped[_task_type(name)].append(seconds)
    return dict(grouped)


def add_execute_times(summary: dict[str, Any], execute: dict[str, list[float]]) -> None:
    """Put the ``execute()`` seconds next to each task type's recorded durations."""
    for name, seconds in execute.items():
        entry = summary["per_task"].setdefault(name, {"count": len(seconds)})
        entry["execute_sum_s"] = round(sum(seconds), 3)
        entry["execute_mean_s"] = round(sum(seconds) / len(seconds), 3)
    summary["in_execute_s"] = round(sum(sum(v) for v in execute.values()), 3)


RUN_SQL = "SELECT state, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s"
TASKS_SQL = (
    "SELECT task_id, map_index, state, start_date, end_date, duration, queued_dttm "
    "FROM task_instance WHERE dag_id = {p} AND run_id = {p}"
)


def latest_report(endpoint_url: str, bucket: str) -> dict[str, Any] | None:
    """The newest ``report.json`` that s3br wrote into the backup bucket."""
    s3 = client(endpoint_url)
    reports = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="_s3br/runs/s3_backup/"):
        reports += [o for o in page.get("Contents", []) if o["Key"].endswith("/report.json")]
    if not reports:
        return None
    newest = max(reports, key=lambda o: o["LastModified"])
    return json.loads(s3.get_object(Bucket=bucket, Key=newest["Key"])["Body"].read())


def _describe(summary: dict[str, Any], seconds: float) -> str:
    per = summary.get("per_task", {})
    parts = [f"{name} {v['count']}x{v['mean_s']:.2f}s" for name, v in per.items()]
    return (
        f"{summary.get('task_instances', 0)} tasks, in tasks {summary.get('in_tasks_s', 0):.1f}s, "
        f"busy {summary.get('busy_s', 0):.1f}s of {seconds:.1f}s ({', '.join(parts)})"
    )


class S3brDagsTest(Tool):
    name = "s3br-dags-test"
    description = "airflow dags test s3_backup -c CONF (SQLite; tasks one after another, in-process)"

    home_name = "airflow-sqlite"

    def __init__(self) -> None:
        self.home: Path | None = None

    def version(self) -> str:
        import airflow

        return f"apache-airflow {airflow.__version__}"

    def setup(self, endpoint: Endpoint, workdir: Path) -> None:
        self.home = workdir / self.home_name
        self.home.mkdir(parents=True, exist_ok=True)
        env = self._airflow_env(endpoint)
        with open(workdir / "airflow-sqlite-migrate.log", "wb") as log:
            subprocess.run([AIRFLOW, "db", "migrate"], env=env, stdout=log, stderr=log, check=True)

    def _airflow_env(self, endpoint: Endpoint) -> dict[str, str]:
        assert self.home is not None
        return {**os.environ, **env_for_airflow(str(self.home), endpoint.url)}

    def command(self, spec: RunSpec) -> list[str]:
        command = [AIRFLOW, "dags", "test", DAG_ID, "-c", json.dumps(backup_conf(spec))]
        if self.profile_dir is None:
            return command
        return [*py_spy_record(profile_path(self.profile_dir, self.name, spec)), "--", *command]

    def env(self, spec: RunSpec) -> dict[str, str]:
        return self._airflow_env(spec.endpoint)

    def result(self, spec: RunSpec, usage: Usage) -> Result:
        result = super().result(spec, usage)
        assert self.home is not None
        with sqlite3.connect(self.home / "airflow.db") as db:
            run_id, state = db.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
            ).fetchone()
            rows = db.execute(TASKS_SQL.format(p="?"), (DAG_ID, run_id)).fetchall()
        summary = summarize_tasks(rows)
        summary["run_id"], summary["state"] = run_id, state
        add_execute_times(
            summary, execute_times_from_dags_test(spec.log(self.name).read_text(errors="replace"))
        )
        result.details = summary
        result.ok = result.ok and state == "success"
        if state != "success":
            result.note = f"dag run {state}"
        _add_report(result, spec)
        result.note = result.note or _describe(summary, usage.seconds)
        return result


FLOOR_DAG_ID = "airflow_floor"
FLOOR_DAG = f'''"""One task that does nothing: what ``airflow dags test`` costs before any work."""

from airflow.sdk import dag, task


@dag(dag_id="{FLOOR_DAG_ID}", schedule=None)
def floor():
    @task
    def nothing() -> None:
        return None

    nothing()


floor()
'''


class AirflowFloor(S3brDagsTest):
    """``airflow dags test`` of a one-task DAG that does nothing, on the same SQLite Airflow: the
    CLI's start, DAG parsing and the in-process execution API, which every ``dags test`` pays
    before any work (the part of s3br-dags-test that no s3br code can remove)."""

    name = "airflow-floor"
    description = "airflow dags test of a one-task DAG that does nothing (reference: the CLI's own cost)"
    cases = ("noop",)
    copies = False
    home_name = "airflow-floor"

    def setup(self, endpoint: Endpoint, workdir: Path) -> None:
        self.dags = workdir / "airflow-floor-dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        (self.dags / "airflow_floor.py").write_text(FLOOR_DAG)
        super().setup(endpoint, workdir)

    def _airflow_env(self, endpoint: Endpoint) -> dict[str, str]:
        return {**super()._airflow_env(endpoint), "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags)}

    def command(self, spec: RunSpec) -> list[str]:
        return [AIRFLOW, "dags", "test", FLOOR_DAG_ID]

    def result(self, spec: RunSpec, usage: Usage) -> Result:
        result = Tool.result(self, spec, usage)
        result.note = result.note or "reference: one task that does nothing"
        return result


PY_SPY_RATE = 50


def profile_path(folder: Path, tool: str, spec: RunSpec, role: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{tool}-{spec.n}-{spec.case}{'-' + role if role else ''}.txt"


def py_spy_record(out: Path) -> list[str]:
    """``py-spy record`` writing collapsed stacks (``--format raw``, one line per stack with its
    sample count; ``bench/profile.py`` sums them), child processes included. ``--gil``: only the
    thread holding the GIL is sampled, so samples / rate is each process's Python CPU time
    (without it py-spy counts threads waiting in ``Condition.wait``, ``epoll`` or a semaphore as
    busy: three times the CPU the processes used, in a trial run)."""
    py_spy = tool_path("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy not installed (bench/setup_tools.sh)")
    return [
        *(py_spy, "record", "--format", "raw", "--subprocesses", "--gil"),
        *("--rate", str(PY_SPY_RATE), "-o", str(out)),
    ]


def _add_report(result: Result, spec: RunSpec) -> None:
    report = latest_report(spec.endpoint.url, spec.dst)
    if report:
        totals = report.get("totals", {})
        result.copied = totals.get("copied")
        result.details["partitions"] = totals.get("partitions")


class S3brLocalExecutor(Tool):
    """A small Airflow deployment: LocalExecutor with ``parallelism`` 8 on PostgreSQL.

    The scheduler, dag-processor and api-server run for the whole benchmark; each run is
    triggered through the REST API and timed from the trigger to the run's success.
    """

    name = "s3br-local"
    description = (
        f"s3_backup triggered over REST on a LocalExecutor deployment (PostgreSQL, "
        f"parallelism {LOCAL_PARALLELISM}); trigger to success"
    )
    settings: dict[str, str] = {}
    """Airflow options on top of the defaults (environment variables)."""
    dag_id = DAG_ID
    """The DAG each run triggers (in the repository's ``dags/``, or ``dag_file``'s folder)."""
    dag_file: str | None = None
    """Source of a DAG file of its own: the deployment's DAG folder holds that file alone."""

    def __init__(self) -> None:
        self.database = f"s3br_bench_{self.name.replace('-', '_')}_{os.getpid()}"
        self.home = Path()
        self.services: dict[str, subprocess.Popen] = {}
        self.api = ""
        self.env_vars: dict[str, str] = {}

    def version(self) -> str:
        import airflow

        return f"apache-airflow {airflow.__version__} LocalExecutor"

    def missing(self) -> str | None:
        try:
            import psycopg2
        except ImportError:
            return "psycopg2 not installed: pip install -e '.[bench]'"
        try:
            psycopg2.connect(PG_DSN + " dbname=postgres", connect_timeout=3).close()
        except psycopg2.Error as error:
            return f"PostgreSQL at 127.0.0.1:5432 not reachable: {str(error).strip()}"
        return None

    # Deployment ----------------------------------------------------------------------------

    def setup(self, endpoint: Endpoint, workdir: Path) -> None:
        self.home = home = workdir / f"airflow-{self.name}"  # each deployment its own home and logs
        home.mkdir(parents=True, exist_ok=True)
        self._sql(f'DROP DATABASE IF EXISTS "{self.database}"')
        self._sql(f'CREATE DATABASE "{self.database}"')
        api_port, log_port = free_ports(2)
        self.api = f"http://{HOST}:{api_port}"
        self.env_vars = {
            **os.environ,
            **env_for_airflow(str(home), endpoint.url),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.database}"
            ),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(LOCAL_PARALLELISM),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API__BASE_URL": self.api,
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            # Only the benchmark's triggered runs: no daily run (a midnight during the benchmark
            # would queue one, and the next triggered run would wait for it: max_active_runs 1).
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            **self.settings,
            **EXTRA_AIRFLOW,
        }
        if self.dag_file is not None:
            dags = home / "dags"
            dags.mkdir(exist_ok=True)
            (dags / f"{self.dag_id}.py").write_text(self.dag_file)
            self.env_vars["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        with open(workdir / f"{self.name}-migrate.log", "wb") as log:
            subprocess.run([AIRFLOW, "db", "migrate"], env=self.env_vars, stdout=log, stderr=log, check=True)
        for service in ("api-server", "scheduler", "dag-processor"):
            log = open(workdir / f"{self.name}-{service}.log", "wb")  # noqa: SIM115 - the child's
            self.services[service] = subprocess.Popen(
                [AIRFLOW, service],
                env=self.env_vars,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_for(lambda: self._get("/api/v2/monitor/health") is not None, "the api-server", 120)
        parsed = f"/api/v2/dags/{self.dag_id}"
        self._wait_for(lambda: self._get(parsed) is not None, "the DAG to be parsed", 180)
        self._request("PATCH", f"/api/v2/dags/{self.dag_id}", {"is_paused": False})
        self._warm_up()

    def _warm_up(self) -> None:
        """Run the DAG once, untimed, as a deployment that has been up a while has: the
        api-server builds its execution API (Cadwyn's versioned routes, 4-8 s on 2 cores) on
        the first request a task makes, and only the first task after its start pays that.
        No buckets named: s3_backup fails in validate, having made those requests (a floor's
        DAG takes no conf and succeeds)."""
        run = self._request("POST", f"/api/v2/dags/{self.dag_id}/dagRuns", {"logical_date": None, "conf": {}})
        path = f"/api/v2/dags/{self.dag_id}/dagRuns/{_quote(run['dag_run_id'])}"
        self._wait_for(lambda: self._request("GET", path)["state"] in TERMINAL, "the warm-up run", 300)

    def pause(self) -> None:
        self._signal_services(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_services(signal.SIGCONT)

    def _signal_services(self, signum: int) -> None:
        """Signal each service's process group (the services and the task processes they fork)."""
        for proc in self.services.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signum)

    def teardown(self) -> None:
        self.resume()
        for service in ("scheduler", "dag-processor", "api-server"):
            proc = self.services.pop(service, None)
            if proc is not None:
                stop_process(proc, grace=30)
        try:
            self._sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except Exception as error:
            print(f"   could not drop database {self.database}: {error}", flush=True)

    # One run -------------------------------------------------------------------------------

    def run(self, spec: RunSpec) -> Result:
        roots = [proc.pid for proc in self.services.values()]
        profilers = self._start_profilers(spec)
        cpu_before = tree_cpu_seconds(roots)
        by_role_before = self._cpu_by_role()
        deadline = time.monotonic() + spec.timeout
        with TreeSampler(roots) as sampler, EndpointMeter(spec.endpoint) as meter:
            started_at = time.time()
            began = time.perf_counter()
            run = self._request(
                "POST", f"/api/v2/dags/{self.dag_id}/dagRuns", {"logical_date": None, "conf": self.conf(spec)}
            )
            run_id = run["dag_run_id"]
            state, ended_at = self._watch_run(run_id, run["state"], deadline)
            # Trigger to the run's end as the scheduler recorded it, not to when the poll saw it.
            seconds = ended_at - started_at if ended_at else time.perf_counter() - began
        cpu_seconds = tree_cpu_seconds(roots) - cpu_before
        by_role = {k: v - by_role_before.get(k, 0.0) for k, v in self._cpu_by_role().items()}
        self._stop_profilers(profilers)
        ok = state == "success"
        result = Result(
            tool=self.name,
            case=spec.case,
            n=spec.n,
            seconds=seconds,
            ok=ok,
            peak_rss_mib=sampler.max_rss(_is_task_process) or sampler.max_rss(),
            cpu_seconds=cpu_seconds,
            note="" if ok else f"dag run {state}",
        )
        meter.fill(result)
        summary = summarize_tasks(self._task_rows(run_id), started=started_at)
        summary["run_id"], summary["state"] = run_id, state
        summary["peak_rss_mib"] = _peaks_by_role(sampler, self.services)
        summary["cpu_s_by_role"] = {k: round(v, 2) for k, v in sorted(by_role.items())}
        add_execute_times(
            summary,
            execute_times_from_task_logs(self.home / "logs" / f"dag_id={self.dag_id}" / f"run_id={run_id}"),
        )
        result.details = summary
        if self.copies:
            _add_report(result, spec)
        result.note = result.note or _describe(summary, seconds)
        return result

    def conf(self, spec: RunSpec) -> dict[str, Any]:
        """The triggered run's conf."""
        return backup_conf(spec)

    def _cpu_by_role(self) -> dict[str, float]:
        """CPU seconds so far of each service's processes, the executor workers' (and so the
        task processes they start) apart as ``tasks``: s3br's own work against Airflow's."""
        return tree_cpu_by_role(
            {role: proc.pid for role, proc in self.services.items()},
            lambda title: "tasks" if "LocalExecutor" in title else None,
        )

    def _start_profilers(self, spec: RunSpec) -> list[subprocess.Popen]:
        """One ``py-spy record`` per service (scheduler, dag-processor, api-server), each following
        the processes its service starts (the scheduler's: executor workers and tasks)."""
        if self.profile_dir is None:
            return []
        profilers = []
        for role, proc in self.services.items():
            out = profile_path(self.profile_dir, self.name, spec, role)
            log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115 - the child's
            profilers.append(
                subprocess.Popen(
                    [*py_spy_record(out), "--pid", str(proc.pid)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        time.sleep(1)  # py-spy attaches before the run starts
        return profilers

    def _stop_profilers(self, profilers: list[subprocess.Popen]) -> None:
        """SIGINT: py-spy writes its profile and exits."""
        for proc in profilers:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for proc in profilers:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                stop_process(proc, grace=5)

    # Helpers -------------------------------------------------------------------------------

    def _watch_run(self, run_id: str, state: str, deadline: float) -> tuple[str, float | None]:
        """Wait for the run to end; its last state and end (epoch seconds; None: timed out).

        Polled in the deployment's database, not over REST: each REST poll costs the api-server
        a token and a DAG-version lookup (5 of its 16 sampled CPU s in a 124 s run), CPU that
        the backup being measured would otherwise compete with."""
        import psycopg2

        db = psycopg2.connect(f"{PG_DSN} dbname={self.database}")
        db.autocommit = True
        try:
            with db.cursor() as cursor:
                while time.monotonic() < deadline:
                    cursor.execute(RUN_SQL, (self.dag_id, run_id))
                    row = cursor.fetchone()
                    if row is not None:
                        state = str(row[0])
                        if state in TERMINAL:
                            return state, row[1].timestamp() if row[1] else None
                    time.sleep(0.25)
        finally:
            db.close()
        return state, None

    def _task_rows(self, run_id: str) -> list[tuple[Any, ...]]:
        import psycopg2

        with psycopg2.connect(f"{PG_DSN} dbname={self.database}") as db, db.cursor() as cursor:
            cursor.execute(TASKS_SQL.format(p="%s"), (self.dag_id, run_id))
            return list(cursor.fetchall())

    def _sql(self, statement: str) -> None:
        import psycopg2

        db = psycopg2.connect(PG_DSN + " dbname=postgres")
        try:
            db.autocommit = True
            with db.cursor() as cursor:
                cursor.execute(statement)
        finally:
            db.close()

    def _runs(self) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/v2/dags/{self.dag_id}/dagRuns?limit=100").get("dag_runs", [])

    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", path)
        except (OSError, urllib.error.HTTPError):
            return None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.api + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"{}")

    def _wait_for(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.services.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited ({proc.returncode}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(1)


def _quote(run_id: str) -> str:
    return urllib.request.quote(run_id, safe="")


def _is_task_process(peak: ProcessPeak) -> bool:
    """Airflow 3 names a task's process ``airflow worker -- <ti id>`` (setproctitle); the
    LocalExecutor worker that supervises it is ``airflow worker -- LocalExecutor: ...``."""
    return peak.title.startswith("airflow worker -- ") and "LocalExecutor" not in peak.title


def _peaks_by_role(sampler: TreeSampler, services: dict[str, subprocess.Popen]) -> dict[str, float]:
    roles: dict[str, float] = {}
    service_pids = {proc.pid: name for name, proc in services.items()}
    for peak in sampler.peaks.values():
        if peak.pid in service_pids:
            role = service_pids[peak.pid]
        elif _is_task_process(peak):
            role = "task"
        elif "LocalExecutor" in peak.title:
            role = "executor worker"
        else:
            role = "other"
        roles[role] = round(max(roles.get(role, 0.0), peak.rss_mib), 1)
    return roles


class S3brLocalTuned(S3brLocalExecutor):
    """The same deployment with the README's Tuning setting for the scheduler.

    ``scheduler_idle_sleep_time`` 0.1 s instead of 1 s. The backup is a chain of six steps;
    after each one the scheduler must notice the finished task and queue the next. When a loop
    found nothing to do it sleeps this long, so each hand-off waits half of it on average. The
    price is a scheduler polling its database ten times a second when idle.
    """

    name = "s3br-local-tuned"
    description = (
        "the s3br-local deployment with [scheduler] scheduler_idle_sleep_time = 0.1 (default 1); "
        "trigger to success"
    )
    settings = {"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1"}


class S3brLocalNoPreload(S3brLocalExecutor):
    """The s3br-local deployment with s3br's preload off: every task process imports boto3 and
    s3br and parses S3's model itself (what s3br-local was before ``fork_preload``)."""

    name = "s3br-local-no-preload"
    description = (
        "the s3br-local deployment with [s3br] preload_sdk = False (each task process loads the "
        "AWS SDK itself); trigger to success"
    )
    settings = {"AIRFLOW__S3BR__PRELOAD_SDK": "False"}


class AirflowLocalFloor(S3brLocalExecutor):
    """The s3br-local deployment running a one-task DAG that does nothing: what any triggered
    run costs there before any work (the trigger, the scheduler's hand-offs, one task process,
    its execution API calls): the part of s3br-local that no s3br code can remove."""

    name = "airflow-local-floor"
    description = (
        "the s3br-local deployment running a one-task DAG that does nothing "
        "(reference: a triggered run's own cost)"
    )
    cases = ("noop",)
    copies = False
    dag_id = FLOOR_DAG_ID
    dag_file = FLOOR_DAG

    def conf(self, spec: RunSpec) -> dict[str, Any]:
        return {}


class AirflowLocalFloorTuned(AirflowLocalFloor):
    """The floor on the tuned deployment (``S3brLocalTuned``'s setting)."""

    name = "airflow-local-floor-tuned"
    description = "airflow-local-floor on the s3br-local-tuned deployment (reference)"
    settings = S3brLocalTuned.settings
