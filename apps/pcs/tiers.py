"""Where a decided PCS lives: the one lookup that reads go through, hot → warm → cold (docs/tiering.md).

The hot tier (the Redis dedup store) holds only the answer and is read by the dedup claim itself. The
full record is warm (``PcsRecord``) until demotion moves it to the cold tier (S3 objects). The cold tier
belongs to ``apps.tiering``, which imports this app; so this module owns the lookup and the cold reader
registers itself here (``TieringConfig.ready``), and pcs never imports tiering.

While a record is being demoted it exists warm and cold at once; warm is asked first, so a read never
sees two copies. A cold hit puts the answer back into the hot store (promotion), so the next replay of
that PCS is answered from Redis again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter

from apps.pcs.dedup import Claim, DedupUnavailable, StoredOutcome, get_dedup_store
from apps.pcs.models import PcsRecord

logger = logging.getLogger("flk.tiering")

# prometheus_client appends ``_total``: these are scraped as tier_hot_hits_total and so on.
hot_hits = Counter("tier_hot_hits", "Dedup lookups answered by the hot tier (Redis)")
warm_hits = Counter("tier_warm_hits", "Record lookups answered by the warm tier (PostgreSQL)")
cold_hits = Counter("tier_cold_hits", "Record lookups answered by the cold tier (S3)")
promotions = Counter("tier_promotions", "Answers of cold records put back into the hot tier")


class TierUnavailable(DedupUnavailable):
    """The cold tier cannot be read now (object store down, timeout): the caller fails closed (503).

    A ``DedupUnavailable``: the cold tier is the last tier of the dedup lookup, and the ingest
    pipeline already answers an unavailable dedup store with 503 and Retry-After.
    """


class TierCorrupt(TierUnavailable):
    """A cold record whose bytes do not match their recorded SHA-256: never served."""


class ColdReader(Protocol):
    """What the cold tier offers the read paths (``apps.tiering.reader.ColdIndexReader``)."""

    def lookup(self, tenant_id: int, pcs_id: str) -> PcsRecord | None:
        """The record, or None when the cold tier has none; raises ``TierUnavailable``/``TierCorrupt``."""
        ...

    def lookup_many(self, tenant_id: int, pcs_ids: Iterable[str]) -> dict[str, PcsRecord]:
        """The records the cold tier holds among ``pcs_ids``, by pcs_id."""
        ...


_cold_reader: ColdReader | None = None


def cold_reader_register(reader: ColdReader | None) -> None:
    """Make ``reader`` the cold tier of every lookup (None: no cold tier)."""
    global _cold_reader
    _cold_reader = reader


def hot_hit() -> None:
    """Count a dedup lookup that the hot store answered."""
    hot_hits.inc()


def record_lookup(*, tenant_id: int, pcs_id: str, promote: bool = True) -> PcsRecord | None:
    """The decided record of (tenant, pcs_id): warm first, then cold; None when neither has it.

    A cold hit is promoted to the hot store unless ``promote`` is False. Raises ``TierUnavailable``
    when the cold tier cannot be read and ``TierCorrupt`` when its copy fails its digest.
    """
    record = PcsRecord.objects.filter(tenant_id=tenant_id, pcs_id=pcs_id).first()
    if record is not None:
        warm_hits.inc()
        return record
    if _cold_reader is None:
        return None
    record = _cold_reader.lookup(tenant_id, pcs_id)
    if record is None:
        return None
    cold_hits.inc()
    if promote:
        record_promote(record=record)
    return record


def records_lookup(*, tenant_id: int, pcs_ids: Iterable[str]) -> dict[str, PcsRecord]:
    """The decided records among ``pcs_ids`` of one tenant, warm or cold, by pcs_id (not promoted)."""
    wanted = set(pcs_ids)
    found = {
        record.pcs_id: record
        for record in PcsRecord.objects.filter(tenant_id=tenant_id, pcs_id__in=wanted).select_related(
            "tenant"
        )
    }
    warm_hits.inc(len(found))
    missing = wanted - set(found)
    if missing and _cold_reader is not None:
        cold = _cold_reader.lookup_many(tenant_id, missing)
        cold_hits.inc(len(cold))
        found.update(cold)
    return found


def record_promote(*, record: PcsRecord) -> None:
    """Put a record's answer into the hot store in the dedup store's own outcome format.

    Best effort: the hot store is a cache of the tiers below, so a Redis outage costs only speed.
    """
    store = get_dedup_store()
    if store.transactional:
        return  # the database dedup store keeps every outcome already; nothing to warm up
    outcome = StoredOutcome(
        record.payload_digest, record.status_code, json.loads(record.response), record.inputs_digest
    )
    try:
        store.complete(Claim("claimed", record.tenant_id, record.pcs_id), outcome)
    except DedupUnavailable:
        logger.warning("tier.promote_failed tenant=%s pcs_id=%s", record.tenant_id, record.pcs_id)
        return
    promotions.inc()
