"""Anchoring sealed checkpoints to write-once storage.

The local backend writes each checkpoint note once, as ``<AUDIT_ANCHOR_DIR>/<tenant>/<size>.note``,
fsyncs it and its directory, and makes it read-only. A note already anchored is never overwritten: the
same bytes are accepted (a retry), different bytes are refused loudly, because that would mean two
different trees of the same size, which is exactly what anchoring exists to expose.
S3 with Object Lock is the production backend still to come.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.audit.models import Anchor, Checkpoint


class AnchorConflict(RuntimeError):
    """Write-once storage already holds a different note for this tenant and size."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_once(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        if path.read_bytes() != data:
            raise AnchorConflict(f"{path} already holds a different checkpoint") from None
        return
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def checkpoint_anchor(*, checkpoint: Checkpoint) -> Anchor:
    """Anchor one checkpoint (idempotent) and record where."""
    existing = Anchor.objects.filter(checkpoint=checkpoint).first()
    if existing is not None:
        return existing
    data = checkpoint.note.encode()
    path = Path(settings.AUDIT_ANCHOR_DIR) / checkpoint.tenant.slug / f"{checkpoint.tree_size}.note"
    _write_once(path, data)
    with transaction.atomic():
        anchor, _ = Anchor.objects.get_or_create(
            checkpoint=checkpoint,
            defaults={
                "backend": "local",
                "reference": str(path),
                "note_sha256": hashlib.sha256(data).hexdigest(),
            },
        )
    return anchor


def anchor_pending() -> int:
    """Anchor every sealed checkpoint that has no anchor yet; return how many were anchored."""
    pending = Checkpoint.objects.filter(anchor__isnull=True).select_related("tenant").order_by("id")
    count = 0
    for checkpoint in pending:
        checkpoint_anchor(checkpoint=checkpoint)
        count += 1
    return count
