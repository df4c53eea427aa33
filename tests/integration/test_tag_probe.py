"""The backup validate's tag probe on moto: what it sends and writes, what it answers, and what
a diff given the answer does with a changed object that comes back tagged deleted.

moto 5.2 keeps the overwritten object's tags on a CopyObject with TaggingDirective=COPY in an
unversioned bucket (merging the source's in) and replaces them in a versioned one, as AWS does
everywhere: the probe must tell the two apart, and either way a returning object must end up
with exactly its source's tags.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from s3br_provider.core.keys import TAG_PROBE_SOURCE, TAG_PROBE_TARGET
from s3br_provider.operators.base import InvalidArgumentsError
from s3br_provider.operators.validate import EXACT_TAG_COPY_XCOM, S3BackupValidateOperator
from tests.integration.conftest import PROXY_CONN_ID
from tests.integration.test_operator_backup import put_objects
from tests.support import steps
from tests.support.fault_proxy import FaultProxy
from tests.support.iam import missing_permissions, policy
from tests.support.s3 import list_keys, snapshot
from tests.support.steps import context, copy, tag

PROXIED = {"source_aws_conn_id": PROXY_CONN_ID, "backup_aws_conn_id": PROXY_CONN_ID}
VALIDATE_OPS = {"HeadBucket": 2, "ListObjectsV2": 1}  # validate's own checks


def probed(source: str, backup: str, run_id: str = "manual__x", **options: Any) -> tuple[dict, dict]:
    """validate with ``probe_tag_copy`` (as ``backup_group`` builds it): the run, and its XComs."""
    op = S3BackupValidateOperator(
        task_id="validate", source_bucket=source, backup_bucket=backup, probe_tag_copy=True, **options
    )
    ctx = context(run_id)
    return {**op.execute(ctx), "run_id": run_id}, ctx["ti"].pushed


def diff(run: dict[str, Any], exact_tag_copy: Any) -> dict[str, Any]:
    return steps.diff(run, exact_tag_copy=exact_tag_copy)


@pytest.fixture
def two_buckets(s3: Any, bucket_names: Callable[[str], str]) -> Callable[[bool], tuple[str, str]]:
    def make(versioned: bool) -> tuple[str, str]:
        source, backup = bucket_names("src"), bucket_names("bak")
        s3.create_bucket(Bucket=source)
        s3.create_bucket(Bucket=backup)
        if versioned:
            s3.put_bucket_versioning(Bucket=backup, VersioningConfiguration={"Status": "Enabled"})
        return source, backup

    return make


def test_the_probe_finds_moto_merging_tags_writes_two_fixed_keys_within_the_policy(
    s3: Any, two_buckets: Callable[[bool], tuple[str, str]], fault_proxy: FaultProxy
) -> None:
    source, backup = two_buckets(False)
    _, pushed = probed(source, backup, **PROXIED)
    assert pushed == {EXACT_TAG_COPY_XCOM: False}
    # The first probe of a bucket: its copy finds no source, writes it and copies again.
    assert fault_proxy.operations() == {
        **VALIDATE_OPS,
        "PutObject": 2,
        "CopyObject": 2,
        "GetObjectTagging": 1,
    }
    tags = s3.get_object_tagging(Bucket=backup, Key=TAG_PROBE_TARGET)["TagSet"]
    assert {t["Key"] for t in tags} == {"s3br-probe", "s3br-probe-overwritten"}  # merged
    statements = policy("backup-policy", SOURCE_BUCKET=source, BACKUP_BUCKET=backup)
    assert missing_permissions(fault_proxy.records, statements) == {}

    fault_proxy.reset_records()
    _, pushed = probed(source, backup, run_id="manual__again", **PROXIED)
    assert pushed == {EXACT_TAG_COPY_XCOM: False}
    assert fault_proxy.operations() == {
        **VALIDATE_OPS,
        "PutObject": 1,
        "CopyObject": 1,
        "GetObjectTagging": 1,
    }
    assert {w.key for w in fault_proxy.writes()} == {TAG_PROBE_TARGET}
    assert list_keys(s3, backup, include_reserved=True) == [TAG_PROBE_SOURCE, TAG_PROBE_TARGET]
    assert list_keys(s3, source, include_reserved=True) == []


def test_the_probe_finds_exact_tags_in_a_versioned_bucket_and_never_deletes(
    s3: Any, two_buckets: Callable[[bool], tuple[str, str]], fault_proxy: FaultProxy
) -> None:
    source, backup = two_buckets(True)
    for run_id in ("manual__1", "manual__2"):
        _, pushed = probed(source, backup, run_id=run_id, **PROXIED)
        assert pushed == {EXACT_TAG_COPY_XCOM: True}
    assert not {"DeleteObject", "DeleteObjects", "DeleteObjectTagging"} & set(fault_proxy.operations())
    versions = s3.list_object_versions(Bucket=backup)
    counts = {
        key: [v["Key"] for v in versions["Versions"]].count(key)
        for key in (TAG_PROBE_SOURCE, TAG_PROBE_TARGET)
    }
    assert counts == {TAG_PROBE_SOURCE: 1, TAG_PROBE_TARGET: 4}  # a put and a copy per probe
    assert "DeleteMarkers" not in versions


def test_a_dry_run_probes_nothing_and_says_merge(
    s3: Any, two_buckets: Callable[[bool], tuple[str, str]], fault_proxy: FaultProxy
) -> None:
    source, backup = two_buckets(True)
    _, pushed = probed(source, backup, dry_run=True, **PROXIED)
    assert pushed == {EXACT_TAG_COPY_XCOM: False}
    assert fault_proxy.writes() == [] and fault_proxy.operations() == VALIDATE_OPS


def test_a_failing_probe_says_merge_and_the_run_goes_on(
    two_buckets: Callable[[bool], tuple[str, str]], fault_proxy: FaultProxy, capsys: pytest.CaptureFixture
) -> None:
    source, backup = two_buckets(True)
    fault_proxy.set_faults([{"kind": "access_denied", "operation": "CopyObject"}])
    settings, pushed = probed(source, backup, **PROXIED)
    assert pushed == {EXACT_TAG_COPY_XCOM: False}
    assert settings["backup_bucket"] == backup
    logs = "".join(capsys.readouterr())
    assert f"Tag probe at s3://{backup}/{TAG_PROBE_TARGET} failed (ClientError" in logs
    assert "AccessDenied" in logs


def test_validate_without_the_probe_writes_nothing_and_pushes_nothing(
    two_buckets: Callable[[bool], tuple[str, str]], fault_proxy: FaultProxy
) -> None:
    source, backup = two_buckets(True)
    op = S3BackupValidateOperator(task_id="validate", source_bucket=source, backup_bucket=backup, **PROXIED)
    ctx = context()
    op.execute(ctx)
    assert ctx["ti"].pushed == {} and fault_proxy.writes() == []


@pytest.mark.parametrize("versioned", [False, True], ids=["moto-merges", "replaces"])
def test_a_returning_object_gets_exactly_its_source_tags_whatever_the_probe_found(
    s3: Any, two_buckets: Callable[[bool], tuple[str, str]], fault_proxy: FaultProxy, versioned: bool
) -> None:
    """Where the probe found merging (moto, unversioned), the changed object's tags are read and
    set explicitly; where it found exact tags (versioned), it is copied with COPY and no tag read."""
    source, backup = two_buckets(versioned)
    put_objects(s3, source, {"back.txt": (b"first", {"keep": "me"}), "other.txt": (b"o", {"o": "1"})})
    run, pushed = probed(source, backup, **PROXIED)
    copy(run, diff(run, pushed[EXACT_TAG_COPY_XCOM]))
    s3.delete_object(Bucket=source, Key="back.txt")
    run, pushed = probed(source, backup, run_id="manual__2", **PROXIED)
    tag(run, diff(run, pushed[EXACT_TAG_COPY_XCOM]))
    assert snapshot(s3, backup, "back.txt").tags["Deleted"] == "True"
    put_objects(s3, source, {"back.txt": (b"back again, longer", {"keep": "again"})})

    run, pushed = probed(source, backup, run_id="manual__3", **PROXIED)
    assert pushed == {EXACT_TAG_COPY_XCOM: versioned}
    work = diff(run, pushed[EXACT_TAG_COPY_XCOM])
    assert (work["changed"], work["to_copy"]) == (1, 1)
    fault_proxy.reset_records()
    assert copy(run, work)["copied"] == 1

    assert snapshot(s3, backup, "back.txt").tags == {"keep": "again"}
    assert snapshot(s3, backup, "back.txt").body == b"back again, longer"
    assert fault_proxy.operations()["GetObjectTagging"] == (0 if versioned else 1)


def test_diff_takes_a_rendered_answer_and_refuses_another_value(
    s3: Any, two_buckets: Callable[[bool], tuple[str, str]]
) -> None:
    source, backup = two_buckets(False)
    run = {
        "source_bucket": source,
        "backup_bucket": backup,
        "prefix": "",
        "compare": "size_mtime",
        "dry_run": True,
        "source_aws_conn_id": "aws_default",
        "backup_aws_conn_id": "aws_default",
        "run_id": "manual__x",
    }
    assert diff(run, "True")["to_copy"] == 0
    with pytest.raises(InvalidArgumentsError, match="exact_tag_copy must be true or false"):
        diff(run, "maybe")
