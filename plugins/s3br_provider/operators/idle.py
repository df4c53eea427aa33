"""Skipping a partition's idle steps: later tasks of the same mapped task group, same map index.

A skipped task never starts: no process, no hand-off, and the UI shows it skipped. The Task SDK
marks it so when the running task raises ``DownstreamTasksSkipped`` with ``(task_id,
map_index)`` pairs (the execution API's ``ti_skip_downstream`` updates only task instances that
exist). A mapped task group's later tasks get their instances in the scheduler loop after the
group's first task was expanded, normally long before that task ends; under ``dag.test()``
(``airflow dags test``), which schedules once per batch of tasks, they do not exist yet, and
then nothing is skipped: the steps start and find nothing to do, as without skipping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import DownstreamTasksSkipped

from s3br_provider.core.idle import IDLE_SKIPPED
from s3br_provider.operators.base import InvalidArgumentsError, KeyedResultMixin


def steps_to_skip(task: Any, names: Sequence[str], argument: str = "skip_when_idle") -> list[str]:
    """The task ids of ``names`` (ids within ``task``'s group, such as ``copy_batch``), each of
    which must be downstream of ``task`` in its mapped task group (for a task in none, outside
    every mapped task group): a hand-wired DAG can never skip a task of another partition, or
    one outside the partition. ``argument`` names the operator's argument in the error."""
    if not names:
        return []
    group = _mapped_group_id(task)
    below = {t.task_id for t in task.get_flat_relatives(upstream=False) if _mapped_group_id(t) == group}
    ids = [task.task_group.child_id(name) if task.task_group else name for name in names]
    wrong = [name for name, task_id in zip(names, ids, strict=True) if task_id not in below]
    if wrong:
        where = f"in its mapped task group {group!r}" if group else "outside every mapped task group"
        raise InvalidArgumentsError(
            f"{task.task_id}: {argument} names {wrong}, not tasks downstream of it {where}"
        )
    return ids


def _mapped_group_id(task: Any) -> str | None:
    group = task.get_closest_mapped_task_group()
    return None if group is None else group.group_id


def skip_idle_steps(task: Any, context: Any, result: Any, task_ids: Sequence[str], why: str) -> None:
    """End ``task`` with ``task_ids`` of its map index skipped, ``result`` pushed as its XComs
    (a task that raises pushes none itself; a dict result marked ``IDLE_SKIPPED``); or, where
    those task instances do not exist yet, return and let them run."""
    if not task_ids:
        return
    ti = context["ti"]
    found = ti.get_ti_count(
        dag_id=ti.dag_id, map_index=ti.map_index, task_ids=list(task_ids), run_ids=[ti.run_id]
    )
    names = ", ".join(task_id.rsplit(".", 1)[-1] for task_id in task_ids)
    if found < len(task_ids):
        task.log.info("%s; %s not scheduled yet: they start and find nothing to do", why, names)
        return
    if isinstance(result, dict):
        result[IDLE_SKIPPED] = True
    _push_result(task, ti, result)
    task.log.info("%s: %s skipped", why, names)
    raise DownstreamTasksSkipped(tasks=[(task_id, ti.map_index) for task_id in task_ids])


def _push_result(task: Any, ti: Any, result: Any) -> None:
    """Push ``result`` as the task runner does after a return: each key with ``multiple_outputs``
    (or the ``output_keys`` of a ``KeyedResultMixin``), and the whole as ``return_value``."""
    if not task.do_xcom_push:
        return
    if task.multiple_outputs:
        for key, value in result.items():
            ti.xcom_push(key, value)
    elif isinstance(task, KeyedResultMixin):
        task.push_output_keys(ti, result)
    ti.xcom_push("return_value", result)
