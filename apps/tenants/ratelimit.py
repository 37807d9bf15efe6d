"""Per-tenant token bucket and daily quota (UTC day).

Redis runs both checks in one Lua script, so concurrent web processes never over-admit; without
Redis the same arithmetic runs under a row lock in the database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction

from apps.tenants.models import RateBucket, Tenant

_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local to_midnight = tonumber(ARGV[5])
if quota > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= quota then return {0, tostring(to_midnight), 'quota'} end
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

    def __init__(self, redis_client: redis.Redis | None, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis_client
        self._script = redis_client.register_script(_LUA) if redis_client is not None else None
        self.clock = clock

    def admit(self, tenant: Tenant) -> Admission:
        """Take one token and one unit of today's quota, or say why not."""
        if tenant.rate_per_second <= 0 and tenant.daily_quota <= 0:
            return Admission(True)
        now = self.clock()
        today, to_midnight = _seconds_to_utc_midnight(now)
        burst = max(1, tenant.burst)
        if self._script is not None:
            allowed, wait, why = self._script(
                keys=[f"flk:rl:{tenant.slug}", f"flk:quota:{tenant.slug}:{today.isoformat()}"],
                args=[tenant.rate_per_second, burst, repr(now), tenant.daily_quota, repr(to_midnight)],
            )
            return _admission(int(allowed), float(wait), why.decode() if isinstance(why, bytes) else why)
        return self._admit_db(tenant, now, today, to_midnight, burst)

    def used_today(self, tenant: Tenant) -> int:
        """Submissions admitted today (UTC) under the daily quota's counter."""
        today, _ = _seconds_to_utc_midnight(self.clock())
        if self._redis is not None:
            raw = self._redis.get(f"flk:quota:{tenant.slug}:{today.isoformat()}")
            return int(raw or 0)
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


def _admission(allowed: int, wait: float, why: str) -> Admission:
    if allowed:
        return Admission(True)
    return Admission(False, wait, "quota_exceeded" if why == "quota" else "rate_limited")


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it is admitted."""
    return str(max(1, math.ceil(seconds)))


_limiter: RateLimiter | None = None


def get_rate_limiter() -> RateLimiter:
    """The process's limiter: Redis when configured, else the database."""
    global _limiter
    if _limiter is None:
        client = (
            redis.Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=settings.STORE_TIMEOUT_SECONDS,
                socket_connect_timeout=settings.STORE_TIMEOUT_SECONDS,
            )
            if settings.REDIS_URL
            else None
        )
        _limiter = RateLimiter(client)
    return _limiter


def reset_rate_limiter() -> None:
    """Forget the built limiter (tests)."""
    global _limiter
    _limiter = None
