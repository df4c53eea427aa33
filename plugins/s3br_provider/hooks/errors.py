"""Name the S3 error behind an exception; light enough to import where boto3 is not loaded."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(error: BaseException) -> str:
    """Return the S3 error code of a botocore ClientError, or the exception's class name."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__
