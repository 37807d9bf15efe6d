"""Tier writes: demotion of warm records to the cold tier, eviction past the cold TTL, verification.

Demotion works in bounded batches of one tenant's records, each batch one object, through recorded
states (``DemotionBatch``): ``copying`` (planned: which rows, where each lands, the object's digest),
the object written with ``If-None-Match: *``, read back and checked (``verified``), then the index rows
written and the warm rows deleted in one transaction (``deleted``). A run first resumes any batch a
crash left behind, from its recorded state, so a record is never lost and never has two live copies:
until the delete commits, reads find it warm (they ask warm first); after, only cold.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.pcs import tiers
from apps.pcs.models import PcsRecord
from apps.pcs.tiers import TierUnavailable
from apps.tenants.models import Tenant
from apps.tiering import metrics
from apps.tiering.codec import CodecError, Placed, decompress, pack, slice_record
from apps.tiering.models import ColdRecord, DemotionBatch, EvictedRecord
from apps.tiering.store import ColdStore, get_cold_store

logger = logging.getLogger("flk.tiering")

# One demotion at a time, whoever starts it (beat, `manage.py tier demote`): a PostgreSQL session lock,
# released by the server if the process dies. SQLite (the embedded default) has one writer anyway.
_LOCK_KEY = 0x464C4B5449455231  # "FLKTIER1"
_EXTENSIONS = {"zstd": "zst", "gzip": "gz"}


@dataclass
class DemotionRun:
    """What one run of ``tier_demote`` did (or, dry, would do)."""

    batches: int = 0
    records: int = 0
    resumed: int = 0
    failed: int = 0
    evicted: int = 0
    busy: bool = False
    dry_run: bool = False
    due: dict[int, int] = field(default_factory=dict)  # dry run: tenant id -> warm records past TTL

    def as_dict(self) -> dict[str, object]:
        """Plain values, for the task's result and the command's output."""
        return {
            "batches": self.batches,
            "records": self.records,
            "resumed": self.resumed,
            "failed": self.failed,
            "evicted": self.evicted,
            "busy": self.busy,
            "dry_run": self.dry_run,
            "due": self.due,
        }


def _pause(step: str) -> None:
    """TEST ONLY: stop here, after ``step``, so a fault test can SIGKILL the worker at this point."""
    if step != settings.TIER_TEST_PAUSE_AFTER:
        return
    logger.warning("tier.test_pause step=%s", step)
    if settings.TIER_TEST_PAUSE_FILE:
        Path(settings.TIER_TEST_PAUSE_FILE).write_text(step)
    time.sleep(600)


@contextmanager
def _demotion_lock() -> Iterator[bool]:
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        (held,) = cursor.fetchone()
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


def warm_cutoff(now: datetime | None = None) -> datetime:
    """Warm records decided before this are due for demotion."""
    return (now or timezone.now()) - timedelta(seconds=settings.TIER_WARM_TTL)


def tier_demote(
    *, dry_run: bool = False, now: datetime | None = None, max_batches: int | None = None
) -> DemotionRun:
    """Resume unfinished batches, demote warm records older than ``TIER_WARM_TTL``, evict old cold ones.

    Bounded: at most ``max_batches`` (``TIER_DEMOTE_MAX_BATCHES``) new batches of ``TIER_DEMOTE_BATCH``
    records. Raises ``TierUnavailable`` when the cold store cannot be reached; nothing is deleted then,
    and the next run resumes where this one stopped. ``dry_run`` only counts what is due.
    """
    now = now or timezone.now()
    cutoff = warm_cutoff(now)
    limit = settings.TIER_DEMOTE_MAX_BATCHES if max_batches is None else max_batches
    run = DemotionRun(dry_run=dry_run)
    tenant_ids = list(Tenant.objects.order_by("pk").values_list("pk", flat=True))
    if dry_run:
        for tenant_id in tenant_ids:
            # (tenant, decided_at) index: a range count per tenant.
            due = PcsRecord.objects.filter(tenant_id=tenant_id, decided_at__lt=cutoff).count()
            if due:
                run.due[tenant_id] = due
        return run
    store = get_cold_store()
    with _demotion_lock() as held:
        if not held:
            run.busy = True
            return run
        for batch in DemotionBatch.objects.filter(state__in=DemotionBatch.UNFINISHED).order_by("id"):
            run.resumed += 1
            _count(run, batch, _advance(batch, store))
        for tenant_id in tenant_ids:
            while run.batches < limit:
                rows = list(
                    PcsRecord.objects.filter(tenant_id=tenant_id, decided_at__lt=cutoff).order_by(
                        "decided_at", "id"
                    )[: settings.TIER_DEMOTE_BATCH]
                )
                if not rows:
                    break
                batch = _plan(tenant_id, rows)
                _count(run, batch, _advance(batch, store))
        run.evicted = _evict(store, now)
    return run


def _count(run: DemotionRun, batch: DemotionBatch, state: str) -> None:
    run.batches += 1
    if state == DemotionBatch.DELETED:
        run.records += batch.record_count
    elif state == DemotionBatch.FAILED:
        run.failed += 1


def _plan(tenant_id: int, rows: list[PcsRecord]) -> DemotionBatch:
    """Record which rows the batch takes and where each lands (state ``copying``)."""
    codec = settings.TIER_COLD_CODEC
    packed = pack(codec, rows)
    batch = DemotionBatch.objects.create(
        tenant_id=tenant_id,
        state=DemotionBatch.COPYING,
        codec=codec,
        object_key=f"t{tenant_id}/{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}.{_EXTENSIONS[codec]}",
        object_sha256=packed.sha256,
        object_bytes=len(packed.data),
        record_count=len(rows),
        record_bytes=packed.record_bytes,
        entries=[placed.as_entry() for placed in packed.placed],
        oldest_decided_at=min(row.decided_at for row in rows),
        newest_decided_at=max(row.decided_at for row in rows),
    )
    logger.info("tier.batch_planned batch=%s tenant=%s records=%d", batch.pk, tenant_id, len(rows))
    _pause(DemotionBatch.COPYING)
    return batch


def _fail(batch: DemotionBatch, error: str) -> str:
    batch.state = DemotionBatch.FAILED
    batch.error = error
    batch.save(update_fields=["state", "error", "updated_at"])
    logger.error("tier.batch_failed batch=%s tenant=%s error=%s", batch.pk, batch.tenant_id, error)
    return DemotionBatch.FAILED


def _advance(batch: DemotionBatch, store: ColdStore) -> str:
    """Take a batch from its recorded state to ``deleted`` (or ``failed``); its final state."""
    if batch.state == DemotionBatch.COPYING:
        if not store.exists(batch.object_key):
            placed = [Placed.from_entry(entry) for entry in batch.entries]
            by_pk = PcsRecord.objects.in_bulk([p.pk for p in placed])
            rows = [by_pk.get(p.pk) for p in placed]
            if any(row is None for row in rows):
                return _fail(batch, "warm rows of the batch vanished before it was copied")
            packed = pack(batch.codec, rows)
            if packed.sha256 != batch.object_sha256:  # a compressor upgrade since the plan: re-plan
                batch.object_sha256, batch.object_bytes = packed.sha256, len(packed.data)
                batch.entries = [p.as_entry() for p in packed.placed]
                batch.save(update_fields=["object_sha256", "object_bytes", "entries", "updated_at"])
            store.put_once(batch.object_key, packed.data)
        _pause("copied")
        problems = object_problems(batch, store.get(batch.object_key))
        if problems:
            return _fail(batch, "; ".join(detail for _, detail in problems[:5]))
        batch.state = DemotionBatch.VERIFIED
        batch.save(update_fields=["state", "updated_at"])
        _pause(DemotionBatch.VERIFIED)
    if batch.state == DemotionBatch.VERIFIED:
        _index_and_delete(batch)
        _pause(DemotionBatch.DELETED)
    return batch.state


def _index_and_delete(batch: DemotionBatch) -> None:
    """One transaction: the index rows, the warm rows deleted, the batch ``deleted``."""
    placed = [Placed.from_entry(entry) for entry in batch.entries]
    with transaction.atomic():
        locked = DemotionBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.state != DemotionBatch.VERIFIED:
            batch.state = locked.state
            return
        pks = [p.pk for p in placed]
        # The list's filter reads the status from the index, never from the object; the decision's
        # entry is what answers a replay once the record is evicted.
        decided = {
            pk: (status, entry)
            for pk, status, entry in PcsRecord.objects.filter(
                tenant_id=batch.tenant_id, pk__in=pks
            ).values_list("pk", "status_code", "audit_entry_id")
        }
        ColdRecord.objects.bulk_create(
            [
                ColdRecord(
                    tenant_id=batch.tenant_id,
                    pcs_id=p.pcs_id,
                    batch=batch,
                    object_key=batch.object_key,
                    frame_offset=p.frame_offset,
                    frame_length=p.frame_length,
                    offset=p.offset,
                    length=p.length,
                    sha256=p.sha256,
                    decided_at=datetime.fromisoformat(p.decided_at),
                    record_id=p.pk,
                    status_code=decided.get(p.pk, (None, None))[0],
                    audit_entry_id=decided.get(p.pk, (None, None))[1],
                )
                for p in placed
            ],
            batch_size=1000,
        )
        warm = PcsRecord.objects.filter(tenant_id=batch.tenant_id, pk__in=pks)
        # Whoever takes in warm rows by scanning them (the review queue) sees these before they go,
        # in this transaction: an escalation demoted before the queue's sync still reaches the queue.
        tiers.records_demoting(tenant_id=batch.tenant_id, records=warm)
        deleted, _ = warm.delete()
        locked.state = DemotionBatch.DELETED
        locked.save(update_fields=["state", "updated_at"])
        count = len(placed)
        transaction.on_commit(lambda: metrics.demotions.inc(count))
    batch.state = DemotionBatch.DELETED
    logger.info("tier.batch_demoted batch=%s tenant=%s records=%d", batch.pk, batch.tenant_id, deleted)


def object_problems(batch: DemotionBatch, data: bytes) -> list[tuple[str | None, str]]:
    """What is wrong with a batch's object: (pcs_id or None for the object, detail); empty when sound."""
    problems: list[tuple[str | None, str]] = []
    if hashlib.sha256(data).hexdigest() != batch.object_sha256:
        problems.append((None, f"object {batch.object_key} does not match its SHA-256"))
    frames: dict[tuple[int, int], bytes | None] = {}
    for entry in batch.entries:
        p = Placed.from_entry(entry)
        key = (p.frame_offset, p.frame_length)
        if key not in frames:
            try:
                frames[key] = decompress(batch.codec, data[p.frame_offset : p.frame_offset + p.frame_length])
            except CodecError:
                frames[key] = None
        plain = frames[key]
        try:
            if plain is None:
                raise CodecError("its frame does not decompress")
            slice_record(plain, p.offset, p.length, p.sha256)
        except CodecError as exc:
            problems.append((p.pcs_id, f"record {p.pcs_id}: {exc}"))
    return problems


# Batches evicted per run, each in its own short transaction (at most TIER_DEMOTE_BATCH index rows
# moved to tombstones) followed by one DELETE of its object; the rest wait for the next run.
EVICT_MAX_BATCHES = 100


def cold_cutoff(now: datetime | None = None) -> datetime | None:
    """Cold records decided before this are past ``TIER_COLD_TTL``; None when they are kept forever."""
    if settings.TIER_COLD_TTL <= 0:
        return None
    return (now or timezone.now()) - timedelta(seconds=settings.TIER_COLD_TTL)


def _evict(store: ColdStore, now: datetime) -> int:
    """Evict cold batches whose every record passed ``TIER_COLD_TTL``, then delete their objects.

    A batch is the unit: its object is deleted only when its newest record is past the TTL, so a
    record may outlive the TTL by its batch's span (a run of oldest-first records, usually minutes).
    Index rows go first, in one transaction that also writes their tombstones and records the batch
    ``evicted``; the object after. A crash in between leaves an object with no index row naming it,
    which the next run deletes (``object_bytes`` 0 marks it gone), never an index row without its
    object. Returns how many records were evicted.
    """
    evicted = 0
    cutoff = cold_cutoff(now)
    if cutoff is not None:
        due = DemotionBatch.objects.filter(state=DemotionBatch.DELETED, newest_decided_at__lt=cutoff)
        for batch_id in list(due.order_by("id").values_list("pk", flat=True)[:EVICT_MAX_BATCHES]):
            evicted += _evict_batch(batch_id)
    for batch in (
        DemotionBatch.objects.filter(state=DemotionBatch.EVICTED).exclude(object_bytes=0).order_by("id")
    ):
        store.delete(batch.object_key)  # TierUnavailable: the run fails and the next one retries
        batch.object_bytes = 0
        batch.save(update_fields=["object_bytes", "updated_at"])
        logger.info(
            "tier.object_evicted batch=%s tenant=%s object=%s", batch.pk, batch.tenant_id, batch.object_key
        )
    return evicted


def _evict_batch(batch_id: int) -> int:
    """One transaction: the batch's index rows become tombstones, the batch ``evicted``; the count."""
    with transaction.atomic():
        batch = DemotionBatch.objects.select_for_update().get(pk=batch_id)
        if batch.state != DemotionBatch.DELETED:
            return 0
        rows = ColdRecord.objects.filter(batch=batch)
        EvictedRecord.objects.bulk_create(
            [
                EvictedRecord(
                    tenant_id=tenant_id, pcs_id=pcs_id, audit_entry_id=entry_id, decided_at=decided_at
                )
                for tenant_id, pcs_id, entry_id, decided_at in rows.values_list(
                    "tenant_id", "pcs_id", "audit_entry_id", "decided_at"
                )
            ],
            batch_size=1000,
        )
        count, _ = rows.delete()
        batch.state = DemotionBatch.EVICTED
        batch.save(update_fields=["state", "updated_at"])
        transaction.on_commit(lambda: metrics.evictions.inc(count))
    logger.info("tier.batch_evicted batch=%s tenant=%s records=%d", batch.pk, batch.tenant_id, count)
    return count


@dataclass
class VerifyReport:
    """What ``tier_verify`` found."""

    objects: int = 0
    records: int = 0
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)  # (object, pcs_id, detail)


def tier_verify(
    *, tenant_id: int | None = None, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    """Re-read every cold object and check its digest and every indexed record's digest.

    ``progress`` is called with the number of records each object held, as it is checked.
    """
    report = VerifyReport()
    batches = DemotionBatch.objects.filter(state=DemotionBatch.DELETED).order_by("id")
    if tenant_id is not None:
        batches = batches.filter(tenant_id=tenant_id)
    store = get_cold_store()
    for batch in batches.iterator():
        report.objects += 1
        report.records += batch.record_count
        try:
            problems = object_problems(batch, store.get(batch.object_key))
        except TierUnavailable as exc:
            problems = [(None, f"object {batch.object_key} cannot be read: {exc}")]
        for pcs_id, detail in problems:
            report.problems.append((batch.object_key, pcs_id, detail))
            logger.error(
                "tier.verify_failed batch=%s object=%s detail=%s", batch.pk, batch.object_key, detail
            )
        if progress is not None:
            progress(batch.record_count)
    return report
