"""The Backups page: one HTML document, a table per pair and an inline SVG chart (no scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from s3br_provider.core.progress import format_bytes

CHART_WIDTH, CHART_HEIGHT, PAD = 640, 160, 34
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933;background:#fff}
h1{font-size:1.4rem;margin:0 0 .25rem} h2{font-size:1.1rem;margin:0 0 .5rem}
.pair{border:1px solid #d0d7de;border-radius:8px;padding:1rem;margin:1rem 0}
table{border-collapse:collapse;margin:.5rem 0} td,th{padding:.2rem .8rem .2rem 0;text-align:left}
th{color:#57606a;font-weight:600} .num{text-align:right;font-variant-numeric:tabular-nums}
.state-success{color:#1a7f37} .state-failed{color:#cf222e} .late{color:#fff;background:#cf222e;
border-radius:4px;padding:0 .4rem} .ok{color:#fff;background:#1a7f37;border-radius:4px;padding:0 .4rem}
.muted{color:#57606a} svg text{font-size:11px;fill:#57606a}
@media (prefers-color-scheme: dark){body{background:#0d1117;color:#e6edf3}.pair{border-color:#30363d}}
"""


def render_page(entries: Sequence[dict[str, Any]]) -> str:
    """The whole page for the entries of ``GET /s3br/api/backups``."""
    body = "".join(_pair(entry) for entry in entries) or (
        '<p class="muted">No backup has run yet: trigger <code>s3_backup</code>, or a DAG with a '
        "<code>backup_group</code>.</p>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Backups - s3br</title>'
        f"<style>{STYLE}</style></head><body><h1>Backups</h1>"
        f'<p class="muted">{len(entries)} source/backup pair(s). JSON: '
        '<a href="api/backups">api/backups</a></p>'
        f"{body}</body></html>"
    )


def _pair(entry: dict[str, Any]) -> str:
    run = entry["last_run"]
    counts = run["counts"]
    badge = '<span class="late">late</span>' if entry["late"] else '<span class="ok">on time</span>'
    summary = _table(
        [
            ("Last success", _text(entry["last_success"]) + f" ({_age(entry['age_seconds'])})"),
            ("Objects", _num(entry["objects"])),
            ("Bytes", "-" if entry["bytes"] is None else escape(format_bytes(entry["bytes"]))),
            ("Deleted objects", _num(entry["deleted_objects"])),
            ("Last drill", _drill(entry["last_drill"])),
        ]
    )
    last = _table(
        [
            ("Run", f"{escape(run['dag_id'])} / {escape(run['run_id'])}"),
            ("State", f'<span class="state-{escape(run["state"])}">{escape(run["state"])}</span>'),
            ("Duration", "-" if run["duration_seconds"] is None else f"{run['duration_seconds']:.0f} s"),
            *((name.replace("_", " ").capitalize(), _num(value)) for name, value in counts.items()),
            ("Failures", _failures(run["failures"])),
        ]
    )
    title = f"s3://{escape(entry['source_bucket'])} &rarr; s3://{escape(entry['backup_bucket'])}"
    return (
        f'<section class="pair" data-source="{escape(entry["source_bucket"])}" '
        f'data-backup="{escape(entry["backup_bucket"])}"><h2>{title} {badge}</h2>'
        f'<div style="display:flex;gap:2rem;flex-wrap:wrap"><div>{summary}</div>'
        f"<div><b>Last run</b>{last}</div></div>"
        f"<div><b>Last {len(entry['runs'])} run(s)</b></div>{render_chart(entry['runs'])}</section>"
    )


def render_chart(series: Sequence[dict[str, Any]]) -> str:
    """Bars: objects copied per run (left scale); dots and line: duration in seconds (right scale)."""
    if not series:
        return '<p class="muted">No runs.</p>'
    inner_w, inner_h = CHART_WIDTH - 2 * PAD, CHART_HEIGHT - 2 * PAD
    top_copied = max(max(p["copied"] for p in series), 1)
    top_seconds = max(max((p["duration_seconds"] or 0) for p in series), 1)
    slot = inner_w / len(series)
    bars, points = [], []
    for i, point in enumerate(series):
        x, seconds = PAD + i * slot, point["duration_seconds"]
        height = inner_h * point["copied"] / top_copied
        tip = f"{point['run_id']}: {point['copied']} copied, {'-' if seconds is None else seconds} s"
        colour = "#cf222e" if point["state"] == "failed" else "#0969da"
        bars.append(
            f'<rect class="copied" x="{x + slot * 0.15:.1f}" y="{PAD + inner_h - height:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{height:.1f}" fill="{colour}">'
            f"<title>{escape(tip)}, {escape(point['state'])}</title></rect>"
        )
        if seconds is not None:
            points.append((x + slot / 2, PAD + inner_h - inner_h * seconds / top_seconds))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#bf8700"/>' for x, y in points)
    right, bottom = PAD + inner_w, PAD + inner_h
    axes = (
        f'<line x1="{PAD}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#8c959f"/>'
        f'<text x="{PAD}" y="{PAD - 8}">objects copied (max {top_copied})</text>'
        f'<text x="{right}" y="{PAD - 8}" text-anchor="end">duration, s (max {top_seconds:.0f})</text>'
        f'<text x="{PAD}" y="{CHART_HEIGHT - 8}">oldest</text>'
        f'<text x="{right}" y="{CHART_HEIGHT - 8}" text-anchor="end">newest</text>'
    )
    return (
        f'<svg class="chart" role="img" aria-label="objects copied and duration of the last '
        f'{len(series)} runs" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}">{axes}{"".join(bars)}'
        f'<polyline class="duration" points="{line}" fill="none" stroke="#bf8700" stroke-width="2"/>'
        f"{dots}</svg>"
    )


def _table(rows: Sequence[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _text(value: Any) -> str:
    return "never" if value is None else escape(str(value))


def _num(value: Any) -> str:
    return "-" if value is None else f'<span class="num">{int(value):,}</span>'


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "no successful run"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds} s ago"


def _drill(drill: dict[str, Any] | None) -> str:
    if drill is None:
        return '<span class="muted">no drill</span>'
    figures = ", ".join(f"{k} {v}" for k, v in drill.items() if k not in ("run_id", "started", "ended"))
    return f"{escape(drill['run_id'])}: {escape(figures)}"


def _failures(failures: Sequence[dict[str, Any]]) -> str:
    if not failures:
        return "none"
    return "<br>".join(f"{escape(str(f.get('key')))}: {escape(str(f.get('error')))}" for f in failures)
