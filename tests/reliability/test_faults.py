"""Backups and restores under injected S3 faults: transient ones are survived with every object
intact, a throttling burst is backed off, a persistent error fails the run naming the key after
a bounded number of requests."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.conftest import (
    ADDED,
    ARCHIVED,
    BIG_KEY,
    COPY_OPERATIONS,
    DELETED,
    PROXY_CONN_ID,
    TEXT,
    Obj,
    Scenario,
    assert_succeeded,
    backup_run,
    differences,
    fault_kinds,
    fault_rate,
    forwarded,
    report_json,
    restore_run,
    seed,
    task_tries,
    via,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.s3 import list_keys, snapshot

pytestmark = pytest.mark.slow

BOTOCORE_ATTEMPTS = 11  # a generous bound on botocore's standard mode (10 attempts)
TASK_TRIES = 3  # retries=2 on the mapped tasks


def small_objects(count: int, *, extra: dict[str, Obj] | None = None) -> dict[str, Obj]:
    objects = {
        f"p{i % 3}/item-{i:02d}.txt": Obj(f"item {i}".encode() * 20, TEXT, {"i": str(i)}, {"i": str(i)})
        for i in range(count)
    }
    return objects | (extra or {})


@pytest.fixture
def buckets(s3: Any, bucket_names: Any) -> tuple[str, str]:
    source, backup = bucket_names("src"), bucket_names("bak")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=backup)
    return source, backup


# 10% faults on everything ----------------------------------------------------------------------


def test_faults_were_injected_at_the_promised_rate(scenario: Scenario) -> None:
    kinds: Counter[str] = Counter()
    where: set[str] = set()
    records = []
    for name, recorded in scenario.runs.items():
        retried = {k: v for k, v in task_tries(recorded.dag_id, recorded.result.run_id).items() if v > 1}
        print(
            f"{name}: {len(recorded.records)} requests, {fault_rate(recorded.records):.1%} faulted, "
            f"{recorded.seconds:.0f} s, task instances retried: {retried or 'none'}"
        )
        kinds.update(kind.split(":")[0] for kind in fault_kinds(recorded.records))
        where |= set(fault_kinds(recorded.records))
        records += recorded.records
    print(f"all runs: {fault_rate(records):.1%} of {len(records)} requests faulted: {dict(kinds)}")
    assert fault_rate(records) >= 0.06  # 10% drawn at random: these were no fault-free runs
    assert {"slowdown", "internal", "drop", "error_200"} <= set(kinds), kinds
    assert {f"error_200:{op}" for op in COPY_OPERATIONS} <= where, where


def test_backup_under_faults_copies_every_object_intact(scenario: Scenario, s3: Any) -> None:
    first, second = scenario.runs["backup-1"], scenario.runs["backup-2"]
    assert_succeeded(first.result)
    assert_succeeded(second.result)
    copied = [r for r in forwarded(first.records, "CopyObject") if r.status == 200]
    assert {r.key for r in copied} >= set(scenario.first) - {BIG_KEY}  # copies went through the proxy
    assert forwarded(first.records, "UploadPartCopy"), "the 12 MiB object was not copied in parts"
    assert first.report is not None and first.report["totals"]["failed"] == 0, first.report
    assert second.report is not None and second.report["totals"]["failed"] == 0, second.report

    live_keys = set(scenario.live) - set(ARCHIVED)  # archived after the second backup: unreadable
    assert differences(s3, scenario.backup, {k: scenario.live[k] for k in live_keys}) == {}
    expected = set(scenario.live) | set(scenario.gone)
    assert sorted(list_keys(s3, scenario.backup)) == sorted(expected)


def test_backup_under_faults_tags_every_vanished_object(scenario: Scenario, s3: Any) -> None:
    assert_succeeded(scenario.runs["backup-2"].result)
    assert scenario.runs["backup-2"].report["totals"]["tagged_deleted"] == len(DELETED)
    assert differences(s3, scenario.backup, scenario.gone, strip_marker=True) == {}
    for key in DELETED:
        tags = snapshot(s3, scenario.backup, key, body=False).tags
        assert tags.get("Deleted") == "True" and len(tags.get("DeletedAt", "")) == 16, (key, tags)


def test_restore_under_faults_brings_back_every_object_intact(scenario: Scenario, s3: Any) -> None:
    restore = scenario.runs["restore"]
    assert_succeeded(restore.result)
    assert forwarded(restore.records, "RestoreObject"), "no GLACIER object was restored"
    assert forwarded(restore.records, "UploadPartCopy"), "the 12 MiB object was not copied in parts"
    assert restore.report is not None and restore.report["totals"]["failed"] == 0, restore.report

    assert sorted(list_keys(s3, scenario.target, include_reserved=True)) == sorted(scenario.live)
    assert differences(s3, scenario.target, scenario.live) == {}
    for key in (*ARCHIVED, *ADDED, BIG_KEY):
        assert snapshot(s3, scenario.target, key, body=False).storage_class == "STANDARD", key


def test_no_object_was_lost(scenario: Scenario, s3: Any) -> None:
    """The count the report asks for: objects of the source (live or since deleted) that the
    backup no longer holds. Whether the restore brought them back is checked above."""
    held = set(list_keys(s3, scenario.backup))
    lost = sorted(set(scenario.live) - held) + sorted(set(scenario.gone) - held)
    restored = set(list_keys(s3, scenario.target)) if bucket_exists(s3, scenario.target) else set()
    not_restored = sorted(set(scenario.live) - restored)
    print(f"objects lost: {len(lost)}; not (yet) restored: {len(not_restored)}")
    assert lost == []


def bucket_exists(s3: Any, bucket: str) -> bool:
    return bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


# A burst of throttling --------------------------------------------------------------------------


@pytest.fixture
def throttle_burst(proxy: FaultProxy) -> Iterator[list[float]]:
    """SlowDown on every CopyObject for 3 s from the moment the first copy task reads its
    manifest (so the burst hits copies, not the earlier tasks)."""
    armed: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            # The copy task's read of its manifest (GetObject), not the diff's upload of it: on a
            # loaded machine the copy task may start seconds after the diff wrote the manifest.
            if any(r.operation == "GetObject" and "/copy/p" in (r.key or "") for r in proxy.records):
                until = time.monotonic() + 3.0
                proxy.set_faults([{"kind": "slowdown", "operation": "CopyObject", "until": until}])
                armed.append(until)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield armed
    stop.set()
    watcher.join(timeout=5)


def test_backup_backs_off_a_slowdown_burst_and_finishes(
    s3: Any, buckets: tuple[str, str], proxy: FaultProxy, throttle_burst: list[float]
) -> None:
    source, backup = buckets
    objects = small_objects(30)
    seed(s3, source, objects)

    result = backup_run(source, backup, **via(PROXY_CONN_ID, "s3_backup"))

    assert throttle_burst, "the burst never started"
    assert_succeeded(result)
    throttled = [r for r in proxy.records if r.faulted_kind == "slowdown"]
    assert len(throttled) >= 5, len(throttled)
    assert all(r.ended <= throttle_burst[0] + 0.5 for r in throttled)
    per_key = Counter(r.key for r in throttled)
    done = {r.key for r in forwarded(proxy.records, "CopyObject") if r.status == 200}
    assert set(per_key) <= done, "a throttled copy was never made"
    assert max(per_key.values()) < BOTOCORE_ATTEMPTS, per_key  # backoff, not a hammering loop
    copy_tries = {k: v for k, v in task_tries("s3_backup", result.run_id).items() if "copy_batch" in k}
    assert set(copy_tries.values()) == {1}, copy_tries  # botocore's backoff absorbed it
    assert differences(s3, backup, objects) == {}
    print(f"{len(throttled)} SlowDown answers over {len(per_key)} keys; max per key {max(per_key.values())}")


# A persistent error -----------------------------------------------------------------------------

POISONED = "p1/denied key+1.txt"


def test_persistent_error_fails_the_run_naming_the_key_after_bounded_retries(
    s3: Any, buckets: tuple[str, str], proxy: FaultProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    source, backup = buckets
    objects = small_objects(24, extra={POISONED: Obj(b"never copied", TEXT, {"x": "y"})})
    seed(s3, source, objects)
    # Backup objects whose source is gone, in the poisoned key's partition: tagging must not
    # wait for a copy step that cannot succeed.
    vanished = ["p1/denied key+0.txt", "p1/denied key+2.txt"]
    seed(s3, backup, {key: Obj(b"source gone", TEXT) for key in vanished})
    proxy.set_faults([{"kind": "access_denied", "operation": "CopyObject", "key": POISONED, "rate": 1.0}])

    result = backup_run(source, backup, **via(PROXY_CONN_ID, "s3_backup"))
    output = "".join(capfd.readouterr())

    assert result.state == "failed", result.tasks
    failed = [name for name, state in result.tasks.items() if state == "failed"]
    assert len([n for n in failed if "copy_batch" in n]) == 1, result.tasks
    copy_task = next(n for n in failed if "copy_batch" in n)
    tries = task_tries("s3_backup", result.run_id)[copy_task]
    assert tries == TASK_TRIES, tries

    denied = [r for r in proxy.records if r.key == POISONED and r.faulted_kind == "access_denied"]
    assert tries <= len(denied) <= BOTOCORE_ATTEMPTS * TASK_TRIES, len(denied)
    print(f"{len(denied)} denied CopyObject requests for the key over {tries} tries")

    named = [line for line in output.splitlines() if "could not be copied" in line and repr(POISONED) in line]
    assert named, "the copy task's error does not name the key"
    assert "AccessDenied" in named[-1], named[-1]

    others = {k: v for k, v in objects.items() if k != POISONED}
    assert differences(s3, backup, others) == {}
    assert POISONED not in list_keys(s3, backup)
    for key in vanished:
        assert snapshot(s3, backup, key, body=False).tags.get("Deleted") == "True", key
    assert {state for name, state in result.tasks.items() if "tag_deleted" in name} == {"success"}

    # report.json, and the ObjectsFailed metric made from the same totals, must not say
    # "failed: 0" when an object could not be copied.
    report = report_json(s3, backup, "s3_backup", result.run_id)
    assert report is not None, "the failed run wrote no report.json"
    shown = f"totals={report['totals']} incomplete={report.get('incomplete')}"
    assert report["totals"]["failed"] >= 1 or POISONED in str(report), shown


# A restore whose target cannot be created -------------------------------------------------------


def test_a_restore_whose_target_cannot_be_created_fails(
    s3: Any, buckets: tuple[str, str], proxy: FaultProxy, bucket_names: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """create_target fails after validate passed: nothing is planned, and the report (which
    runs after any outcome) must fail the run rather than succeed with zero totals."""
    source, backup = buckets
    seed(s3, source, small_objects(4))
    assert_succeeded(backup_run(source, backup, cloudwatch_namespace=""))
    target = bucket_names("dst")
    proxy.set_faults([{"kind": "access_denied", "operation": "CreateBucket", "rate": 1.0}])

    result = restore_run(backup, target, cloudwatch_namespace="", **via(PROXY_CONN_ID, "s3_restore"))

    assert result.state == "failed", result.tasks
    states = (result.tasks["create_target"], result.tasks["verify_and_report"])
    assert states == ("failed", "failed"), result.tasks
    assert "restore incomplete: no partitions were planned" in "".join(capfd.readouterr())
    assert target not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
