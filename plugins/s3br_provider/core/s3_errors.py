"""Read S3 error responses and tell which are worth retrying (botocore's standard mode rules),
how often, and how long to wait in between."""

from __future__ import annotations

import random
import re
from typing import NamedTuple

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "InternalError"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 20.0
# botocore's attempt counts (first attempt included) for a client config that names none.
DEFAULT_TOTAL_ATTEMPTS = {"legacy": 5, "standard": 3, "adaptive": 3}

_ERROR = re.compile(rb"<Error>\s*(.*?)\s*</Error>", re.DOTALL)
_FIELD = r"<{0}>(.*?)</{0}>"


class S3Error(NamedTuple):
    code: str
    message: str


def parse_error(body: bytes) -> S3Error | None:
    """Return the ``<Error>`` of an S3 response body, or None if it holds none.

    CopyObject can answer 200 OK and still fail: the error is then in the body, so every
    response body is checked, not only those of 4xx and 5xx.
    """
    found = _ERROR.search(body[:4096])
    if found is None:
        return None
    inner = found.group(1).decode("utf-8", "replace")
    code = re.search(_FIELD.format("Code"), inner, re.DOTALL)
    message = re.search(_FIELD.format("Message"), inner, re.DOTALL)
    return S3Error(code.group(1).strip() if code else "Unknown", message.group(1).strip() if message else "")


def is_retryable(status: int, code: str) -> bool:
    """Throttling, 5xx and request timeouts are retried; anything else is final."""
    return code in THROTTLING_CODES or code in TRANSIENT_CODES or status in TRANSIENT_STATUSES


def backoff_seconds(attempt: int, draw: float | None = None) -> float:
    """Truncated binary exponential backoff with full jitter: up to 1, 2, 4 ... 20 seconds."""
    share = random.random() if draw is None else draw
    return share * min(MAX_BACKOFF_SECONDS, 2.0 ** (attempt - 1))


class RetryPolicy(NamedTuple):
    """How a client retries: botocore's retry ``mode`` and its attempts, the first included."""

    mode: str
    total_attempts: int

    @classmethod
    def from_client_config(cls, retries: dict[str, object] | None) -> RetryPolicy:
        """Read ``client.meta.config.retries`` as botocore leaves it on a client.

        A built client holds ``total_max_attempts``; a ``max_attempts`` (retries, the first
        attempt not counted) is read as botocore reads it: one more attempt in total.
        """
        retries = retries or {}
        mode = str(retries.get("mode") or "legacy")
        total = retries.get("total_max_attempts")
        if total is None and retries.get("max_attempts") is not None:
            total = int(str(retries["max_attempts"])) + 1
        if total is None:
            total = DEFAULT_TOTAL_ATTEMPTS.get(mode, 3)
        return cls(mode, max(1, int(str(total))))


CUSTOMER_KEY_REQUIRED = "SSECustomerKeyRequired"
"""How s3br names the failure of a source object encrypted with SSE-C: a copy needs the
customer's key (``x-amz-copy-source-server-side-encryption-customer-key``), which s3br never has."""
CUSTOMER_KEY_REASON = (
    "the source object is encrypted with a customer-provided key (SSE-C), which s3br does not have; "
    "copy it with its key, or re-encrypt it with SSE-S3 or SSE-KMS"
)
_SSE_C_MESSAGE = "the correct parameters must be provided to retrieve the object"


def needs_customer_key(status: int | None, code: str, message: str, operation: str) -> bool:
    """Whether S3 refused to read an SSE-C object for want of its key. Never worth a retry.

    CopyObject, UploadPartCopy and GetObject answer 400 ``InvalidRequest`` "The object was
    stored using a form of Server Side Encryption. The correct parameters must be provided to
    retrieve the object."; HeadObject, which has no body, a bare 400.
    """
    if status != 400:
        return False
    if code == "InvalidRequest" and _SSE_C_MESSAGE in message.lower():
        return True
    return operation == "HeadObject" and code in ("400", "BadRequest")


def refuses_checksum(status: int | None, code: str, message: str) -> bool:
    """Whether an endpoint refused a copy for the checksum algorithm it asked for (one that
    predates CRC64NVME, say): the copy is then asked again with the next one."""
    return (
        status in (400, 501)
        and code in ("InvalidArgument", "InvalidRequest", "NotImplemented")
        and ("checksum" in message.lower())
    )


KMS_REASON = (
    "S3 could not use a KMS key for it: the source object's key (kms:Decrypt) or "
    "backup_kms_key_id (kms:GenerateDataKey) is missing, disabled or not allowed to the "
    "connection (see the README: Encryption)"
)


def lasting_failure_reason(code: str) -> str | None:
    """Why an object failed for a reason no retry mends (an SSE-C source, a KMS key S3 cannot
    use), or None: then a later try may succeed."""
    if code == CUSTOMER_KEY_REQUIRED:
        return CUSTOMER_KEY_REASON
    if code.startswith("KMS.") and "Throttl" not in code:
        return KMS_REASON
    return None
