"""Where a decided PCS lives: the one lookup that reads go through, hot → warm → cold (docs/tiering.md).

The hot tier (the Redis dedup store) holds only the answer and is read by the dedup claim itself. The
full record is warm (``PcsRecord``) until demotion moves it to the cold tier (S3 objects). The cold tier
belongs to ``apps.tiering``, which imports this app; so this module owns the lookup and the cold reader
registers itself here (``TieringConfig.ready``), and pcs never imports tiering.

While a record is being demoted it exists warm and cold at once; warm is asked first, so a read never
sees two copies. A cold hit puts the answer back into the hot store (promotion), so the next replay of
that PCS is answered from Redis again. A PCS whose cold record was evicted past ``TIER_COLD_TTL`` is
answered on the dedup path by a stand-in built from its decision entry, so it is never decided twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from django.db.models import QuerySet
from prometheus_client import Counter

from apps.pcs.dedup import Claim, DedupUnavailable, StoredOutcome, get_dedup_store
from apps.pcs.models import PcsRecord
from apps.tenants.models import Tenant

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

    def evicted(self, tenant_id: int, pcs_id: str) -> PcsRecord | None:
        """The decision of a PCS whose record was evicted, or None when it was not evicted.

        A stand-in record that holds only what answers a replay (its status, payload digest and a
        short body marked ``"evicted": true``, from the decision's audit entry); no PCS.
        """
        ...

    def index_page(self, tenant_id: int, window: RecordWindow, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (record id, pcs_id) of the cold index in ``window``, in its order.

        Read from the index alone (no object is fetched): the list pages through both tiers by
        record id, then reads only the cold records that made the page.
        """
        ...


_cold_reader: ColdReader | None = None


def cold_reader_register(reader: ColdReader | None) -> None:
    """Make ``reader`` the cold tier of every lookup (None: no cold tier)."""
    global _cold_reader
    _cold_reader = reader


# Called with (tenant id, the warm rows about to be demoted) inside the demotion's transaction.
DemotionHook = Callable[[int, QuerySet[PcsRecord]], None]
_demotion_hooks: list[DemotionHook] = []


def demotion_hook_register(hook: DemotionHook) -> None:
    """Run ``hook(tenant_id, records)`` whenever warm records are about to leave the warm tier.

    For apps that take in warm rows by scanning the warm table (the review queue's sync): a record
    demoted before their scan reached it would otherwise be missed for good. The hook runs inside the
    transaction that writes the cold index rows and deletes ``records``, so what it writes commits
    with the demotion, and if it raises nothing is demoted (the batch stays ``verified`` and the next
    run retries). Registering the same hook twice has no effect.
    """
    if hook not in _demotion_hooks:
        _demotion_hooks.append(hook)


def records_demoting(*, tenant_id: int, records: QuerySet[PcsRecord]) -> None:
    """Tell the registered hooks that ``records`` (one tenant's warm rows) are being demoted now.

    Called by the cold tier inside its demotion transaction, before the rows are deleted.
    """
    for hook in _demotion_hooks:
        hook(tenant_id, records)


def hot_hit() -> None:
    """Count a dedup lookup that the hot store answered."""
    hot_hits.inc()


def record_lookup(
    *, tenant_id: int, pcs_id: str, promote: bool = True, evicted: bool | None = None
) -> PcsRecord | None:
    """The decided record of (tenant, pcs_id): warm first, then cold; None when neither has it.

    A cold hit is promoted to the hot store unless ``promote`` is False. Raises ``TierUnavailable``
    when the cold tier cannot be read and ``TierCorrupt`` when its copy fails its digest.

    ``evicted``: whether a PCS whose record passed ``TIER_COLD_TTL`` is answered by a stand-in built
    from its decision entry (``ColdReader.evicted``: status, payload digest, a short body; no PCS).
    The default follows ``promote``: a lookup that promotes answers a submission (the dedup path),
    which must get the first decision back rather than decide the PCS again; readers that show a
    record (the read API, review, re-verification) pass False or do not promote, and get None.
    """
    record = PcsRecord.objects.filter(tenant_id=tenant_id, pcs_id=pcs_id).first()
    if record is not None:
        warm_hits.inc()
        return record
    if _cold_reader is None:
        return None
    record = _cold_reader.lookup(tenant_id, pcs_id)
    if record is None:
        answer_evicted = promote if evicted is None else evicted
        if answer_evicted:
            record = _cold_reader.evicted(tenant_id, pcs_id)
            if record is not None and promote:
                record_promote(record=record)
        return record
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


@dataclass(frozen=True)
class RecordWindow:
    """Which of a tenant's records a list shows, and from where: what both tiers must agree on.

    ``status_code`` and ``since`` (decided at or after) are the list's filters; ``after_id`` and
    ``before_id`` the cursor's position (exclusive); ``newest_first`` the order by record id. A record
    keeps its warm id in the cold tier, so one id order spans both tiers.
    """

    status_code: int | None = None
    since: datetime | None = None
    after_id: int | None = None
    before_id: int | None = None
    newest_first: bool = True


class TieredRecords:
    """A tenant's decided records, warm and cold, in record id order: the read API's list.

    It offers exactly what DRF's ``CursorPagination`` calls on a queryset (``order_by`` on ``id``,
    ``filter`` by ``id__lt``/``id__gt``, a slice), so the list keeps its cursors and links while its
    rows come from two tables. A slice reads the warm rows and the cold index rows of the window (each
    at most as many as the slice needs), merges them by id and reads only the page's cold records from
    the object store (one ranged read per frame). Warm is read before cold: a record demoted in
    between is then seen twice and kept once (by id), never missed. Cold reads raise
    ``TierUnavailable`` or ``TierCorrupt`` like a lookup does.
    """

    model = PcsRecord  # for schema generation, which asks a view's queryset for its model

    def __init__(self, *, warm: QuerySet[PcsRecord], tenant: Tenant, window: RecordWindow) -> None:
        self._warm = warm
        self._tenant = tenant
        self._window = window

    def _with(self, window: RecordWindow) -> TieredRecords:
        return TieredRecords(warm=self._warm, tenant=self._tenant, window=window)

    def order_by(self, *fields: str) -> TieredRecords:
        """Order by record id, newest first (``-id``) or oldest first (``id``); nothing else."""
        if fields not in (("-id",), ("id",), ("-pk",), ("pk",)):
            raise ValueError(f"records across tiers are ordered by id only, not {fields}")
        return self._with(replace(self._window, newest_first=fields[0].startswith("-")))

    def filter(self, **lookups: object) -> TieredRecords:
        """Narrow to ids below (``id__lt``) or above (``id__gt``) a cursor position."""
        window = self._window
        for name, value in lookups.items():
            if name in ("id__lt", "pk__lt"):
                window = replace(window, before_id=int(value))
            elif name in ("id__gt", "pk__gt"):
                window = replace(window, after_id=int(value))
            else:
                raise ValueError(f"records across tiers are filtered by id only, not {name}")
        return self._with(window)

    def __getitem__(self, index: slice) -> list[PcsRecord]:
        if not isinstance(index, slice) or index.step is not None:
            raise TypeError("records across tiers are read in slices")
        start, stop = index.start or 0, index.stop
        if stop is None or start < 0 or stop < start:
            raise ValueError("records across tiers are read in bounded slices")
        window = self._window
        warm = self._warm.order_by("-id" if window.newest_first else "id")
        if window.before_id is not None:
            warm = warm.filter(id__lt=window.before_id)
        if window.after_id is not None:
            warm = warm.filter(id__gt=window.after_id)
        merged: dict[int, PcsRecord | str] = {record.id: record for record in warm[:stop]}
        if _cold_reader is not None:
            for record_id, pcs_id in _cold_reader.index_page(self._tenant.pk, window, stop):
                merged.setdefault(record_id, pcs_id)  # warm wins: the copy read first
        ids = sorted(merged, reverse=window.newest_first)[start:stop]
        wanted = [merged[i] for i in ids if isinstance(merged[i], str)]
        cold = _cold_reader.lookup_many(self._tenant.pk, wanted) if wanted and _cold_reader else {}
        page: list[PcsRecord] = []
        for record_id in ids:
            entry = merged[record_id]
            if isinstance(entry, str):
                entry = cold.get(entry)
                if entry is None:  # evicted since the index was read: gone, not an error
                    continue
                entry.tenant = self._tenant
            page.append(entry)
        return page


def records_list(*, tenant: Tenant, warm: QuerySet[PcsRecord], window: RecordWindow) -> TieredRecords:
    """The tenant's records across tiers: ``warm`` (already filtered) and the cold index in ``window``.

    ``window`` must carry the same filters as ``warm`` (status, since): the cold side applies them to
    its index columns.
    """
    return TieredRecords(warm=warm.filter(tenant=tenant), tenant=tenant, window=window)


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
