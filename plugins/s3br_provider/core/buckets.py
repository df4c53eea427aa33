"""Which buckets the direct HTTP path can address and sign; every other one goes through boto3."""

from __future__ import annotations

# Bucket names whose requests need more than a SigV4 signature for service "s3" on a URL botocore
# presigns: their own signing name, SigV4a, or a session token from CreateSession.
_BOTO3_ONLY_SUFFIXES = (
    "--x-s3",  # S3 Express One Zone directory buckets: CreateSession auth
    "--op-s3",  # Outposts access point aliases: signing name s3-outposts
    "--ol-s3",  # Object Lambda access point aliases: signing name s3-object-lambda
    ".mrap",  # multi-region access point aliases: SigV4a
)


def direct_path_supported(bucket: str) -> bool:
    """Return whether requests for ``bucket`` may skip botocore (plain SigV4, service ``s3``).

    ARNs (access points, Outposts, multi-region access points, Object Lambda) and the special
    aliases and directory-bucket names are left to botocore, whose endpoint rules and signers
    handle them.
    """
    if bucket.startswith("arn:"):
        return False
    return not bucket.endswith(_BOTO3_ONLY_SUFFIXES)
