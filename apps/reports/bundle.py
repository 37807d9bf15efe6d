"""Report bundles: the zip (files, manifest of SHA-256 sums, its signature) and where it is stored.

The manifest is signed with the audit key (``apps.audit.checkpoints.signing_key``), the key that signs
checkpoints, so one pinned public key verifies both. The format is ``flk_agent.report``'s, which the
offline verifier reads.

Storage is a local directory (``REPORTS_DIR``, the embedded default) or S3 (``REPORTS_BUCKET``). Either
way a bundle is written under a name no other report uses, and locally it appears only complete
(written to a temporary file, fsynced, renamed).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.audit.checkpoints import signing_key
from flk_agent.report import BUNDLE_FORMAT, MANIFEST, MANIFEST_SIG

S3_PREFIX = "s3://"
READ_CHUNK = 256 * 1024  # bytes per chunk streamed to a downloading client


@dataclass(frozen=True)
class StoredBundle:
    """Where a bundle went, its SHA-256 and its size."""

    location: str
    sha256: str
    size: int


def bundle_zip(*, files: dict[str, bytes], manifest_fields: dict[str, Any]) -> bytes:
    """The zip of ``files`` plus ``manifest.json`` (their SHA-256 sums) and ``manifest.sig``."""
    manifest = {
        "format": BUNDLE_FORMAT,
        **manifest_fields,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in sorted(files.items())
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    signature = base64.b64encode(signing_key().sign(manifest_bytes)) + b"\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr(MANIFEST, manifest_bytes)
        archive.writestr(MANIFEST_SIG, signature)
    return buffer.getvalue()


@cache
def _s3_client(endpoint_url: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    # Explicit timeouts: a hung object store must fail the build, not hold the reports queue forever.
    config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3})
    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)


def _client() -> Any:
    return _s3_client(settings.REPORTS_S3_ENDPOINT_URL, settings.REPORTS_S3_REGION)


def bundle_store(*, name: str, tenant_slug: str, data: bytes) -> StoredBundle:
    """Write a bundle to the configured store; return where, its SHA-256 and size."""
    digest = hashlib.sha256(data).hexdigest()
    if settings.REPORTS_BUCKET:
        key = f"{settings.REPORTS_S3_PREFIX}{tenant_slug}/{name}"
        _client().put_object(
            Bucket=settings.REPORTS_BUCKET,
            Key=key,
            Body=data,
            ContentType="application/zip",
            ChecksumAlgorithm="SHA256",
            Metadata={"sha256": digest},
        )
        return StoredBundle(f"{S3_PREFIX}{settings.REPORTS_BUCKET}/{key}", digest, len(data))
    folder = Path(settings.REPORTS_DIR) / tenant_slug
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, target)
    return StoredBundle(str(target), digest, len(data))


def bundle_chunks(location: str) -> Iterator[bytes]:
    """The stored bundle's bytes, in chunks (for streaming downloads); ``OSError`` when it is gone."""
    if location.startswith(S3_PREFIX):
        bucket, _, key = location[len(S3_PREFIX) :].partition("/")
        try:
            body = _client().get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:  # botocore's errors: the object or the store is unavailable
            raise OSError(f"cannot read {location}: {exc}") from exc
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()
        return
    with open(location, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            yield chunk


def bundle_read(location: str) -> bytes:
    """The whole stored bundle."""
    return b"".join(bundle_chunks(location))
