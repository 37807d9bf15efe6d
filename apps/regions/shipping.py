"""The shipper: this region's inbox WAL, shipped to the other regions' buckets as immutable chunks.

Each run reads, for every local segment, the whole CRC-valid frames written since the last shipment
(``apps.pcs.wal.read_frames``), and ships them as one chunk per segment range (at most
``CRR_CHUNK_MAX_BYTES``): the chunk object ``wal/<region>/chunks/<segment>/<start>-<end>.chunk`` with
its SHA-256 in its metadata, then manifest entry ``seq`` naming it, with the SHA-256 of the previous
entry (a hash chain: the reader replays chunks in manifest order and notices a gap or an edit). Both
are written with ``If-None-Match: *``: re-shipping the same range is a no-op, a name held by other
bytes is refused, reported as divergence (metric, error log, ``ShipTarget.state``) and never
overwritten. Last, ``head.json`` says when this run started, which is how far the target is covered.

A crash between the S3 writes and the database update is repaired on the next run: a manifest entry
after the recorded head that chains from it is ours, and is adopted instead of being written again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.pcs import wal
from apps.regions import metrics, storage
from apps.regions.control import control_publish
from apps.regions.locks import exclusive
from apps.regions.models import ShippedSegment, ShipTarget

logger = logging.getLogger("flk.regions")

# The head claims coverage up to the run's start minus this margin: a request received just before the
# run may still be on its way into the WAL while the run reads the segment.
COVER_MARGIN = timedelta(seconds=1)


class ShipDivergence(RuntimeError):
    """A chunk or manifest name already holds other bytes in the remote bucket."""


@dataclass
class ShipReport:
    """What one shipping run did, per bucket."""

    chunks: int = 0
    bytes: int = 0
    requests: int = 0
    adopted: int = 0
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Plain values for logs, task results and the CLI."""
        return asdict(self)


def _segment_path(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / (name + ".done")):
        if candidate.exists():
            return candidate
    return None


def _first_received(segment: str, start: int, data: bytes) -> tuple[datetime | None, datetime | None, int]:
    times = [r.received_at for r in wal.decode_frames(segment, start, data) if isinstance(r, wal.WalRequest)]
    return (min(times), max(times), len(times)) if times else (None, None, 0)


def manifest_entry(
    *, seq: int, segment: str, start: int, data: bytes, prev: str, key: str
) -> tuple[bytes, dict[str, object]]:
    """The bytes of a manifest entry (deterministic: a retry writes the same bytes) and its fields."""
    first, last, requests = _first_received(segment, start, data)
    entry: dict[str, object] = {
        "region": settings.REGION_ID,
        "seq": seq,
        "segment": segment,
        "start": start,
        "end": start + len(data),
        "key": key,
        "sha256": storage.sha256_hex(data),
        "bytes": len(data),
        "requests": requests,
        "first_byte_at": first.isoformat() if first else None,
        "last_byte_at": last.isoformat() if last else None,
        "prev": prev,
    }
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode(), entry


def crr_ship(*, directory: Path | None = None) -> ShipReport:
    """Ship what the WAL gained since the last run to every bucket in ``WAL_REMOTE_BUCKET``."""
    directory = directory or Path(settings.WAL_DIR)
    report = ShipReport()
    started = timezone.now()
    with exclusive("crr-ship") as mine:
        if not mine:
            logger.info("regions.ship_skipped reason=another_run")
            return report
        for bucket in settings.WAL_REMOTE_BUCKET:
            _ship_bucket(bucket, directory, started, report)
    logger.info("regions.shipped %s", " ".join(f"{k}={v}" for k, v in report.as_dict().items()))
    return report


def _ship_bucket(bucket: str, directory: Path, started: datetime, report: ShipReport) -> None:
    """Control-plane snapshot first (a PCS of a new tenant must not arrive before its tenant), then WAL."""
    target, _ = ShipTarget.objects.get_or_create(bucket=bucket)
    if target.state == ShipTarget.STATE_DIVERGED:
        report.diverged.append(bucket)
        return
    try:
        control_publish(target=target)
        _adopt(target, report)
        _ship_segments(target, directory, report)
        _write_head(target, started)
    except ShipDivergence as exc:
        _diverged(target, str(exc))
        report.diverged.append(bucket)
    except Exception as exc:  # an unreachable bucket (a partition) must not stop the others
        logger.warning("regions.ship_failed bucket=%s error=%s", bucket, exc)
        metrics.ship_failures.labels(bucket).inc()
        report.failed.append(bucket)


def _diverged(target: ShipTarget, error: str) -> None:
    logger.error("regions.ship_divergence bucket=%s error=%s", target.bucket, error)
    metrics.ship_divergence.labels(target.bucket).inc()
    ShipTarget.objects.filter(pk=target.pk).update(state=ShipTarget.STATE_DIVERGED, error=error[:2000])


def _adopt(target: ShipTarget, report: ShipReport) -> None:
    """Take over manifest entries written by an earlier run that died before recording them."""
    while True:
        key = storage.manifest_key(settings.REGION_ID, target.manifest_seq + 1)
        try:
            found = storage.get(target.bucket, key)
        except storage.ObjectMissing:
            return
        entry = json.loads(found.body)
        if entry.get("prev") != target.manifest_hash or entry.get("region") != settings.REGION_ID:
            raise ShipDivergence(f"{key} does not chain from this region's manifest head")
        with transaction.atomic():
            row, _ = ShippedSegment.objects.select_for_update().get_or_create(
                bucket=target.bucket, segment=entry["segment"]
            )
            if row.shipped_bytes != entry["start"]:
                raise ShipDivergence(f"{key} starts at {entry['start']}, shipped {row.shipped_bytes}")
            row.shipped_bytes = entry["end"]
            row.save(update_fields=["shipped_bytes"])
            target.manifest_seq += 1
            target.manifest_hash = storage.sha256_hex(found.body)
            target.save(update_fields=["manifest_seq", "manifest_hash", "updated_at"])
        report.adopted += 1


def _ship_segments(target: ShipTarget, directory: Path, report: ShipReport) -> None:
    finished = set(
        ShippedSegment.objects.filter(bucket=target.bucket, finished=True).values_list("segment", flat=True)
    )
    names = sorted(p.name.removesuffix(".done") for p in wal.list_segments(directory, include_done=True))
    for name in names:
        if name in finished:
            continue
        row, _ = ShippedSegment.objects.get_or_create(bucket=target.bucket, segment=name)
        size_at_start: int | None = None
        while True:
            path = _segment_path(directory, name)
            if path is None:
                break  # pruned
            # Checked before reading: a segment nobody holds gets no more records, so an empty read
            # after this means it is shipped whole.
            active = wal.segment_is_active(path)
            if size_at_start is None:
                size_at_start = path.stat().st_size
            elif active and row.shipped_bytes >= size_at_start:
                # The rest waits for the next run: under load an active segment always has a few new
                # records, and chasing them would ship a train of tiny chunks, each costing the reader
                # its fixed price (two S3 reads, a transaction).
                break
            data = wal.read_frames(path, row.shipped_bytes, settings.CRR_CHUNK_MAX_BYTES)
            if not data:
                if not active:
                    ShippedSegment.objects.filter(pk=row.pk).update(finished=True)
                break
            _ship_chunk(target, row, data, report)


def _ship_chunk(target: ShipTarget, row: ShippedSegment, data: bytes, report: ShipReport) -> None:
    start, end = row.shipped_bytes, row.shipped_bytes + len(data)
    key = storage.chunk_key(settings.REGION_ID, row.segment, start, end)
    seq = target.manifest_seq + 1
    entry_bytes, entry = manifest_entry(
        seq=seq, segment=row.segment, start=start, data=data, prev=target.manifest_hash, key=key
    )
    try:
        storage.put_once(
            target.bucket,
            key,
            data,
            {"source-region": settings.REGION_ID, "segment": row.segment, "range": f"{start}-{end}"},
        )
        storage.put_once(target.bucket, storage.manifest_key(settings.REGION_ID, seq), entry_bytes)
    except storage.ObjectConflict as exc:
        raise ShipDivergence(str(exc)) from exc
    with transaction.atomic():
        ShippedSegment.objects.filter(pk=row.pk).update(shipped_bytes=end)
        target.manifest_seq = seq
        target.manifest_hash = storage.sha256_hex(entry_bytes)
        target.last_shipped_at = timezone.now()
        target.save(update_fields=["manifest_seq", "manifest_hash", "last_shipped_at", "updated_at"])
    row.shipped_bytes = end
    report.chunks += 1
    report.bytes += len(data)
    report.requests += int(entry["requests"])  # type: ignore[call-overload]
    metrics.chunks_shipped.labels(target.bucket).inc()
    metrics.bytes_shipped.labels(target.bucket).inc(len(data))


def _write_head(target: ShipTarget, started: datetime) -> None:
    head = {
        "region": settings.REGION_ID,
        "manifest_seq": target.manifest_seq,
        "covered_at": (started - COVER_MARGIN).astimezone(UTC).isoformat(),
        "written_at": timezone.now().astimezone(UTC).isoformat(),
    }
    storage.put(target.bucket, storage.head_key(settings.REGION_ID), json.dumps(head).encode())


def ship_target_reset(*, bucket: str) -> None:
    """Operator's action after resolving a divergence (docs/runbooks/geo-split-brain.md): ship again."""
    ShipTarget.objects.filter(bucket=bucket).update(state=ShipTarget.STATE_OK, error="")
