from __future__ import annotations

import pytest

from s3br_provider.core.s3_errors import (
    MAX_BACKOFF_SECONDS,
    RetryPolicy,
    S3Error,
    backoff_seconds,
    is_retryable,
    parse_error,
)

COPY_RESULT = b'<?xml version="1.0"?><CopyObjectResult><ETag>"abc"</ETag></CopyObjectResult>'


def test_a_copy_result_is_no_error() -> None:
    assert parse_error(COPY_RESULT) is None
    assert parse_error(b"") is None


def test_error_body_is_read_even_with_whitespace_and_extra_fields() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>SlowDown</Code>\n'
        b"  <Message>Please reduce your request rate.</Message>\n  <RequestId>1</RequestId>\n</Error>"
    )
    assert parse_error(body) == S3Error("SlowDown", "Please reduce your request rate.")
    assert parse_error(b"<Error><Message>m</Message></Error>") == S3Error("Unknown", "m")


@pytest.mark.parametrize(
    ("status", "code", "retry"),
    [
        (503, "SlowDown", True),
        (200, "InternalError", True),  # CopyObject's 200 with an error body
        (500, "InternalError", True),
        (502, "502", True),
        (400, "RequestTimeout", True),
        (400, "ThrottlingException", True),
        (403, "AccessDenied", False),
        (404, "NoSuchKey", False),
        (400, "InvalidRequest", False),
        (403, "SignatureDoesNotMatch", False),
    ],
)
def test_retryable_errors_follow_botocore_standard_mode(status: int, code: str, retry: bool) -> None:
    assert is_retryable(status, code) is retry


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_seconds(attempt, 1.0) for attempt in (1, 2, 3, 4, 5, 6, 9)] == [1, 2, 4, 8, 16, 20, 20]
    assert backoff_seconds(3, 0.0) == 0.0
    assert all(0 <= backoff_seconds(10) <= MAX_BACKOFF_SECONDS for _ in range(100))


@pytest.mark.parametrize(
    ("retries", "policy"),
    [
        ({"mode": "standard", "total_max_attempts": 11}, RetryPolicy("standard", 11)),
        ({"mode": "standard", "max_attempts": 2}, RetryPolicy("standard", 3)),  # 2 retries
        ({"mode": "legacy"}, RetryPolicy("legacy", 5)),
        ({"mode": "adaptive"}, RetryPolicy("adaptive", 3)),
        ({"mode": "standard"}, RetryPolicy("standard", 3)),
        ({"total_max_attempts": 1}, RetryPolicy("legacy", 1)),
        (None, RetryPolicy("legacy", 5)),
    ],
)
def test_retry_policy_reads_the_client_config_as_botocore_does(retries, policy: RetryPolicy) -> None:
    assert RetryPolicy.from_client_config(retries) == policy


def test_retry_policy_agrees_with_a_built_boto3_client() -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"mode": "standard", "max_attempts": 4}),
    )
    assert RetryPolicy.from_client_config(client.meta.config.retries) == RetryPolicy("standard", 5)
