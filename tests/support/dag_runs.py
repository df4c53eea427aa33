"""Run whole DAGs with ``dag.test()`` in this process and report task states."""

from __future__ import annotations

import os
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


def run_dag(dag_id: str, conf: dict[str, Any]) -> RunResult:
    """Run a DAG to the end with ``conf``; return its state and every task's state."""
    dag = load_dag(dag_id)
    dag_run = dag.test(run_conf=conf)
    tasks = {}
    for ti in dag_run.get_task_instances():
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        tasks[name] = str(ti.state)
    return RunResult(state=str(dag_run.state), tasks=tasks, run_id=dag_run.run_id)
