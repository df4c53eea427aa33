"""The IAM policies in ``iam/`` against recorded requests: which actions each request needs,
on which ARN, and whether a policy allows them (placeholders such as BACKUP_BUCKET filled in)."""

from __future__ import annotations

import fnmatch
import json
import os
from typing import Any

from tests.support.fault_proxy import RequestRecord

IAM = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "iam")
BUCKET_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "CreateBucket": "s3:CreateBucket",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "GetBucketInventoryConfiguration": "s3:GetInventoryConfiguration",
}
# operation -> (action, action with a versionId)
OBJECT_ACTIONS = {
    "GetObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "GetObjectTagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "PutObjectTagging": ("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    "PutObject": ("s3:PutObject", "s3:PutObject"),
    "CreateMultipartUpload": ("s3:PutObject", "s3:PutObject"),
    "CompleteMultipartUpload": ("s3:PutObject", "s3:PutObject"),
    "UploadPart": ("s3:PutObject", "s3:PutObject"),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", "s3:AbortMultipartUpload"),
    "ListParts": ("s3:ListMultipartUploadParts", "s3:ListMultipartUploadParts"),
    "RestoreObject": ("s3:RestoreObject", "s3:RestoreObject"),
}


# Policies ---------------------------------------------------------------------------------------


def policy(name: str, **buckets: str) -> list[dict[str, Any]]:
    """The Allow statements of ``iam/<name>.json`` with bucket placeholders filled in."""
    with open(os.path.join(IAM, f"{name}.json"), encoding="utf-8") as handle:
        text = handle.read()
    for placeholder, bucket in buckets.items():
        text = text.replace(placeholder, bucket)
    statements = json.loads(text)["Statement"]
    return [s for s in statements if s["Effect"] == "Allow"]


def listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allowed(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    for statement in statements:
        actions = listed(statement["Action"])
        resources = listed(statement["Resource"])
        if any(fnmatch.fnmatchcase(action, a) for a in actions) and any(
            fnmatch.fnmatchcase(arn, r) for r in resources
        ):
            return True
    return False


# Requests -> actions ----------------------------------------------------------------------------


def split_copy_source(copy_source: str) -> tuple[str, str, bool]:
    """(bucket, key, versioned) of an ``x-amz-copy-source`` header (URL-decoded)."""
    source, _, version = copy_source.lstrip("/").rpartition("?versionId=")
    if not source:
        source, version = version, ""
    bucket, _, key = source.partition("/")
    return bucket, key, bool(version)


def needs(record: RequestRecord) -> list[tuple[str, str]]:
    """The (IAM action, ARN) pairs a request needs."""
    op, bucket, key = record.operation, record.bucket, record.key
    versioned = "versionId" in record.query
    if op == "PutMetricData":
        return [("cloudwatch:PutMetricData", "*")]
    if op == "GenerateDataKey":
        return []  # a KMS request: kms_needs knows which key it is for
    if op == "ListBuckets":
        return [("s3:ListAllMyBuckets", "*")]
    if op in BUCKET_ACTIONS:
        return [(BUCKET_ACTIONS[op], f"arn:aws:s3:::{bucket}")]
    if op in ("CopyObject", "UploadPartCopy"):
        src_bucket, src_key, src_versioned = split_copy_source(record.copy_source or "")
        src = f"arn:aws:s3:::{src_bucket}/{src_key}"
        pairs = [
            ("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"),
            ("s3:GetObjectVersion" if src_versioned else "s3:GetObject", src),
        ]
        if op == "CopyObject":
            pairs.append(("s3:GetObjectVersionTagging" if src_versioned else "s3:GetObjectTagging", src))
        return pairs
    if op in OBJECT_ACTIONS:
        plain, with_version = OBJECT_ACTIONS[op]
        return [(with_version if versioned else plain, f"arn:aws:s3:::{bucket}/{key}")]
    return [(f"unmapped:{op}", f"{bucket}/{key}")]


def missing_permissions(
    records: list[RequestRecord], statements: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """action -> example requests the policy does not allow."""
    missing: dict[str, list[str]] = {}
    for record in records:
        for action, arn in needs(record):
            if not allowed(statements, action, arn):
                examples = missing.setdefault(f"{action} on {arn.split('/')[0]}", [])
                if len(examples) < 3:
                    examples.append(f"{record.operation} {record.bucket}/{record.key or ''}")
    return missing


def used(records: list[RequestRecord]) -> list[str]:
    return sorted({action for record in records for action, _ in needs(record)})
