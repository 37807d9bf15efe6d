"""Tier reads for operators: records and bytes per tier, demotion lag, the last demotion batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from apps.pcs.models import PcsRecord
from apps.tenants.models import Tenant
from apps.tiering.models import DemotionBatch
from apps.tiering.services import cold_cutoff

# The admin counts a tenant's hot answers with SCAN; past this many it says "at least".
HOT_SCAN_LIMIT = 100_000


def oldest_warm() -> datetime | None:
    """The oldest warm record's decision time: one (tenant, decided_at) index probe per tenant."""
    oldest = [
        PcsRecord.objects.filter(tenant_id=tenant_id).aggregate(oldest=Min("decided_at"))["oldest"]
        for tenant_id in Tenant.objects.values_list("pk", flat=True)
    ]
    known = [value for value in oldest if value is not None]
    return min(known) if known else None


def demotion_lag_seconds(now: datetime | None = None) -> float:
    """How far past ``TIER_WARM_TTL`` the oldest warm record is (0 when demotion keeps up)."""
    oldest = oldest_warm()
    if oldest is None:
        return 0.0
    now = now or timezone.now()
    return max(0.0, (now - oldest).total_seconds() - settings.TIER_WARM_TTL)


def _warm_table() -> tuple[int, int]:
    """(rows, bytes on disk) of the warm table; PostgreSQL's estimate, exact count elsewhere."""
    table = PcsRecord._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint, pg_total_relation_size(oid) FROM pg_class WHERE relname = %s",
                [table],
            )
            rows, size = cursor.fetchone()
        if rows < 0:  # never analysed
            rows = PcsRecord.objects.count()
        return int(rows), int(size)
    count = PcsRecord.objects.count()
    return count, 0


def tier_totals() -> dict[str, tuple[int, int]]:
    """(records, bytes) for the warm and cold tiers, cheap enough for every scrape."""
    cold = DemotionBatch.objects.filter(state=DemotionBatch.DELETED).aggregate(
        records=Sum("record_count"), size=Sum("object_bytes")
    )
    return {"warm": _warm_table(), "cold": (cold["records"] or 0, cold["size"] or 0)}


@dataclass(frozen=True)
class Eviction:
    """What ``TIER_COLD_TTL`` evicts: due now (whole batches past it) and evicted so far."""

    due_records: int
    due_objects: int
    evicted_records: int


def eviction_totals(now: datetime | None = None) -> Eviction:
    """Records and objects due for eviction, and records evicted so far: sums over batches (cheap).

    Nothing is due when ``TIER_COLD_TTL`` is 0 (kept forever).
    """
    cutoff = cold_cutoff(now)
    due = {"records": None, "objects": 0}
    if cutoff is not None:
        due = DemotionBatch.objects.filter(
            state=DemotionBatch.DELETED, newest_decided_at__lt=cutoff
        ).aggregate(records=Sum("record_count"), objects=Count("id"))
    gone = DemotionBatch.objects.filter(state=DemotionBatch.EVICTED).aggregate(records=Sum("record_count"))
    return Eviction(due["records"] or 0, due["objects"], gone["records"] or 0)


@dataclass
class TenantTiers:
    """One tenant's records and bytes per tier, and its last demotion batch."""

    tenant: Tenant
    hot_records: int | None
    hot_bytes: int | None
    hot_capped: bool
    warm_records: int
    warm_bytes: int
    cold_records: int
    cold_bytes: int
    failed_batches: int
    last_batch: DemotionBatch | None


def _hot(tenant: Tenant) -> tuple[int | None, int | None, bool]:
    """The tenant's answers in the Redis hot store and their bytes (None without Redis)."""
    if settings.DEDUP_BACKEND != "redis":
        return None, None, False
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.STORE_TIMEOUT_SECONDS)
    count = size = 0
    try:
        # The key formats of apps.pcs.dedup.RedisDedupStore: flk:dedup:{<tenant>:<pcs_id>} (hash tag,
        # for Redis Cluster) and the earlier flk:dedup:<tenant>:<pcs_id>. One node only: on a cluster
        # this counts the node REDIS_URL names.
        keys: list[bytes] = []
        for pattern in (f"flk:dedup:{{{tenant.pk}:*", f"flk:dedup:{tenant.pk}:*"):
            for key in client.scan_iter(match=pattern, count=1000):
                keys.append(key)
                if len(keys) >= HOT_SCAN_LIMIT:
                    break
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        sizes = pipe.execute() if keys else []
        count, size = len(keys), sum(sizes)
    except redis.RedisError:
        return None, None, False
    return count, size, count >= HOT_SCAN_LIMIT


def tenant_tiers(*, tenant: Tenant) -> TenantTiers:
    """What the admin's tier page shows for one tenant.

    Warm bytes are the tenant's share of the table's size on disk (by row count): PostgreSQL does
    not keep a size per tenant, and summing every row's width would read the whole table.
    """
    total_rows, total_bytes = _warm_table()
    warm = PcsRecord.objects.filter(tenant=tenant).count()
    batches = DemotionBatch.objects.filter(tenant=tenant)
    cold = batches.aggregate(
        records=Sum("record_count", filter=Q(state=DemotionBatch.DELETED)),
        size=Sum("object_bytes", filter=Q(state=DemotionBatch.DELETED)),
        failed=Count("id", filter=Q(state=DemotionBatch.FAILED)),
    )
    hot_records, hot_bytes, capped = _hot(tenant)
    return TenantTiers(
        tenant=tenant,
        hot_records=hot_records,
        hot_bytes=hot_bytes,
        hot_capped=capped,
        warm_records=warm,
        warm_bytes=int(total_bytes * warm / total_rows) if total_rows else 0,
        cold_records=cold["records"] or 0,
        cold_bytes=cold["size"] or 0,
        failed_batches=cold["failed"],
        last_batch=batches.order_by("-id").first(),
    )
