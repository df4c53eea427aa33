"""Run whole DAGs with ``dag.test()`` in this process and report task states."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

DAGS_FOLDER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "dags"
)


@dataclass
class RunResult:
    state: str
    tasks: dict[str, str]  # "task_id[map_index]" -> state
    run_id: str

    def failed_tasks(self) -> list[str]:
        return sorted(name for name, state in self.tasks.items() if state not in ("success", "skipped"))


def load_dag(dag_id: str) -> Any:
    """Parse the DAG afresh: dag.test() writes each run's conf into the DAG's Param objects,
    so a cached DAG would carry one run's Params into the next."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS_FOLDER)
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run_dag(dag_id: str, conf: dict[str, Any], *, as_scheduled: bool = False) -> RunResult:
    """Run a DAG to the end with ``conf``; return its state and every task's state.

    ``as_scheduled``: decide twice which tasks are ready before each batch runs, as a
    scheduler loops again while its tasks start (``scheduling_while_tasks_start``).
    """
    dag = load_dag(dag_id)
    if as_scheduled:
        with scheduling_while_tasks_start():
            dag_run = dag.test(run_conf=conf)
    else:
        dag_run = dag.test(run_conf=conf)
    tasks = {}
    for ti in dag_run.get_task_instances():
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        tasks[name] = str(ti.state)
    return RunResult(state=str(dag_run.state), tasks=tasks, run_id=dag_run.run_id)


@contextmanager
def scheduling_while_tasks_start() -> Iterator[None]:
    """``dag.test()`` decides once which tasks are ready, then runs them all; a scheduler
    decides again (every loop) while they start, and that is when the later tasks of a mapped
    task group get their instances (the pass after the group's first task was expanded). Each
    decision is taken twice here, so a task finds the instances it would find when scheduled:
    Airflow's own decision, only repeated."""
    from airflow.models.dagrun import DagRun

    original = DagRun.task_instance_scheduling_decisions

    def twice(self: DagRun, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    DagRun.task_instance_scheduling_decisions = twice  # type: ignore[method-assign]
    try:
        yield
    finally:
        DagRun.task_instance_scheduling_decisions = original  # type: ignore[method-assign]
