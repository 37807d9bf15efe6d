"""Per-tenant token bucket and daily quota (UTC day), and the limiter of failed authentications.

Redis runs both tenant checks in one Lua script, so concurrent web processes never over-admit;
without Redis the same arithmetic runs under a row lock in the database. Only authenticated requests
reach the tenant's limits: failed authentications are counted by ``AuthFailureLimiter``, keyed by the
tenant header and the client address, so nobody can spend a tenant's budget by knowing its slug.

The database is the authority for the day's usage: Redis's daily counter is a cache, and when it is
missing (Redis restarted empty, or was flushed) it is rebuilt from the tenant's decisions stored
today before anything is admitted, so a restart never hands a tenant a second quota.

The Redis client is the hot store's (``flk_project.redis_clients``): one node, or the Redis Cluster of
``DEDUP_SHARDS``. A tenant's bucket and daily counter share the hash tag ``{<slug>}`` (one script
touches both); different tenants spread over the slots.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F

from apps.tenants.models import AuthFailureDay, RateBucket, Tenant
from flk_project.caches import register
from flk_project.redis_clients import HotClient, HotScript, hot_store_client, run_grouped

_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local to_midnight = tonumber(ARGV[5])
if quota > 0 then
  local used = redis.call('GET', KEYS[2])
  if not used then return {2, '0', 'rebuild'} end
  if tonumber(used) >= quota then return {0, tostring(to_midnight), 'quota'} end
end
if rate > 0 then
  local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
    return {0, tostring((1 - tokens) / rate), 'rate'}
  end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
end
if quota > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], math.ceil(to_midnight) + 3600)
end
return {1, '0', ''}
"""


@dataclass(frozen=True)
class Admission:
    """The limiter's verdict: admitted, or refused with a reason and how long to wait."""

    allowed: bool
    retry_after: float = 0.0
    reason: str = ""  # "rate_limited" or "quota_exceeded"


def _seconds_to_utc_midnight(now: float) -> tuple[date, float]:
    moment = datetime.fromtimestamp(now, UTC)
    midnight = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), UTC)
    return moment.date(), (midnight - moment).total_seconds()


class RateLimiter:
    """Admission control for one installation; ``clock`` returns unix seconds (tests control it)."""

    def __init__(self, redis_client: HotClient | None, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis_client
        self._script = HotScript(redis_client, _LUA) if redis_client is not None else None
        self.clock = clock

    def admit(self, tenant: Tenant) -> Admission:
        """Take one token and one unit of today's quota, or say why not."""
        if tenant.rate_per_second <= 0 and tenant.daily_quota <= 0:
            return Admission(True)
        now = self.clock()
        today, to_midnight = _seconds_to_utc_midnight(now)
        burst = max(1, tenant.burst)
        if self._script is None:
            return self._admit_db(tenant, now, today, to_midnight, burst)
        quota_key = _quota_key(tenant, today)
        for _ in range(3):  # the counter may expire between a rebuild and the next look
            allowed, wait, why = self._script(
                keys=[_bucket_key(tenant), quota_key],
                args=[tenant.rate_per_second, burst, repr(now), tenant.daily_quota, repr(to_midnight)],
            )
            if int(allowed) != 2:
                return _admission(int(allowed), float(wait), why.decode() if isinstance(why, bytes) else why)
            self._rebuild_quota_counter(tenant, today, to_midnight)
        raise redis.RedisError("the daily quota counter could not be rebuilt")

    def _rebuild_quota_counter(self, tenant: Tenant, today: date, to_midnight: float) -> int:
        """Set a missing daily counter from the database; NX keeps a concurrent rebuild's value."""
        assert self._redis is not None
        used = _decided_on(tenant, today)
        self._redis.set(_quota_key(tenant, today), used, nx=True, ex=math.ceil(to_midnight) + 3600)
        return used

    def used_today(self, tenant: Tenant) -> int:
        """Submissions admitted today (UTC) under the daily quota's counter."""
        today, to_midnight = _seconds_to_utc_midnight(self.clock())
        if self._redis is not None:
            raw = self._redis.get(_quota_key(tenant, today))
            if raw is None:
                return self._rebuild_quota_counter(tenant, today, to_midnight)
            return int(raw)
        bucket = RateBucket.objects.filter(tenant=tenant, day=today).first()
        return bucket.day_count if bucket else 0

    @transaction.atomic
    def _admit_db(self, tenant: Tenant, now: float, today: date, to_midnight: float, burst: int) -> Admission:
        bucket, _ = RateBucket.objects.select_for_update().get_or_create(
            tenant=tenant, defaults={"tokens": float(burst), "refilled_at": now, "day": today}
        )
        if bucket.day != today:
            bucket.day, bucket.day_count = today, 0
        if tenant.daily_quota > 0 and bucket.day_count >= tenant.daily_quota:
            bucket.save()
            return _admission(0, to_midnight, "quota")
        if tenant.rate_per_second > 0:
            elapsed = max(0.0, now - bucket.refilled_at)
            bucket.tokens = min(float(burst), bucket.tokens + elapsed * tenant.rate_per_second)
            bucket.refilled_at = now
            if bucket.tokens < 1:
                bucket.save()
                return _admission(0, (1 - bucket.tokens) / tenant.rate_per_second, "rate")
            bucket.tokens -= 1
        bucket.day_count += 1
        bucket.save()
        return Admission(True)


def _bucket_key(tenant: Tenant) -> str:
    return f"flk:rl:{{{tenant.slug}}}"


def _quota_key(tenant: Tenant, day: date) -> str:
    # The tenant's hash tag: the admission script touches this counter and the bucket together.
    return f"flk:quota:{{{tenant.slug}}}:{day.isoformat()}"


def _decided_on(tenant: Tenant, day: date) -> int:
    """How many of the tenant's PCS were decided on ``day`` (UTC): the durable count of its usage."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    return tenant.pcs_records.filter(decided_at__gte=start, decided_at__lt=start + timedelta(days=1)).count()


def _admission(allowed: int, wait: float, why: str) -> Admission:
    if allowed:
        return Admission(True)
    return Admission(False, wait, "quota_exceeded" if why == "quota" else "rate_limited")


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it is admitted."""
    return str(max(1, math.ceil(seconds)))


# One failure more: the counter of this window, and the seconds the window has left.
_FAILURE_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""
# The same round trip adds one to the day's durable count (KEYS[1], a hash of tenant header ->
# failures) that ``auth_failure_days_flush`` moves into ``AuthFailureDay``; past ARGV[2] distinct
# headers a day, failures go to one overflow field, so a flood of invented headers cannot grow the hash.
# Two scripts, sent in one pipeline: on a Redis Cluster the window's key (one per header and address,
# spread over the slots) and the day's hash (one key) live in different slots, which one script cannot
# touch; the two counts need not change atomically together.
_FAILURE_DAY_LUA = """
local field = ARGV[1]
if redis.call('HEXISTS', KEYS[1], field) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  field = ARGV[4]
end
redis.call('HINCRBY', KEYS[1], field, 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# Durable per-day counts of failed authentications (compliance reports read them).
_DAY_KEY_PREFIX = "flk:authfail:day:"
_DAY_MAX_HEADERS = 1_000  # distinct tenant headers counted per day; the rest share _OVERFLOW
_DAY_TTL_SECONDS = 8 * 86_400  # a week of missed flushes loses nothing
_OVERFLOW = "\x00other"
_LOCAL_FLUSH_SECONDS = 10.0  # without Redis: how often a process adds its counts to the database
# Read a day's hash and delete it in one step, so a failure counted meanwhile lands in a new hash.
_DRAIN_LUA = """
local counts = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return counts
"""


_SLUG = re.compile(r"[-a-zA-Z0-9_]+", re.ASCII)


def _day_field(tenant_header: str | None) -> str:
    # A slug is at most 64 characters; anything longer cannot name a tenant anyway.
    return (tenant_header or "")[:64]


class AuthFailureLimiter:
    """Fixed-window count of failed authentications per (tenant header, client address).

    It never touches a tenant's own limits. Without Redis it counts in this process's memory (the
    embedded default), bounded in size so a flood of distinct keys cannot grow it without end.
    """

    MAX_LOCAL_KEYS = 10_000

    def __init__(
        self,
        redis_client: HotClient | None,
        *,
        limit: int,
        window_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis_client
        self._script = HotScript(redis_client, _FAILURE_LUA) if redis_client is not None else None
        self._day_script = HotScript(redis_client, _FAILURE_DAY_LUA) if redis_client is not None else None
        self._wall_clock = time.time
        self._day_counts: dict[tuple[date, str], int] = {}  # without Redis: not yet in the database
        self._day_flushed_at = time.monotonic()
        self._limit = limit
        self._window = max(1, window_seconds)
        self._clock = clock
        self._local: dict[str, tuple[float, int]] = {}

    @staticmethod
    def _key(tenant_header: str | None, client_addr: str) -> str:
        # Hashed: the header is whatever the client sent, and must not shape our keys.
        raw = f"{tenant_header or ''}\0{client_addr}".encode("utf-8", "backslashreplace")
        return "flk:authfail:" + hashlib.sha256(raw).hexdigest()[:32]

    def record_failure(self, *, tenant_header: str | None, client_addr: str) -> float | None:
        """Count one failed authentication; the seconds to wait when over the limit, else None."""
        if self._limit <= 0:
            return None
        key = self._key(tenant_header, client_addr)
        day = datetime.fromtimestamp(self._wall_clock(), UTC).date()
        if self._redis is not None and self._script is not None and self._day_script is not None:
            replies = run_grouped(
                self._redis,
                [
                    self._script.op(keys=[key], args=[self._window]),
                    self._day_script.op(
                        keys=[f"{_DAY_KEY_PREFIX}{day.isoformat()}"],
                        args=[_day_field(tenant_header), _DAY_MAX_HEADERS, _DAY_TTL_SECONDS, _OVERFLOW],
                    ),
                ],
            )
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            count, ttl = replies[0]
            count, left = int(count), float(max(1, int(ttl)))
        else:
            self._count_day_locally(day, _day_field(tenant_header))
            now = self._clock()
            start, count = self._local.get(key, (now, 0))
            if now - start >= self._window:
                start, count = now, 0
            if len(self._local) >= self.MAX_LOCAL_KEYS:
                self._local.clear()
            count += 1
            self._local[key] = (start, count)
            left = self._window - (now - start)
        return left if count > self._limit else None

    def _count_day_locally(self, day: date, field: str) -> None:
        """The embedded default's durable count: kept in memory, added to the database every few seconds."""
        if len(self._day_counts) >= _DAY_MAX_HEADERS and (day, field) not in self._day_counts:
            field = _OVERFLOW
        self._day_counts[(day, field)] = self._day_counts.get((day, field), 0) + 1
        if time.monotonic() - self._day_flushed_at >= _LOCAL_FLUSH_SECONDS:
            counts, self._day_counts = self._day_counts, {}
            self._day_flushed_at = time.monotonic()
            auth_failure_days_add(counts)


def auth_failure_days_add(counts: dict[tuple[date, str], int]) -> int:
    """Add failure counts keyed by (day, tenant header) to ``AuthFailureDay``; return how many were kept.

    A header maps to the tenant of that slug (every header to the default tenant when multi-tenancy is
    off, where the header is ignored); failures naming no tenant have nobody to report to and are
    dropped here, after the limiter has done its work with them.
    """
    by_tenant: dict[tuple[int, date], int] = {}
    headers = {header for _, header in counts}
    if settings.MULTI_TENANT:
        # Only a header that could be a slug is looked up: the rest (the overflow field, a NUL byte that
        # PostgreSQL would refuse) names no tenant.
        slugs = {header for header in headers if _SLUG.fullmatch(header)}
        ids = dict(Tenant.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    else:
        default = Tenant.objects.filter(slug=settings.DEFAULT_TENANT_ID).values_list("pk", flat=True).first()
        ids = {header: default for header in headers} if default is not None else {}
    for (day, header), n in counts.items():
        if header in ids:
            by_tenant[(ids[header], day)] = by_tenant.get((ids[header], day), 0) + n
    with transaction.atomic():
        for (tenant_id, day), n in sorted(by_tenant.items()):
            row, _ = AuthFailureDay.objects.select_for_update().get_or_create(tenant_id=tenant_id, day=day)
            AuthFailureDay.objects.filter(pk=row.pk).update(count=F("count") + n)
    return sum(by_tenant.values())


def auth_failure_days_flush() -> int:
    """Move the per-day failure counts from Redis into ``AuthFailureDay``; safe to run any time.

    Each day's hash is read and deleted in one step; if the database write then fails, the counts are
    put back, so a flush loses nothing short of a crash between the two.
    """
    client = _redis_client()
    if client is None:
        return 0
    drain = HotScript(client, _DRAIN_LUA)
    kept = 0
    for key in sorted(client.scan_iter(match=f"{_DAY_KEY_PREFIX}*", count=100)):
        try:
            day = date.fromisoformat(key.decode()[len(_DAY_KEY_PREFIX) :])
        except ValueError:
            continue  # not a key this module wrote
        raw = drain(keys=[key])
        fields = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw]
        counts = {(day, fields[i]): int(fields[i + 1]) for i in range(0, len(fields), 2)}
        if not counts:
            continue
        try:
            kept += auth_failure_days_add(counts)
        except Exception:
            pipe = client.pipeline()
            for (_, header), n in counts.items():
                pipe.hincrby(key, header, n)
            pipe.expire(key, _DAY_TTL_SECONDS)
            pipe.execute()
            raise
    return kept


def _redis_client() -> HotClient | None:
    """The hot store's client (one node or the cluster), None without Redis."""
    return hot_store_client()


_limiter: RateLimiter | None = None
_failure_limiter: AuthFailureLimiter | None = None


def get_rate_limiter() -> RateLimiter:
    """The process's limiter: Redis when configured, else the database."""
    global _limiter
    if _limiter is None:
        _limiter = RateLimiter(_redis_client())
    return _limiter


def get_auth_failure_limiter() -> AuthFailureLimiter:
    """The process's limiter of failed authentications: Redis when configured, else memory."""
    global _failure_limiter
    if _failure_limiter is None:
        _failure_limiter = AuthFailureLimiter(
            _redis_client(),
            limit=settings.AUTH_FAILURE_LIMIT,
            window_seconds=settings.AUTH_FAILURE_WINDOW_SECONDS,
        )
    return _failure_limiter


def reset_rate_limiter() -> None:
    """Forget the built limiters (tests)."""
    global _limiter, _failure_limiter
    _limiter = None
    _failure_limiter = None


register("tenants.rate_limiters", reset_rate_limiter)
