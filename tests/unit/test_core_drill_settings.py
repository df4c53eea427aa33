"""The options of issue 14: ``keys`` and ``target_mode`` of a restore (the ``keys`` rule, their
templates, where the factory hands them), and the drill's options and ``drill_group``."""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG

from s3br_provider.core.settings import (
    DRILL_DEFAULTS,
    DrillArguments,
    SettingsError,
    check_keys,
    drill_settings,
    restore_settings,
)
from s3br_provider.params import as_templates, drill_params, restore_params
from s3br_provider.task_groups import drill_group, restore_group


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        ([], []),
        (None, []),
        ("", []),
        ("None", []),
        (["b", "a", "b"], ["a", "b"]),
        ("['a/é +x.txt', 'b']", ["a/é +x.txt", "b"]),  # a rendered {{ params['keys'] }}
        ('["x"]', ["x"]),
    ],
)
def test_keys_are_a_sorted_list_from_a_list_or_its_rendered_text(value: object, keys: list[str]) -> None:
    assert check_keys(value) == keys


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ([f"k{i}" for i in range(1001)], "names 1001 keys, more than 1,000"),
        (["_s3br/runs/x"], "reserved prefix"),
        (["a", ""], "non-empty keys"),
        ("not a list", "must be a list of keys"),
        ({"a": 1}, "non-empty keys"),
    ],
)
def test_bad_keys_are_refused_naming_the_problem(value: object, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        check_keys(value)


def test_keys_must_lie_under_the_prefix_and_target_mode_is_a_choice() -> None:
    base = {"backup_bucket": "a-bak", "target_bucket": "a-new"}
    assert restore_settings({**base, "prefix": "p/", "keys": ["p/a"]}).keys == ["p/a"]
    with pytest.raises(SettingsError, match="keys not under prefix 'p/'"):
        restore_settings({**base, "prefix": "p/", "keys": ["q/a"]})
    with pytest.raises(SettingsError, match="target_mode 'overwrite' is not one of"):
        restore_settings({**base, "target_mode": "overwrite"})


def test_the_keys_param_renders_by_subscript_not_as_the_mapping_method() -> None:
    templates = as_templates(restore_params())
    assert templates["keys"] == "{{ params['keys'] }}"
    assert templates["prefix"] == "{{ params.prefix }}"


def test_restore_group_hands_keys_and_target_mode_to_the_tasks_that_take_them() -> None:
    with _dag("items") as dag:
        restore_group(
            group_id="r",
            backup_bucket="a-bak",
            target_bucket="a-src",
            keys=["a", "b"],
            target_mode="missing_only",
        )
    tasks = {task.task_id: task for task in dag.tasks}
    for task_id in ("r.validate", "r.plan_partitions", "r.partition.select", "r.verify_and_report"):
        assert tasks[task_id].keys == ["a", "b"], task_id
    for task_id in ("r.validate", "r.create_target", "r.partition.copy_batch", "r.verify_and_report"):
        assert tasks[task_id].target_mode == "missing_only", task_id


def test_the_drill_options_are_its_settings_less_the_explicit_keywords() -> None:
    assert set(DrillArguments.__annotations__) == set(DRILL_DEFAULTS.to_dict()) - {
        "backup_bucket",
        "drill_bucket",
    }
    assert list(drill_params()) == list(DRILL_DEFAULTS.to_dict())


def test_drill_settings_refuse_a_drill_bucket_that_is_the_backup_or_the_source() -> None:
    assert drill_settings({"backup_bucket": "a-bak", "drill_bucket": "a-drill"}).source_bucket == ""
    with pytest.raises(SettingsError, match="drill_bucket is the backup bucket"):
        drill_settings({"backup_bucket": "a-bak", "drill_bucket": "a-bak"})
    with pytest.raises(SettingsError, match="drill_bucket is the source bucket"):
        drill_settings({"backup_bucket": "a-bak", "source_bucket": "a-src", "drill_bucket": "a-src"})
    with pytest.raises(SettingsError, match="sample_size must be between 1 and"):
        drill_settings({"backup_bucket": "a-bak", "drill_bucket": "a-drill", "sample_size": 0})


def test_drill_group_builds_the_drill_and_hands_each_task_its_options() -> None:
    with _dag("drill") as dag:
        drill_group(
            group_id="d", backup_bucket="a-bak", drill_bucket="a-drill", sample_size=7, include_archived=True
        )
    tasks = {task.task_id: task for task in dag.tasks}
    assert sorted(tasks) == [
        "d.choose",
        "d.partition.sample",
        "d.plan_partitions",
        "d.request_restore",
        "d.restore_and_verify",
        "d.validate",
        "d.wait_for_restore",
    ]
    assert (tasks["d.partition.sample"].sample_size, tasks["d.partition.sample"].include_archived) == (
        7,
        True,
    )
    assert tasks["d.choose"].sample_size == 7
    assert tasks["d.restore_and_verify"].drill_bucket == "a-drill"
    with _dag("typo"), pytest.raises(TypeError, match="unexpected keyword argument.*sample_sise"):
        drill_group(group_id="g", backup_bucket="a-bak", drill_bucket="a-drill", sample_sise=3)
