"""The benchmark's output: a console table, markdown, JSON and a plot of time against N."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.tools import CASE_TITLES, CASES, Result

RAW = "raw-boto3"
PEERS = {"s5cmd": "s5cmd-sync", "aws": "aws-sync", "rclone": "rclone-copy"}
PEER_PREFIXES = ("s5cmd-", "aws-", "rclone-")
FULL_COPY = "type+meta+tags"
COLUMNS = (
    "tool",
    "case",
    "N",
    "seconds",
    "objects/s",
    "x raw",
    "x s5cmd",
    "x aws",
    "x rclone",
    "x best peer",
    "peak RSS MiB",
    "CPU s",
    "CPU s/1000",
    "endpoint CPU s",
    "endpoint CPU s/1000",
    "proxy CPU s",
    "requests/object",
    "copied",
    "check",
    "carries",
    "load",
)


def best_peer(result: Result, results: Iterable[Result]) -> Result | None:
    """The fastest successful peer run (s5cmd, aws, rclone) for the same case and N that kept
    everything s3br keeps (Content-Type, metadata, tags) where that was checked."""
    peers = [
        r
        for r in results
        if r.tool.startswith(PEER_PREFIXES)
        and (r.case, r.n) == (result.case, result.n)
        and r.ok
        and r.seconds
        and (not r.carries or r.carries == FULL_COPY)
    ]
    return min(peers, key=lambda r: r.seconds or 0, default=None)


def _best_ratio(result: Result, results: list[Result]) -> str:
    best = best_peer(result, results)
    if best is None or result.seconds is None:
        return "-"
    return f"{result.seconds / (best.seconds or 1):.2f} ({best.tool})"


def _ratio(result: Result, others: dict[tuple[str, str, int], Result], peer: str) -> str:
    other = others.get((peer, result.case, result.n))
    if other is None or not other.seconds or result.seconds is None or not other.ok:
        return "-"
    return f"{result.seconds / other.seconds:.2f}"


def _number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def rows(results: Iterable[Result]) -> list[list[str]]:
    """One row per run, ordered by N, case, then the order the tools ran in."""
    results = list(results)
    index = {(r.tool, r.case, r.n): r for r in results}
    ordered = sorted(results, key=lambda r: (r.n, CASES.index(r.case)))
    table = []
    for r in ordered:
        seconds = _number(r.seconds, 2) if r.seconds is not None else "-"
        if not r.ok:
            seconds += " (failed)"
        table.append(
            [
                r.tool,
                r.case,
                str(r.n),
                seconds,
                _number(r.objects_per_second, 0),
                _ratio(r, index, RAW),
                _ratio(r, index, PEERS["s5cmd"]),
                _ratio(r, index, PEERS["aws"]),
                _ratio(r, index, PEERS["rclone"]),
                _best_ratio(r, results),
                _number(r.peak_rss_mib, 0),
                _number(r.cpu_seconds, 1),
                _number(r.cpu_s_per_1000, 2),
                _number(r.endpoint_cpu_seconds, 1),
                _number(r.endpoint_cpu_s_per_1000, 2),
                _number(r.proxy_cpu_seconds, 1),
                _number(r.requests_per_object, 3),
                _number(r.copied),
                r.check or "-",
                r.carries or "-",
                r.load.split(" ")[0] if r.load else "-",
            ]
        )
    return table


def request_rows(results: Iterable[Result]) -> list[list[str]]:
    """Requests per S3 operation of each run, as the proxy counted them."""
    table = []
    for r in sorted(results, key=lambda r: (r.n, CASES.index(r.case))):
        if r.requests is None:
            continue
        ops = ", ".join(f"{op} {count}" for op, count in sorted(r.requests.items(), key=lambda kv: -kv[1]))
        table.append([r.tool, r.case, str(r.n), str(sum(r.requests.values())), ops or "none"])
    return table


def console_table(results: Iterable[Result]) -> str:
    table = [list(COLUMNS), *rows(results)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: Iterable[str], body: Iterable[Iterable[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def airflow_rows(results: Iterable[Result]) -> list[list[str]]:
    """Where an s3br run's time goes: inside ``execute()``, in task start-up, or between tasks."""
    table = []
    for r in sorted(results, key=lambda r: (r.n, CASES.index(r.case), r.tool)):
        if not r.tool.startswith("s3br") or not r.details:
            continue
        d = r.details
        per = d.get("per_task", {})

        def step(name: str, per: dict[str, Any] = per) -> str:
            item = per.get(name)
            if not item or "mean_s" not in item:
                return "-"
            execute = item.get("execute_mean_s")
            return f"{item['count']} x {item['mean_s']:.2f}" + (
                f" / {execute:.2f}" if execute is not None else ""
            )

        table.append(
            [
                r.tool,
                r.case,
                str(r.n),
                _number(r.seconds, 1),
                str(d.get("partitions", "-")),
                str(d.get("task_instances", "-")),
                _number(d.get("in_tasks_s"), 1),
                _number(d.get("in_execute_s"), 1),
                _number(d.get("busy_s"), 1),
                _number((r.seconds or 0) - d.get("busy_s", 0), 1),
                _number(d.get("trigger_to_first_task_s"), 1),
                *(step(name) for name in AIRFLOW_STEPS),
            ]
        )
    return table


CPU_ROLES = ("tasks", "scheduler", "dag-processor", "api-server")
CPU_ROLE_COLUMNS = (
    "tool",
    "case",
    "N",
    *(f"{r} CPU s" for r in CPU_ROLES),
    "tasks CPU s/1000",
    "all CPU s/1000",
)


def cpu_role_rows(results: Iterable[Result]) -> list[list[str]]:
    """CPU of an s3br-local run split into its task processes and each Airflow service."""
    table = []
    for r in sorted(results, key=lambda r: (r.n, CASES.index(r.case), r.tool)):
        roles = (r.details or {}).get("cpu_s_by_role")
        if not roles or not r.n:
            continue
        per = 1000 / r.n
        table.append(
            [
                r.tool,
                r.case,
                str(r.n),
                *(_number(roles.get(role), 1) for role in CPU_ROLES),
                _number(roles.get("tasks", 0.0) * per, 2),
                _number(r.cpu_s_per_1000, 2),
            ]
        )
    return table


AIRFLOW_STEPS = ("validate", "plan_partitions", "diff", "copy_batch", "tag_deleted", "report")
AIRFLOW_COLUMNS = (
    "tool",
    "case",
    "N",
    "wall s",
    "partitions",
    "task instances",
    "sum of task durations s",
    "sum in execute() s",
    "busy s",
    "no task running s",
    "trigger to 1st task s",
    *(f"{name}: n x duration / execute() s" for name in AIRFLOW_STEPS),
)


def markdown(
    results: list[Result], meta: dict[str, Any], merge_join: dict[str, Any] | None, skipped: dict[str, str]
) -> str:
    latency = meta.get("latency_ms") or 0
    mode = f", latency mode {latency:g} ms" if latency else ""
    out = [
        f"# s3br benchmark: {meta['endpoint']} endpoint{mode}, N = {', '.join(map(str, meta['sizes']))}",
        "",
    ]
    if latency:
        via = f"through `bench/proxy.py`, which sleeps {latency:g} ms before forwarding each request"
    elif meta.get("proxy"):
        via = "through `bench/proxy.py` (pass-through, counting requests)"
    else:
        via = "directly (no proxy, no request counts)"
    out += [
        f"Run {meta['started']} on {meta['machine']}; load average {meta['load_before']} before, "
        f"{meta['load_after']} after (`load` column: the 1-minute load average as each run started; "
        f"other agents share the machine). Objects of {meta['object_size']} bytes over 50 prefixes, "
        f"each with a Content-Type, one user metadata pair and one tag. "
        f"Endpoint: {meta['endpoint_version']}; the tools reach it {via}. "
        f"s3br at commit {meta.get('commit', 'unknown')}"
        + (f", Params {json.dumps(meta['s3br_conf'])}" if meta.get("s3br_conf") else "")
        + (" **Interrupted: not every run was made.**" if meta.get("interrupted") else "")
        + ".",
        "",
        "Tools:",
        "",
    ]
    out += [
        f"- **{name}** ({info['version']}): {info['description']}" for name, info in meta["tools"].items()
    ]
    for name, reason in skipped.items():
        out.append(f"- **{name}**: not run: {reason}")
    out += ["", "Cases: " + "; ".join(f"**{c}**: {t}" for c, t in CASE_TITLES.items()) + ".", ""]
    out += [markdown_table(COLUMNS, rows(results)), ""]
    out += [
        "Columns: `seconds` wall time of the tool's process (s3br-local: REST trigger to run success); "
        "`objects/s` N / seconds (objects examined, not only copied); `x raw`, `x s5cmd`, `x aws`, "
        "`x rclone` seconds divided by raw-boto3's, s5cmd-sync's, aws-sync's, rclone-copy's for the "
        "same case and N (above 1 is slower); `x best peer` seconds divided by the fastest s5cmd, aws "
        "or rclone run of the same case and N that kept Content-Type, metadata and tags (named); "
        "`peak RSS MiB` the largest single process (s3br-local: "
        "the largest task process); `CPU s` user+system CPU of the tool's processes (s3br-local: all "
        "Airflow processes: api-server, scheduler, dag-processor, executor workers, tasks), `CPU s/1000` "
        "the same per 1,000 source objects (for `full`: per 1,000 copied); `endpoint CPU s` the S3 "
        "server's CPU during the run (and per 1,000 objects); `proxy CPU s` the proxy's; "
        "`requests/object` requests the tool sent (counted by the proxy) per source object; `copied` "
        "objects the tool reports copying (where it says); `check` destination listing against the "
        "source (keys, sizes, ETags); `carries` what 8 sampled copies kept of the source's "
        "Content-Type, user metadata and tags (HeadObject and GetObjectTagging on both sides).",
        "",
    ]
    requests = request_rows(results)
    if requests:
        out += ["## Requests per operation", ""]
        out += [markdown_table(("tool", "case", "N", "requests", "by operation"), requests), ""]
    airflow = airflow_rows(results)
    if airflow:
        out += ["## Where s3br's time goes", "", markdown_table(AIRFLOW_COLUMNS, airflow), ""]
        out += [
            "`sum of task durations` adds every task instance's duration as Airflow records it "
            "(start to end, so including the task's own start-up: fork, DAG file parse, context); "
            "`sum in execute()` only the operator's `execute()` (from the task log: end of the "
            "'Pre Execute' group to the start of 'Post Execute'); `busy` is the time at least one "
            "task was running; `no task running` = wall - busy: CLI start, DAG parsing, the "
            "in-process execution API's start (dags test), scheduling and hand-offs between tasks. "
            "Per step: task count x mean duration / mean `execute()` seconds.",
            "",
        ]
    by_role = cpu_role_rows(results)
    if by_role:
        out += ["## Whose CPU: s3br's tasks against Airflow's services", ""]
        out += [markdown_table(CPU_ROLE_COLUMNS, by_role), ""]
        out += [
            "`tasks`: the LocalExecutor's workers and everything they start (each task's supervisor "
            "and task process: s3br's code, its imports, the Task SDK); the services' own processes "
            "apart (the dag-processor with the parse processes it starts). Per 1,000 as in `CPU s/1000`. "
            "The services run whether or not a backup does (a deployment's fixed cost, shared by all "
            "its DAGs); the tasks' CPU is what a backup adds.",
            "",
        ]
    if merge_join:
        out += ["## Merge-join micro-benchmark", ""]
        out += [
            f"`merge_listings` over {merge_join['pairs']:,} synthetic ObjectInfo pairs "
            f"({merge_join['keys']:,} keys; 98% unchanged, 1% changed, 0.5% new, 0.5% vanished), "
            f"one core, Python {merge_join['python']}, best of 3 by CPU time:",
            "",
        ]
        body = [
            [
                label,
                f"{merge_join[label]['keys_per_second']:,}",
                f"{merge_join[label]['cpu_seconds']:.2f}",
                f"{merge_join[label]['keys_per_second_wall']:,}",
            ]
            for label in ("merge_listings", "with_check_sorted")
        ]
        out += [markdown_table(("variant", "keys/s (CPU)", "CPU s", "keys/s (wall)"), body), ""]
    return "\n".join(out)


def write_all(
    directory: Path,
    name: str,
    results: list[Result],
    meta: dict[str, Any],
    merge_join: dict[str, Any] | None,
    skipped: dict[str, str],
) -> list[Path]:
    """Write ``NAME.md``, ``NAME.json`` and ``NAME.png``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "skipped": skipped,
        "merge_join": merge_join,
        "results": [asdict(r) | r.derived() for r in results],
    }
    written = [
        _write(directory / f"{name}.json", json.dumps(document, indent=2, default=str) + "\n"),
        _write(directory / f"{name}.md", markdown(results, meta, merge_join, skipped) + "\n"),
    ]
    png = plot(results, directory / f"{name}.png", meta)
    if png:
        written.append(png)
    return written


def _write(path: Path, text: str) -> Path:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def plot(results: list[Result], path: Path, meta: dict[str, Any]) -> Path | None:
    """Seconds against N per tool, one panel per case, log-log (None when nothing ran)."""
    if not results:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("   matplotlib not installed: no plot (pip install -e '.[bench]')")
        return None
    figure, axes = plt.subplots(1, len(CASES), figsize=(5 * len(CASES), 4.2), squeeze=False)
    tools = list(dict.fromkeys(r.tool for r in results))
    colors = {tool: f"C{i}" for i, tool in enumerate(tools)}  # one colour per tool in every panel
    for ax, case in zip(axes[0], CASES, strict=True):
        for tool in tools:
            points = sorted((r.n, r.seconds) for r in results if r.tool == tool and r.case == case and r.ok)
            if points:
                xs, ys = zip(*points, strict=True)
                style = "--" if tool == RAW else "-"
                ax.plot(xs, ys, style, marker="o", color=colors[tool], label=tool)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("objects (N)")
        ax.set_ylabel("seconds")
        ax.set_title(CASE_TITLES[case], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[t], marker="o", label=t) for t in tools]
    figure.legend(handles=handles, loc="lower center", ncol=len(tools), fontsize=8, frameon=False)
    figure.suptitle(f"s3br vs peers, {meta['endpoint']} endpoint, {meta['object_size']} B objects")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    temporary = path.with_name(path.name + ".tmp")
    figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    os.replace(temporary, path)
    return path
