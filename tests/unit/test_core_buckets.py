"""The one rule deciding which buckets the direct path may serve."""

from __future__ import annotations

import pytest

from s3br_provider.core.buckets import direct_path_supported


@pytest.mark.parametrize(
    "bucket",
    [
        "plain-bucket",
        "a.b.c",
        "my-bucket-x-s3",  # an ordinary name that only looks similar
        "mrap-data",
        "myap-abcdefghijklmnopqrstuvwxyz012-s3alias",  # access point alias: plain SigV4 for s3
    ],
)
def test_plain_buckets_take_the_direct_path(bucket: str) -> None:
    assert direct_path_supported(bucket)


@pytest.mark.parametrize(
    "bucket",
    [
        "arn:aws:s3:us-east-1:123456789012:accesspoint/name",
        "arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01ac5d28a6a232904/accesspoint/ap",
        "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap",
        "arn:aws:s3-object-lambda:us-east-1:123456789012:accesspoint/olap",
        "arn:aws-cn:s3:cn-north-1:123456789012:accesspoint/name",
        "mybucket--use1-az4--x-s3",
        "ap-name-o01ac5d28a6a232904e8xz5w8ijx1qzlbp3i3kuse10--op-s3",
        "olap-abcdefghijklmnopqrstuvwxyz0123--ol-s3",
        "mfzwi23gnjvgw.mrap",
    ],
)
def test_arns_and_special_names_go_through_boto3(bucket: str) -> None:
    assert not direct_path_supported(bucket)
