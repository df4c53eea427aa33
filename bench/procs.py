"""Run a process and measure it: wall time, peak RSS, CPU seconds; stop process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MiB = 1024 * 1024
SAMPLE_INTERVAL = 0.2
FAST_SAMPLE_INTERVAL = 0.05


@dataclass
class Usage:
    """What one measured process (and everything it started) cost."""

    seconds: float
    returncode: int
    peak_rss_mib: float | None
    cpu_seconds: float
    timed_out: bool = False


@dataclass
class ProcessPeak:
    pid: int
    title: str
    rss_mib: float = 0.0


@dataclass
class TreeSampler:
    """Poll a process tree every ``interval`` seconds and keep each process's peak RSS.

    Each sample reads the kernel's high-water mark (``VmHWM``: the largest RSS since the
    process's ``exec``), so a peak between two samples is not missed; a process that lives
    less than one interval may be. A freshly forked child that has not yet ``exec``'d still
    shows this (large) Python process's memory: samples taken with our own command line are
    ignored. (``wait4``'s ``ru_maxrss`` has the same flaw for good: Linux counts the parent's
    RSS at fork time into the child's maximum.)
    """

    roots: Sequence[int]
    interval: float = SAMPLE_INTERVAL
    peaks: dict[int, ProcessPeak] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as error:  # a sampler that dies silently would report 0 MiB
                self.errors.append(repr(error))
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for proc in tree(self.roots):
            try:
                title = " ".join(proc.cmdline())[:200]
                if title == _OWN_TITLE:
                    continue
                rss = _high_water_mib(proc)
                peak = self.peaks.setdefault(proc.pid, ProcessPeak(proc.pid, title))
                # Airflow renames its processes (setproctitle): keep the latest name, which says
                # what the process became (a forked task runner starts as its supervisor).
                peak.title = title.strip() or peak.title
                peak.rss_mib = max(peak.rss_mib, rss)  # an exiting process reads 0
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue

    def max_rss(self, matching: Callable[[ProcessPeak], bool] = lambda _: True) -> float | None:
        """The largest peak among matching processes; None when none was ever sampled."""
        return max((p.rss_mib for p in self.peaks.values() if matching(p)), default=None)


_OWN_TITLE = " ".join(psutil.Process().cmdline())[:200]


def _high_water_mib(proc: psutil.Process) -> float:
    """Peak RSS so far (``VmHWM`` from ``/proc``), or the current RSS where there is no ``/proc``."""
    try:
        with open(f"/proc/{proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return proc.memory_info().rss / MiB


def tree(roots: Iterable[int]) -> list[psutil.Process]:
    """The live processes under ``roots``, roots included."""
    found: list[psutil.Process] = []
    for pid in roots:
        try:
            root = psutil.Process(pid)
            found += [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


def tree_cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds used so far by the live processes under ``roots`` and the children they reaped.

    The difference of two readings is what the tree used in between, as long as no process that
    used CPU exited unreaped by a live member of the tree.
    """
    total = 0.0
    for proc in tree(roots):
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return total


def tree_cpu_by_role(roots: dict[str, int], role_of: Callable[[str], str | None]) -> dict[str, float]:
    """:func:`tree_cpu_seconds` split by role: each process counts for its root's role, unless
    ``role_of(its command line)`` or an ancestor's names another (an executor worker under the
    scheduler: ``tasks``). A process that exits between two readings moves its CPU into its
    reaper's children times, so a worker that exits counts for the scheduler: the split is
    exact for long-lived workers, as the LocalExecutor's are."""
    totals: dict[str, float] = {}
    for role, pid in roots.items():
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        named: dict[int, str | None] = {pid: role}
        parent: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for proc in members:
            try:
                if proc.pid != pid:
                    named[proc.pid] = role_of(" ".join(proc.cmdline()))
                    parent[proc.pid] = proc.ppid()
                t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            cpu[proc.pid] = t.user + t.system + t.children_user + t.children_system

        for p, seconds in cpu.items():
            while named.get(p) is None and p in parent:  # the nearest named ancestor's role
                p = parent[p]
            own = named.get(p) or role
            totals[own] = totals.get(own, 0.0) + seconds
    return totals


def run_measured(
    cmd: Sequence[str],
    *,
    env: dict[str, str],
    log: Path,
    timeout: float,
    cwd: str | Path | None = None,
) -> Usage:
    """Run ``cmd`` to the end in its own process group; output goes to ``log``.

    Peak RSS is the largest single process of the tree, sampled every 50 ms (see
    :class:`TreeSampler`); CPU is user plus system time of the process and its reaped
    descendants, from ``wait4``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        began = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out, finished = threading.Event(), threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
            _signal_group(proc.pid, signal.SIGTERM)
            if not finished.wait(5):
                _signal_group(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill_on_timeout)
        timer.start()
        try:
            with TreeSampler([proc.pid], interval=FAST_SAMPLE_INTERVAL) as sampler:
                _, status, rusage = os.wait4(proc.pid, 0)
                seconds = time.perf_counter() - began
        finally:
            finished.set()
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Usage(
        seconds=seconds,
        returncode=proc.returncode,
        peak_rss_mib=sampler.max_rss(),
        cpu_seconds=rusage.ru_utime + rusage.ru_stime,
        timed_out=timed_out.is_set(),
    )


def stop_process(proc: subprocess.Popen, grace: float = 30) -> None:
    """Stop a service started with ``start_new_session=True``: SIGTERM its process group, then
    SIGKILL what is left of the group once the leader exited or ``grace`` seconds passed."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
