"""Sum ``py-spy record --format raw`` profiles (collapsed stacks) into costs: which process,
which kind of work, which functions.

    python -m bench.profile /tmp/prof/s3br-local-10000-noop-*.txt [--json out.json]

(``.txt.gz`` files are read as they are: ``results/profiles/raw/`` keeps the committed ones.)

Every stack line is ``process PID:"cmdline";...;frame (file:line);... COUNT``. A sample is
the thread holding a process's GIL at one instant (``bench/airflow_runs.py`` records with
``--gil``), so shares are of Python CPU time; seconds are samples / ``--rate``. Each stack is
put in the first category of :data:`CATEGORIES` whose patterns one of its frames contains
(imports first: an import is start-up cost wherever it happens).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("module imports (process and task start-up)", ("_find_and_load (<frozen importlib",)),
    ("DAG file parsing (dag-processor, task start-up)", ("dagbag.py", "dag_processing/processor.py")),
    ("s3br listing (ListObjectsV2, diff, plan)", ("iter_objects", "list_objects", "list_page", "_list")),
    (
        "s3br copying (CopyObject)",
        ("copy_object", "_copy_object", "copy_keys", "copy_batch", "async_copies", "aiohttp/", "yarl/"),
    ),
    ("s3br other (manifests, reports, validate)", ("s3br_provider/",)),
    ("boto3/botocore (clients, signing, parsing)", ("botocore/", "boto3/")),
    ("task runner (context, XCom, state calls)", ("execution_time/task_runner.py",)),
    ("task supervisor (heartbeats, log relay)", ("execution_time/supervisor.py",)),
    ("scheduler loop", ("scheduler_job_runner.py",)),
    ("executor", ("executors/",)),
    ("api-server (execution API, REST)", ("api_fastapi/", "cadwyn/", "uvicorn/", "starlette/", "fastapi/")),
    ("dag-processor loop", ("dag_processing/",)),
    ("database (SQLAlchemy)", ("sqlalchemy/",)),
    ("logging", ("structlog/", "logging/")),
)
OTHER = "other"
_PROCESS = re.compile(r'^process (\d+):"(.*)"$')


def role_of(cmdline: str) -> str:
    """What an Airflow process is, from its command line (py-spy's ``process PID:"..."`` frame)."""
    for needle, role in (
        ("airflow scheduler", "scheduler"),
        ("dag-processor", "dag-processor"),
        ("api-server", "api-server"),
        ("api_server", "api-server"),
        ("LocalExecutor", "executor worker"),
        ("airflow worker", "task"),
        ("airflow dags test", "dags test"),
        ("serve-logs", "log server"),
    ):
        if needle in cmdline:
            return role
    return cmdline.split(" ")[0][:40] or "?"


@dataclass
class Profile:
    samples: int = 0
    by_role: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    by_function: Counter[str] = field(default_factory=Counter)
    """Inclusive samples per s3br or Airflow function (file:function), once per stack."""
    by_role_category: Counter[str] = field(default_factory=Counter)
    imported: Counter[str] = field(default_factory=Counter)
    """Import samples by the package first imported (the outermost module being executed)."""

    def add(self, line: str) -> None:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            return
        samples = int(count)
        frames = stack.split(";")
        processes = [m.group(2) for m in map(_PROCESS.match, frames) if m]
        frames = [f for f in frames if not f.startswith("process ")]
        self.samples += samples
        role = role_of(processes[-1]) if processes else "?"
        category = category_of(frames)
        self.by_role[role] += samples
        self.by_category[category] += samples
        self.by_role_category[f"{role}: {category}"] += samples
        if category == CATEGORIES[0][0]:
            self.imported[first_import(frames)] += samples
        for name in {function_of(f) for f in frames if "s3br_provider/" in f or "airflow/" in f}:
            self.by_function[name] += samples


def category_of(frames: Iterable[str]) -> str:
    frames = list(frames)
    for name, patterns in CATEGORIES:
        if any(p in frame for frame in frames for p in patterns):
            return name
    return OTHER


def first_import(frames: list[str]) -> str:
    """The package whose import a stack is in: the first ``<module>`` frame after the import
    machinery (``airflow/providers/amazon``, ``botocore``, ``s3br_provider``...)."""
    inside = False
    for frame in frames:
        if "<frozen importlib" in frame:
            inside = True
        elif inside and frame.startswith("<module> ("):
            path = frame[len("<module> (") :].rsplit(":", 1)[0]
            parts = path.split("/")
            depth = 3 if parts[:2] == ["airflow", "providers"] else 1
            return "/".join(parts[:depth])
    return "?"


def function_of(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``path/file.py:name``."""
    name, _, where = frame.partition(" (")
    return f"{where.rsplit(':', 1)[0]}:{name}"


def load(paths: Iterable[Path]) -> Profile:
    profile = Profile()
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", errors="replace") as lines:
            for line in lines:
                profile.add(line)
    return profile


def shares(counter: Counter[str], total: int, rate: float, top: int | None = None) -> list[dict[str, object]]:
    return [
        {"name": name, "samples": n, "share": round(n / total, 3), "cpu_s": round(n / rate, 1)}
        for name, n in counter.most_common(top)
    ]


def summary(profile: Profile, rate: float) -> dict[str, object]:
    total = profile.samples or 1
    return {
        "samples": profile.samples,
        "cpu_s": round(profile.samples / rate, 1),
        "by_role": shares(profile.by_role, total, rate),
        "by_category": shares(profile.by_category, total, rate),
        "by_role_and_category": shares(profile.by_role_category, total, rate, 15),
        "imports_by_package": shares(profile.imported, total, rate, 10),
        "top_functions": shares(profile.by_function, total, rate, 25),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--rate", type=float, default=50, help="py-spy's --rate (samples per second)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    result = summary(load(args.files), args.rate)
    print(f"{result['samples']} samples, ~{result['cpu_s']} CPU s")
    for title in ("by_role", "by_category", "by_role_and_category", "imports_by_package", "top_functions"):
        print(f"\n{title}:")
        for row in result[title]:  # type: ignore[union-attr]
            print(f"  {row['share']:6.1%}  {row['cpu_s']:7.1f} s  {row['name']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
