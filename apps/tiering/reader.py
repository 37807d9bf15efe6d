"""The cold tier's reader, registered with ``apps.pcs.tiers`` so every read path falls through to it."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.pcs.tiers import RecordWindow, TierCorrupt
from apps.tiering import metrics
from apps.tiering.codec import CodecError, decompress, record_from_bytes, slice_record, unpack_record
from apps.tiering.models import ColdRecord, EvictedRecord
from apps.tiering.store import get_cold_store

logger = logging.getLogger("flk.tiering")


def _corrupt(row: ColdRecord, detail: str) -> TierCorrupt:
    metrics.cold_corrupt.inc()
    logger.error(
        "tier.cold_corrupt tenant=%s pcs_id=%s object=%s batch=%s detail=%s",
        row.tenant_id,
        row.pcs_id,
        row.object_key,
        row.batch_id,
        detail,
    )
    return TierCorrupt(f"cold record {row.pcs_id} failed its check: {detail}")


def _record(row: ColdRecord, data: bytes) -> PcsRecord:
    record = record_from_bytes(data)
    if record.tenant_id != row.tenant_id or record.pcs_id != row.pcs_id:
        raise CodecError("the bytes are another record's")
    return record


def _evicted_record(row: EvictedRecord, entry: AuditEntry) -> PcsRecord:
    """A stand-in for an evicted record: what a replay is answered with, from the decision entry."""
    status = entry.status
    body = {
        "pcs_id": row.pcs_id,
        "accepted": status == 200,
        "escalated": status == 202,
        "reason": entry.reason if status != 200 else "",
        "policy_version": entry.policy_version,
        "audit_index": entry.seq,
        "decided_at": row.decided_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "evicted": True,
    }
    return PcsRecord(
        tenant_id=row.tenant_id,
        pcs_id=row.pcs_id,
        payload_digest=entry.request_digest,
        inputs_digest="",  # not kept: a replay is matched on its signed payload alone
        shard_id="",
        epoch=0,
        pcs={},
        status_code=status,
        accepted=status == 200,
        escalated=status == 202,
        reason=entry.reason,
        policy_version=entry.policy_version,
        d_hat=0.0,
        regime="",
        budget=0.0,
        response=json.dumps(body, separators=(",", ":")),
        audit_entry_id=entry.pk,
        received_at=row.decided_at,
        decided_at=row.decided_at,
    )


class ColdIndexReader:
    """Looks a PCS up in the cold index, reads its frame, checks its digest, rebuilds the record."""

    def lookup(self, tenant_id: int, pcs_id: str) -> PcsRecord | None:
        """One record (a ranged read of its frame), or None when the cold tier does not hold it."""
        row = ColdRecord.objects.filter(tenant_id=tenant_id, pcs_id=pcs_id).select_related("batch").first()
        if row is None:
            return None
        frame = get_cold_store().get(row.object_key, row.frame_offset, row.frame_length)
        try:
            return _record(row, unpack_record(row.batch.codec, frame, row.offset, row.length, row.sha256))
        except CodecError as exc:
            raise _corrupt(row, str(exc)) from exc

    def lookup_many(self, tenant_id: int, pcs_ids: Iterable[str]) -> dict[str, PcsRecord]:
        """Several records of one tenant, each frame read once."""
        rows = ColdRecord.objects.filter(tenant_id=tenant_id, pcs_id__in=list(pcs_ids)).select_related(
            "batch"
        )
        frames: dict[tuple[str, int, int, str], list[ColdRecord]] = defaultdict(list)
        for row in rows:
            frames[(row.object_key, row.frame_offset, row.frame_length, row.batch.codec)].append(row)
        found: dict[str, PcsRecord] = {}
        store = get_cold_store()
        for (key, frame_offset, frame_length, codec), members in frames.items():
            frame = store.get(key, frame_offset, frame_length)
            try:
                plain = decompress(codec, frame)
            except CodecError as exc:
                raise _corrupt(members[0], str(exc)) from exc
            for row in members:
                try:
                    found[row.pcs_id] = _record(row, slice_record(plain, row.offset, row.length, row.sha256))
                except CodecError as exc:
                    raise _corrupt(row, str(exc)) from exc
        return found

    def evicted(self, tenant_id: int, pcs_id: str) -> PcsRecord | None:
        """The stand-in of an evicted PCS (its tombstone and decision entry), or None."""
        row = EvictedRecord.objects.filter(tenant_id=tenant_id, pcs_id=pcs_id).first()
        if row is None:
            return None
        entries = AuditEntry.objects.filter(tenant_id=tenant_id, pcs_id=pcs_id, kind="decision")
        if row.audit_entry_id is not None:
            entries = entries.filter(pk=row.audit_entry_id)
        # Without the id (an index row the backfill could not match) the latest decision entry of the
        # PCS: a scan of the tenant's log, for a case that should not exist.
        entry = entries.order_by("-seq").first()
        if entry is None:
            logger.error("tier.evicted_without_decision tenant=%s pcs_id=%s", tenant_id, pcs_id)
            return None
        return _evicted_record(row, entry)

    def index_page(self, tenant_id: int, window: RecordWindow, limit: int) -> list[tuple[int, str]]:
        """(record id, pcs_id) of the tenant's cold records in ``window``: the index alone, no object."""
        rows = ColdRecord.objects.filter(tenant_id=tenant_id)
        if window.status_code is not None:
            rows = rows.filter(status_code=window.status_code)
        if window.since is not None:
            rows = rows.filter(decided_at__gte=window.since)
        if window.before_id is not None:
            rows = rows.filter(record_id__lt=window.before_id)
        if window.after_id is not None:
            rows = rows.filter(record_id__gt=window.after_id)
        # (tenant, record_id) index, in either direction.
        order = "-record_id" if window.newest_first else "record_id"
        return list(rows.order_by(order).values_list("record_id", "pcs_id")[:limit])
