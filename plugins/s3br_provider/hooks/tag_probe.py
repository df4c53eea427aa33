"""The tag probe: does the backup endpoint's CopyObject with TaggingDirective=COPY leave the
copy with exactly its source's tags (AWS), or merge them with the overwritten object's (moto,
unversioned)? ``s3_backup``'s validate probes once per run (``probe_tag_copy``); a continuous
backup batch reads what the last probe left (``probed_exact_tag_copy``)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from s3br_provider.core.keys import TAG_PROBE_SOURCE, TAG_PROBE_TARGET
from s3br_provider.core.objects import ObjectInfo

if TYPE_CHECKING:
    from s3br_provider.hooks.s3_bucket import S3BucketHook

PROBE_BODY = b"s3br tag probe: does CopyObject with TaggingDirective=COPY keep only the source's tags?\n"
PROBE_SOURCE_TAGS = {"s3br-probe": "source"}
PROBE_TARGET_TAGS = {"s3br-probe-overwritten": "target"}


def copies_tags_exactly(target_tags: dict[str, str]) -> bool:
    """Whether the probe's target, after its copy, shows an endpoint that copies tags exactly."""
    return target_tags == PROBE_SOURCE_TAGS


def probe_tag_copy(hook: S3BucketHook, bucket: str) -> dict[str, str]:
    """The tags a CopyObject with TaggingDirective=COPY of a tagged object onto another tagged
    object (``core.keys.TAG_PROBE_*``) leaves on it: exactly ``PROBE_SOURCE_TAGS`` where the
    endpoint copies tags as AWS does. The copy goes the way backup copies go (``hook.copy``).
    Three requests (PutObject, CopyObject, GetObjectTagging); the source is written only when
    it is missing (the first probe of a bucket). Overwrites, never deletes: a versioned bucket
    keeps each probe's versions (a few bytes each)."""
    from botocore.exceptions import ClientError

    from s3br_provider.hooks.errors import error_code

    hook.client.put_object(
        Bucket=bucket,
        Key=TAG_PROBE_TARGET,
        Body=PROBE_BODY,
        Tagging=urlencode(PROBE_TARGET_TAGS),
        **hook.encryption(),
    )
    source = ObjectInfo(key=TAG_PROBE_SOURCE, size=len(PROBE_BODY), etag="", last_modified=0.0)
    try:
        hook.copy(source, bucket, bucket, multipart_threshold=2**20, target_key=TAG_PROBE_TARGET)
    except ClientError as error:
        if error_code(error) not in ("NoSuchKey", "404"):
            raise
        hook.client.put_object(
            Bucket=bucket,
            Key=TAG_PROBE_SOURCE,
            Body=PROBE_BODY,
            Tagging=urlencode(PROBE_SOURCE_TAGS),
            **hook.encryption(),
        )
        hook.copy(source, bucket, bucket, multipart_threshold=2**20, target_key=TAG_PROBE_TARGET)
    return hook.get_tags(bucket, TAG_PROBE_TARGET)


def probed_exact_tag_copy(hook: S3BucketHook, bucket: str) -> bool:
    """Whether the last tag probe of ``bucket`` (``s3_backup``'s validate) found that a copy with
    TaggingDirective=COPY carries exactly its source's tags: its target then holds exactly
    ``PROBE_SOURCE_TAGS``. One GetObjectTagging. False where no probe ran yet, one is half done
    (the target still holds its own tags), it found merged tags, or the target cannot be read."""
    try:
        return copies_tags_exactly(hook.get_tags(bucket, TAG_PROBE_TARGET))
    except Exception:  # any doubt: the safe way, which reads each changed object's tags
        return False
