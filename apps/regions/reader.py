"""The reader: other regions' WAL chunks, verified, replayed through the one decision path.

For each source region that shipped into this region's bucket (``REGION_BUCKET``), the reader first
applies the newest control-plane snapshot (``apps.regions.control``), so a PCS of a tenant or key
created there verifies here, then follows the source's manifest from its cursor: each entry must
chain from the previous one (SHA-256 of the entry bytes), its chunk must have the SHA-256 the entry
and the object's metadata name, and every frame in it must be whole with a valid CRC-32. A chunk
that fails any of that stops the source (``SourceCursor.state = stopped``, an error log line, the
``crr_chunk_verification_failures`` counter and ``crr_source_stopped`` gauge, the admin): nothing
of it is replayed and nothing after it is skipped to. An operator resumes with ``crr resume``.

Requests are decided by ``pcs_ingest_wal_many``, as a local WAL replay (not rate-limited again, with
the original receive time), in groups of up to ``CRR_REPLAY_GROUP`` whose decisions share one
transaction, and the cursor (chunk, offset of the next record) is written by its ``in_transaction``
hook in that transaction; a group that stores nothing (PCS decided here already, refusals) moves the
cursor on its own. A 409 or 503 leaves the rest of the chunk for the next run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.pcs import wal
from apps.pcs.quarantine import request_quarantine
from apps.pcs.services import pcs_ingest_wal, pcs_ingest_wal_many
from apps.regions import metrics, storage
from apps.regions.control import control_apply
from apps.regions.locks import exclusive
from apps.regions.models import ReplayedChunk, SourceCursor

logger = logging.getLogger("flk.regions")

RETRY_LATER = (409, 503)
COVER_LOOKAHEAD = 100  # pending manifest entries read to find the oldest unreplayed byte


@dataclass
class PullReport:
    """What one reader run did."""

    sources: list[str] = field(default_factory=list)
    chunks: int = 0
    requests: int = 0
    bytes: int = 0
    controls_applied: int = 0
    pending: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Plain values for logs, task results and the CLI."""
        return asdict(self)


class ChunkRejected(Exception):
    """A chunk or manifest entry failed verification."""


def source_regions() -> list[str]:
    """Regions that shipped anything into this region's bucket."""
    bucket = settings.REGION_BUCKET
    found = set(storage.list_prefixes(bucket, "wal/")) | set(storage.list_prefixes(bucket, "control/"))
    found.discard(settings.REGION_ID)
    return sorted(found)


def crr_pull(*, sources: list[str] | None = None) -> PullReport:
    """Apply new control-plane snapshots and replay new chunks of every source region."""
    report = PullReport()
    if not settings.REGION_BUCKET:
        return report
    with exclusive("crr-pull") as mine:
        if not mine:
            logger.info("regions.pull_skipped reason=another_run")
            return report
        for source in sources if sources is not None else source_regions():
            report.sources.append(source)
            try:
                if control_apply(source=source) is not None:
                    report.controls_applied += 1
                _replay_source(source, report)
            except Exception as exc:  # an unreachable bucket, a database outage: next run
                logger.warning("regions.pull_failed source=%s error=%s", source, exc)
                report.failed.append(source)
    logger.info("regions.pulled %s", " ".join(f"{k}={v}" for k, v in report.as_dict().items()))
    return report


def source_stop(*, source: str, error: str) -> None:
    """Stop replaying ``source`` and say why, loudly; only an operator resumes it."""
    logger.error("regions.source_stopped source=%s error=%s", source, error)
    metrics.verification_failures.labels(source).inc()
    SourceCursor.objects.filter(pk=source).update(
        state=SourceCursor.STATE_STOPPED, error=error[:2000], stopped_at=timezone.now()
    )


def source_resume(*, source: str) -> None:
    """Let the next run verify and replay ``source`` again (after the bad object was repaired)."""
    SourceCursor.objects.filter(pk=source).update(state=SourceCursor.STATE_OK, error="", stopped_at=None)


def _replay_source(source: str, report: PullReport) -> None:
    bucket = settings.REGION_BUCKET
    cursor, _ = SourceCursor.objects.get_or_create(source_region=source)
    if cursor.state == SourceCursor.STATE_STOPPED:
        report.stopped.append(source)
        return
    keys = storage.list_keys(
        bucket, storage.manifest_prefix(source), start_after=storage.manifest_key(source, cursor.manifest_seq)
    )
    pending_from = len(keys)
    for index, key in enumerate(keys):
        try:
            seq, entry, entry_hash, records, size = _verified(bucket, source, cursor, key)
        except ChunkRejected as exc:
            source_stop(source=source, error=str(exc))
            report.stopped.append(source)
            return
        done = _replay_chunk(source, seq, entry, records, cursor, report)
        if not done:
            report.pending.append(source)
            pending_from = index
            break
        first = parse_datetime(entry["first_byte_at"]) if entry.get("first_byte_at") else None
        with transaction.atomic():
            SourceCursor.objects.filter(pk=source).update(
                manifest_seq=seq,
                manifest_hash=entry_hash,
                chunk_seq=0,
                chunk_pos=0,
                chunks_replayed=F("chunks_replayed") + 1,
                requests_replayed=F("requests_replayed") + int(entry.get("requests") or 0),
            )
            ReplayedChunk.objects.get_or_create(
                source_region=source,
                seq=seq,
                defaults={
                    "key": entry["key"],
                    "sha256": entry["sha256"],
                    "size": size,
                    "requests": int(entry.get("requests") or 0),
                    "first_byte_at": first,
                },
            )
        cursor.refresh_from_db()
        report.chunks += 1
        report.bytes += size
        metrics.chunks_replayed.labels(source).inc()
        if first is not None:
            metrics.replay_age.labels(source).observe((timezone.now() - first).total_seconds())
    _update_covered(bucket, source, cursor, keys[pending_from:])


def _verified(
    bucket: str, source: str, cursor: SourceCursor, key: str
) -> tuple[int, dict[str, Any], str, list[wal.WalRequest | wal.WalOutcome], int]:
    """The manifest entry at ``key`` and its chunk's records, once every check passed."""
    seq = int(key.rsplit("/", 1)[1].removesuffix(".json"))
    if seq != cursor.manifest_seq + 1:
        raise ChunkRejected(f"manifest gap: after entry {cursor.manifest_seq} came {key}")
    raw = storage.get(bucket, key).body
    try:
        entry = json.loads(raw)
    except ValueError as exc:
        raise ChunkRejected(f"{key} is not JSON") from exc
    if entry.get("prev") != cursor.manifest_hash or entry.get("seq") != seq:
        raise ChunkRejected(f"{key} does not chain from entry {cursor.manifest_seq} (manifest edited?)")
    try:
        chunk = storage.get(bucket, entry["key"])
    except storage.ObjectMissing as exc:
        raise ChunkRejected(f"{entry['key']} named by {key} is missing") from exc
    actual = storage.sha256_hex(chunk.body)
    if actual != entry["sha256"] or chunk.metadata.get("sha256", actual) != entry["sha256"]:
        raise ChunkRejected(
            f"{entry['key']}: SHA-256 {actual} but the manifest says {entry['sha256']} (corrupt chunk)"
        )
    if len(chunk.body) != entry["end"] - entry["start"]:
        raise ChunkRejected(
            f"{entry['key']}: {len(chunk.body)} bytes for range {entry['start']}-{entry['end']}"
        )
    try:
        records = wal.decode_frames(entry["segment"], entry["start"], chunk.body)
    except ValueError as exc:
        raise ChunkRejected(f"{entry['key']}: {exc}") from exc
    return seq, entry, storage.sha256_hex(raw), records, len(chunk.body)


def _replay_chunk(
    source: str,
    seq: int,
    entry: dict[str, Any],
    records: list[wal.WalRequest | wal.WalOutcome],
    cursor: SourceCursor,
    report: PullReport,
) -> bool:
    """Decide the chunk's requests from the cursor on; False when one must be tried again later.

    Requests are decided in groups of up to ``CRR_REPLAY_GROUP`` (``pcs_ingest_wal_many``): one
    transaction holds a group's decisions and the cursor past them. A group that raises (a defect
    in one request) is retried one request at a time, so only the faulty one is quarantined.
    """
    resume = cursor.chunk_pos if cursor.chunk_seq == seq else entry["start"]
    ends = [r.ref.offset for r in records[1:]] + [entry["end"]]
    pending = [
        (record, end)
        for record, end in zip(records, ends, strict=True)
        if isinstance(record, wal.WalRequest) and record.ref.offset >= resume
    ]

    def advance(end: int) -> None:
        SourceCursor.objects.filter(pk=source).update(chunk_seq=seq, chunk_pos=end)

    while pending:
        group = pending[: settings.CRR_REPLAY_GROUP]
        retry_later = False
        try:
            results = pcs_ingest_wal_many(
                requests=[request for request, _ in group],
                in_transaction=lambda n, group=group: advance(group[n - 1][1]),
            )
        except Exception:
            request, end = group[0]
            if not _replay_alone(request, lambda end=end: advance(end)):
                return False
            settled = 1
        else:
            retry_later = results[-1].status in RETRY_LATER
            settled = len(results) - retry_later
        if settled:
            advance(group[settled - 1][1])  # a group that stored nothing moves the cursor on its own
            report.requests += settled
            metrics.requests_replayed.labels(source).inc(settled)
        if retry_later:
            return False
        pending = pending[settled:]
    return True


def _replay_alone(request: wal.WalRequest, advance: Callable[[], None]) -> bool:
    """Decide one request on its own, quarantining it if it raises; False to try again later."""
    try:
        result = pcs_ingest_wal(request=request, in_transaction=advance)
    except Exception as exc:
        if not request_quarantine(request=request, error=exc):
            return False
    else:
        if result.status in RETRY_LATER:
            return False
    return True


def _time(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def _update_covered(bucket: str, source: str, cursor: SourceCursor, pending: list[str]) -> None:
    """Record up to when the source's WAL is replayed here (the lag is its age)."""
    try:
        head = json.loads(storage.get(bucket, storage.head_key(source)).body)
    except storage.ObjectMissing:
        head = {}
    covered = _time(head.get("covered_at"))
    if covered is not None and int(head.get("manifest_seq", 0)) > cursor.manifest_seq and not pending:
        covered = None  # entries appeared after the listing: unknown how old, keep the last value
    for key in pending[:COVER_LOOKAHEAD]:
        first = _time(json.loads(storage.get(bucket, key).body).get("first_byte_at"))
        if first is not None and (covered is None or first < covered):
            covered = first
    updates: dict[str, Any] = {"head_at": _time(head.get("written_at"))}
    if covered is not None and (cursor.covered_at is None or covered >= cursor.covered_at or pending):
        updates["covered_at"] = covered
    SourceCursor.objects.filter(pk=source).update(**updates)
