"""Anchoring sealed checkpoints to write-once storage.

Two stores, chosen by settings: S3 with Object Lock when ``AUDIT_ANCHOR_S3_BUCKET`` is set, else a local
directory. Either way a checkpoint note is written once under ``<tenant>/<tree size>.note``. A note
already anchored is never overwritten: the same bytes are accepted (a retry), different bytes are refused
loudly, because that would mean two different trees of the same size, which is exactly what anchoring
exists to expose.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.models import Anchor, Checkpoint
from flk_project.fsync import fsync_dir


class AnchorConflict(RuntimeError):
    """Write-once storage already holds a different note for this tenant and size."""


class AnchorStoreMisconfigured(RuntimeError):
    """The configured store cannot keep anything write-once (e.g. a bucket without Object Lock)."""


@dataclass(frozen=True)
class Written:
    """Where a note now lies, and until when the store refuses to delete it (None: no deadline)."""

    reference: str
    retain_until: datetime | None


class AnchorStore(Protocol):
    """A write-once store for checkpoint notes."""

    backend: str

    def write_once(self, key: str, data: bytes) -> Written:
        """Store ``data`` under ``key`` unless the same bytes are there; raise AnchorConflict if not."""
        ...


class LocalDirectoryStore:
    """Files created exclusively, fsynced with their directory, and left read-only (mode 0444)."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def write_once(self, key: str, data: bytes) -> Written:
        """Create ``root/key`` with ``data``; an existing file must hold the same bytes."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            if path.read_bytes() != data:
                raise AnchorConflict(f"{path} already holds a different checkpoint") from None
            return Written(str(path), None)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(path.parent)
        return Written(str(path), None)


class S3ObjectLockStore:
    """Objects put with an Object Lock retention and ``If-None-Match: *``.

    The conditional put makes the first write win even between two racing sealers; the retention
    (COMPLIANCE mode by default) means no account, root included, can delete or overwrite the version
    before ``retain_until``. A bucket without Object Lock is refused rather than silently used.
    """

    backend = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str, mode: str, retention_days: int) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.mode = mode
        self.retention_days = retention_days
        self._lock_checked = False

    def _check_object_lock(self) -> None:
        if self._lock_checked:
            return
        from botocore.exceptions import ClientError

        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            raise AnchorStoreMisconfigured(
                f"bucket {self.bucket!r} has no Object Lock configuration: {exc}"
            ) from exc
        if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise AnchorStoreMisconfigured(f"bucket {self.bucket!r} does not have Object Lock enabled")
        self._lock_checked = True

    def write_once(self, key: str, data: bytes) -> Written:
        """Put ``data`` at ``prefix + key`` under retention, or accept the identical object already there."""
        from botocore.exceptions import ClientError

        self._check_object_lock()
        object_key = self.prefix + key
        retain_until = (timezone.now() + timedelta(days=self.retention_days)).replace(microsecond=0)
        try:
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=data,
                ContentType="text/plain; charset=utf-8",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
                ObjectLockMode=self.mode,
                ObjectLockRetainUntilDate=retain_until,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
            return self._existing(object_key, data)
        return Written(self._reference(object_key, answer.get("VersionId")), retain_until)

    def _existing(self, object_key: str, data: bytes) -> Written:
        found = self.client.get_object(Bucket=self.bucket, Key=object_key)
        if found["Body"].read() != data:
            raise AnchorConflict(f"s3://{self.bucket}/{object_key} already holds a different checkpoint")
        return Written(
            self._reference(object_key, found.get("VersionId")), found.get("ObjectLockRetainUntilDate")
        )

    def _reference(self, object_key: str, version_id: str | None) -> str:
        reference = f"s3://{self.bucket}/{object_key}"
        return f"{reference}?versionId={version_id}" if version_id else reference


@cache
def _s3_store(
    bucket: str, prefix: str, endpoint_url: str, region: str, mode: str, days: int
) -> S3ObjectLockStore:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None)
    return S3ObjectLockStore(client, bucket, prefix, mode, days)


def get_anchor_store() -> AnchorStore:
    """The store that settings name: S3 Object Lock when a bucket is configured, else the local directory."""
    if settings.AUDIT_ANCHOR_S3_BUCKET:
        return _s3_store(
            settings.AUDIT_ANCHOR_S3_BUCKET,
            settings.AUDIT_ANCHOR_S3_PREFIX,
            settings.AUDIT_ANCHOR_S3_ENDPOINT_URL,
            settings.AUDIT_ANCHOR_S3_REGION,
            settings.AUDIT_ANCHOR_LOCK_MODE,
            settings.AUDIT_ANCHOR_RETENTION_DAYS,
        )
    return LocalDirectoryStore(Path(settings.AUDIT_ANCHOR_DIR))


def checkpoint_anchor(*, checkpoint: Checkpoint, store: AnchorStore | None = None) -> Anchor:
    """Anchor one checkpoint (idempotent) and record where."""
    existing = Anchor.objects.filter(checkpoint=checkpoint).first()
    if existing is not None:
        return existing
    store = store or get_anchor_store()
    data = checkpoint.note.encode()
    written = store.write_once(f"{checkpoint.tenant.slug}/{checkpoint.tree_size}.note", data)
    with transaction.atomic():
        anchor, _ = Anchor.objects.get_or_create(
            checkpoint=checkpoint,
            defaults={
                "backend": store.backend,
                "reference": written.reference,
                "note_sha256": hashlib.sha256(data).hexdigest(),
                "retain_until": written.retain_until,
            },
        )
    return anchor


def anchor_pending() -> int:
    """Anchor every sealed checkpoint that has no anchor yet; return how many were anchored."""
    pending = Checkpoint.objects.filter(anchor__isnull=True).select_related("tenant").order_by("id")
    store = get_anchor_store()
    count = 0
    for checkpoint in pending:
        checkpoint_anchor(checkpoint=checkpoint, store=store)
        count += 1
    return count
