"""Whole ``s3_restore_drill`` runs against a backup made by ``s3_backup``, through a recording
proxy: the drill bucket's expiration rule required (or added), a seeded sample restored under
``s3br-drill/<run_id>/`` and checked, a backup object changed in place caught and named, archived
objects skipped unless ``include_archived``, and not one Delete request sent, ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from s3br_provider.core.drill import drill_key, expiration_covers, expiration_rule
from tests.reliability.conftest import (
    PROXY_CONN_ID,
    TEXT,
    assert_succeeded,
    backup_run,
    move_to_glacier,
    report_json,
    run,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.iam import missing_permissions, policy
from tests.support.s3 import Obj, aws_conn_env, list_keys, seed, snapshot

pytestmark = pytest.mark.slow

DAG_ID = "s3_restore_drill"
CHANGED_IN_PLACE = "d/obj-03.txt"
ARCHIVED = "d/obj-05.txt"


def objects() -> dict[str, Obj]:
    found = {
        f"d/obj-{i:02d}.txt": Obj(f"object {i}\n".encode() * (i + 1), TEXT, {"i": str(i)}, {"n": str(i)})
        for i in range(12)
    }
    found["odd/with space é.bin"] = Obj(b"\x00\xff" * 40, "application/x-odd", {"k": "v w"}, {"t": "a+b"})
    return found


@pytest.fixture
def proxy(endpoint: str, monkeypatch: pytest.MonkeyPatch, airflow_db: str) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint, seed=1401) as running:
        monkeypatch.setenv(f"AIRFLOW_CONN_{PROXY_CONN_ID.upper()}", aws_conn_env(running.endpoint_url))
        yield running


@pytest.fixture
def backed_up(s3: Any, bucket_names: Any, proxy: FaultProxy) -> dict[str, str]:
    """A source, its backup (one s3_backup run) and an empty drill bucket without lifecycle rules."""
    names = {role: bucket_names(role) for role in ("src", "bak", "drill")}
    for bucket in names.values():
        s3.create_bucket(Bucket=bucket)
    seed(s3, names["src"], objects())
    assert_succeeded(backup_run(names["src"], names["bak"]))
    return names


def drill(names: dict[str, str], **conf: Any) -> Any:
    connections = {"backup_aws_conn_id": PROXY_CONN_ID, "source_aws_conn_id": PROXY_CONN_ID}
    connections["drill_aws_conn_id"] = PROXY_CONN_ID
    conf = {"poll_interval_seconds": 1, **connections, **conf}
    return run(
        DAG_ID,
        {
            "backup_bucket": names["bak"],
            "source_bucket": names["src"],
            "drill_bucket": names["drill"],
            **conf,
        },
    )


def drilled(s3: Any, names: dict[str, str], run_id: str) -> list[str]:
    prefix = drill_key(run_id, "")
    return sorted(k.removeprefix(prefix) for k in list_keys(s3, names["drill"]) if k.startswith(prefix))


def parts(s3: Any, bucket: str, key: str) -> tuple[Any, ...]:
    snap = snapshot(s3, bucket, key)
    return snap.body, snap.content_type, snap.metadata, snap.tags


def drill_policy(names: dict[str, str]) -> list[dict[str, Any]]:
    """iam/drill-policy.json for these buckets: every request of a drill must be allowed by it."""
    return policy(
        "drill-policy", BACKUP_BUCKET=names["bak"], SOURCE_BUCKET=names["src"], DRILL_BUCKET=names["drill"]
    )


def deletes(proxy: FaultProxy) -> list[tuple[str, str | None, str | None]]:
    return [(r.operation, r.bucket, r.key) for r in proxy.records if r.method == "DELETE"]


def test_drill_checks_a_seeded_sample_and_names_a_backup_object_changed_in_place(
    s3: Any, proxy: FaultProxy, backed_up: dict[str, str]
) -> None:
    names = backed_up
    proxy.reset_records()

    refused = drill(names, sample_size=5)
    assert (refused.state, refused.tasks["validate"]) == ("failed", "failed")
    assert list_keys(s3, names["drill"]) == []

    passed = drill(names, sample_size=5, drill_expiration_days=3)
    assert_succeeded(passed)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=names["drill"])["Rules"]
    assert expiration_covers(rules) and rules[0]["Expiration"] == expiration_rule(3)["Expiration"]
    report = report_json(s3, names["bak"], DAG_ID, passed.run_id)
    assert (report["sampled"], report["verified"], report["mismatched"]) == (5, 5, 0)
    assert report["source_compared"] == 5 and report["seconds"] > 0 and report["bytes_per_second"] > 0
    estimate = report["estimate"]
    assert (estimate["backup_objects"], estimate["retrieval_seconds"]) == (len(objects()), 0)
    assert estimate["full_restore_seconds"] > 0
    sample = drilled(s3, names, passed.run_id)
    assert len(sample) == 5 and set(sample) <= set(objects())
    for key in sample:
        assert parts(s3, names["drill"], drill_key(passed.run_id, key)) == parts(s3, names["bak"], key), key

    s3.put_object(Bucket=names["bak"], Key=CHANGED_IN_PLACE, Body=b"rewritten in place", ContentType=TEXT)
    s3.put_object_tagging(
        Bucket=names["bak"], Key=CHANGED_IN_PLACE, Tagging={"TagSet": [{"Key": "n", "Value": "3"}]}
    )
    caught = drill(names)

    assert caught.state == "failed" and caught.tasks["restore_and_verify"] == "failed"
    report = report_json(s3, names["bak"], DAG_ID, caught.run_id)
    assert (report["sampled"], report["mismatched"]) == (len(objects()), 1)
    assert report["mismatches"][0]["key"] == CHANGED_IN_PLACE
    assert any(p.startswith("source:") for p in report["mismatches"][0]["problems"]), report["mismatches"]
    assert drilled(s3, names, caught.run_id) == sorted(objects())
    assert deletes(proxy) == []
    assert missing_permissions(proxy.records, drill_policy(names)) == {}


def test_archived_objects_are_skipped_unless_include_archived(
    s3: Any, proxy: FaultProxy, backed_up: dict[str, str]
) -> None:
    names = backed_up
    rules = [expiration_rule(1)]
    s3.put_bucket_lifecycle_configuration(Bucket=names["drill"], LifecycleConfiguration={"Rules": rules})
    move_to_glacier(s3, names["bak"], ARCHIVED)
    proxy.reset_records()

    skipping = drill(names)
    including = drill(names, include_archived=True)

    assert_succeeded(skipping)
    assert_succeeded(including)
    skipped = report_json(s3, names["bak"], DAG_ID, skipping.run_id)
    assert (skipped["skipped_archived"], skipped["sampled"], skipped["mismatched"]) == (
        1,
        len(objects()) - 1,
        0,
    )
    assert skipped["estimate"]["retrieval_seconds"] == 5 * 3600  # GLACIER Standard: 3-5 h
    assert ARCHIVED not in drilled(s3, names, skipping.run_id)
    included = report_json(s3, names["bak"], DAG_ID, including.run_id)
    assert (included["archived_restored"], included["sampled"], included["verified"]) == (
        1,
        *[len(objects())] * 2,
    )
    assert drilled(s3, names, including.run_id) == sorted(objects())
    assert deletes(proxy) == []
    assert missing_permissions(proxy.records, drill_policy(names)) == {}
