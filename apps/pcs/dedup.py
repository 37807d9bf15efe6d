"""First-write-wins dedup stores (DESIGN §3 step 6, §4).

A submission first *claims* (tenant, pcs_id). The claimer decides and then *completes* the claim with
the stored outcome; everyone else sees either the claim still pending (409) or the outcome (replay, or
422 when the signed payload or the decision inputs differ). A claim carries its owner (host, pid and
the process's start time), so a claim left by a process that died on this host is taken over at once;
any other abandoned claim expires after ``DEDUP_CLAIM_TIMEOUT_SECONDS``, so nothing stays stuck.

``redis`` (SET NX with TTL) is the production hot store, ``database`` uses a unique constraint and
works on SQLite, ``memory`` exists for tests. The Redis store runs on one node (``REDIS_URL``) or on a
Redis Cluster (``DEDUP_SHARDS``); its client comes from ``flk_project.redis_clients``. A PCS's keys
share the hash tag ``{<tenant>:<pcs_id>}``, so a tenant's PCS spread over every slot.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

import redis
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from redis.cluster import RedisCluster

from apps.pcs.errors import encode_body
from apps.pcs.models import DedupEntry
from apps.pcs.owner import owner_is_dead, process_owner
from flk_project.caches import register
from flk_project.redis_clients import (
    ClusterHealth,
    HotClient,
    HotOp,
    HotScript,
    HotStoreUnavailable,
    cluster_health,
    hot_store_client,
    run_grouped,
)

ClaimState = Literal["claimed", "pending", "decided"]


class DedupUnavailable(Exception):
    """The dedup store cannot be reached; the caller must fail closed."""


@dataclass(frozen=True)
class StoredOutcome:
    """A decision as dedup keeps it: the signed payload's digest, the status, the body, and the
    digest of the decision inputs ("" for decisions stored before it was kept)."""

    digest: str
    status: int
    body: dict[str, Any]
    inputs_digest: str = ""


@dataclass(frozen=True)
class Claim:
    """The answer to a claim attempt."""

    state: ClaimState
    tenant_id: int
    pcs_id: str
    token: str = ""
    digest: str = ""
    outcome: StoredOutcome | None = None


class DedupStore(Protocol):
    """What the ingest pipeline needs from a dedup store."""

    # True when ``complete`` may run inside the decision's database transaction.
    transactional: bool

    def claim(self, *, tenant_id: int, pcs_id: str, digest: str) -> Claim: ...

    def complete(self, claim: Claim, outcome: StoredOutcome) -> None: ...

    def complete_many(self, completed: Sequence[tuple[Claim, StoredOutcome]]) -> None: ...

    def release(self, claim: Claim) -> None: ...

    def ping(self) -> None: ...


_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Replace a dead owner's pending entry with ours, unless it changed since we read it.
_TAKEOVER_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RedisDedupStore:
    """SET NX with a short TTL while pending, then the outcome with the retention TTL."""

    transactional = False

    def __init__(self, url: str, *, ttl_seconds: int, claim_timeout: float, timeout: float) -> None:
        # ``url`` and ``timeout`` name the single node the store used to build here; the client of the
        # configured hot store (one node, or the cluster of DEDUP_SHARDS) comes from redis_clients.
        try:
            client = hot_store_client(health_check_interval=30)
        except HotStoreUnavailable as exc:
            raise DedupUnavailable(str(exc)) from exc
        assert client is not None, "the Redis dedup store needs REDIS_URL or DEDUP_SHARDS"
        self._redis: HotClient = client
        self._release = HotScript(client, _RELEASE_LUA)
        self._takeover = HotScript(client, _TAKEOVER_LUA)
        self._ttl = ttl_seconds
        self._claim_ms = max(1, int(claim_timeout * 1000))

    @staticmethod
    def _key(tenant_id: int, pcs_id: str) -> str:
        # The hash tag is the whole (tenant, pcs_id): every key of one PCS lands in one slot (a script
        # may touch them together), and one tenant's PCS spread over all slots, so no master is hot.
        return f"flk:dedup:{{{tenant_id}:{pcs_id}}}"

    @staticmethod
    def _pending_value(token: str, digest: str) -> str:
        return json.dumps({"s": "p", "t": token, "d": digest, "o": process_owner()}, separators=(",", ":"))

    def claim(self, *, tenant_id: int, pcs_id: str, digest: str) -> Claim:
        key = self._key(tenant_id, pcs_id)
        token = secrets.token_hex(16)
        try:
            for _ in range(3):  # the entry can expire between SET NX and GET; look again
                if self._redis.set(key, self._pending_value(token, digest), nx=True, px=self._claim_ms):
                    return Claim("claimed", tenant_id, pcs_id, token, digest)
                raw = self._redis.get(key)
                if raw is None:
                    continue
                entry = json.loads(raw)
                if entry["s"] == "p":
                    if owner_is_dead(entry.get("o", "")) and self._takeover(
                        keys=[key], args=[raw, self._pending_value(token, digest), self._claim_ms]
                    ):
                        return Claim("claimed", tenant_id, pcs_id, token, digest)
                    return Claim("pending", tenant_id, pcs_id)
                outcome = StoredOutcome(entry["d"], entry["c"], entry["b"], entry.get("i", ""))
                return Claim("decided", tenant_id, pcs_id, outcome=outcome)
        except redis.RedisError as exc:
            raise DedupUnavailable(str(exc)) from exc
        raise DedupUnavailable("dedup entry kept changing while it was read")

    @staticmethod
    def _outcome_value(outcome: StoredOutcome) -> str:
        value = {
            "s": "d",
            "d": outcome.digest,
            "i": outcome.inputs_digest,
            "c": outcome.status,
            "b": outcome.body,
        }
        return encode_body(value)

    def complete(self, claim: Claim, outcome: StoredOutcome) -> None:
        self.complete_many([(claim, outcome)])

    def complete_many(self, completed: Sequence[tuple[Claim, StoredOutcome]]) -> None:
        """``complete`` for a committed group, in one round trip (one per master on a cluster).

        Every claim whose master answers is completed, even when another master does not; then the
        first failure is raised.
        """
        ops = [
            self._set_op(self._key(claim.tenant_id, claim.pcs_id), self._outcome_value(outcome))
            for claim, outcome in completed
        ]
        failures = [reply for reply in run_grouped(self._redis, ops) if isinstance(reply, Exception)]
        if failures:
            raise DedupUnavailable(str(failures[0])) from failures[0]

    def _set_op(self, key: str, value: str) -> HotOp:
        return HotOp(
            key=key,
            queue=lambda pipe: pipe.set(key, value, ex=self._ttl),
            alone=lambda: self._redis.set(key, value, ex=self._ttl),
        )

    def release(self, claim: Claim) -> None:
        key = self._key(claim.tenant_id, claim.pcs_id)
        try:
            self._release(keys=[key], args=[self._pending_value(claim.token, claim.digest)])
        except redis.RedisError as exc:
            raise DedupUnavailable(str(exc)) from exc

    def ping(self) -> None:
        """Raise ``DedupUnavailable`` unless the store serves something: on a cluster, at least one slot."""
        health = self.cluster_health()
        if health is not None:
            if health.state == "unavailable":
                raise DedupUnavailable(health.detail or "no master of the cluster answers")
            return
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise DedupUnavailable(str(exc)) from exc

    def cluster_health(self) -> ClusterHealth | None:
        """The cluster's state as this store sees it, or None on a single node."""
        if isinstance(self._redis, RedisCluster):
            return cluster_health(self._redis)
        return None


class DatabaseDedupStore:
    """A row per (tenant, pcs_id) guarded by a unique constraint; completed in the decision's transaction."""

    transactional = True

    def __init__(self, *, claim_timeout: float) -> None:
        self._claim_timeout = timedelta(seconds=claim_timeout)

    def claim(self, *, tenant_id: int, pcs_id: str, digest: str) -> Claim:
        token = secrets.token_hex(16)
        now = timezone.now()
        try:
            try:
                with transaction.atomic():
                    DedupEntry.objects.create(
                        tenant_id=tenant_id,
                        pcs_id=pcs_id,
                        payload_digest=digest,
                        state=DedupEntry.STATE_PENDING,
                        claim_token=token,
                        claim_owner=process_owner(),
                        claimed_at=now,
                    )
                return Claim("claimed", tenant_id, pcs_id, token)
            except IntegrityError:
                pass
            entry = DedupEntry.objects.get(tenant_id=tenant_id, pcs_id=pcs_id)
            if entry.state == DedupEntry.STATE_DECIDED:
                outcome = StoredOutcome(
                    entry.payload_digest, entry.status_code, json.loads(entry.response), entry.inputs_digest
                )
                return Claim("decided", tenant_id, pcs_id, outcome=outcome)
            if entry.claimed_at < now - self._claim_timeout or owner_is_dead(entry.claim_owner):
                # The claimer died: take the claim over, unless someone else just did.
                taken = DedupEntry.objects.filter(
                    pk=entry.pk, state=DedupEntry.STATE_PENDING, claim_token=entry.claim_token
                ).update(
                    claim_token=token, claim_owner=process_owner(), claimed_at=now, payload_digest=digest
                )
                if taken:
                    return Claim("claimed", tenant_id, pcs_id, token)
            return Claim("pending", tenant_id, pcs_id)
        except DedupEntry.DoesNotExist as exc:
            raise DedupUnavailable("dedup entry vanished while it was read") from exc
        except DatabaseError as exc:
            raise DedupUnavailable(str(exc)) from exc

    def complete(self, claim: Claim, outcome: StoredOutcome) -> None:
        DedupEntry.objects.filter(
            tenant_id=claim.tenant_id, pcs_id=claim.pcs_id, claim_token=claim.token
        ).update(
            state=DedupEntry.STATE_DECIDED,
            payload_digest=outcome.digest,
            inputs_digest=outcome.inputs_digest,
            status_code=outcome.status,
            response=encode_body(outcome.body),
        )

    def complete_many(self, completed: Sequence[tuple[Claim, StoredOutcome]]) -> None:
        for claim, outcome in completed:
            self.complete(claim, outcome)

    def release(self, claim: Claim) -> None:
        try:
            DedupEntry.objects.filter(
                tenant_id=claim.tenant_id,
                pcs_id=claim.pcs_id,
                claim_token=claim.token,
                state=DedupEntry.STATE_PENDING,
            ).delete()
        except DatabaseError as exc:
            raise DedupUnavailable(str(exc)) from exc

    def ping(self) -> None:
        try:
            DedupEntry.objects.exists()
        except DatabaseError as exc:
            raise DedupUnavailable(str(exc)) from exc


class MemoryDedupStore:
    """Process-local store for unit tests; it forgets everything on restart."""

    transactional = False

    def __init__(self, *, claim_timeout: float) -> None:
        self._entries: dict[tuple[int, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._claim_timeout = claim_timeout

    def claim(self, *, tenant_id: int, pcs_id: str, digest: str) -> Claim:
        key = (tenant_id, pcs_id)
        with self._lock:
            entry = self._entries.get(key)
            now = time.monotonic()
            if entry is None or (entry["s"] == "p" and now - entry["at"] > self._claim_timeout):
                token = secrets.token_hex(16)
                self._entries[key] = {"s": "p", "t": token, "at": now}
                return Claim("claimed", tenant_id, pcs_id, token)
            if entry["s"] == "p":
                return Claim("pending", tenant_id, pcs_id)
            return Claim("decided", tenant_id, pcs_id, outcome=entry["o"])

    def complete(self, claim: Claim, outcome: StoredOutcome) -> None:
        with self._lock:
            self._entries[(claim.tenant_id, claim.pcs_id)] = {"s": "d", "o": outcome}

    def complete_many(self, completed: Sequence[tuple[Claim, StoredOutcome]]) -> None:
        for claim, outcome in completed:
            self.complete(claim, outcome)

    def release(self, claim: Claim) -> None:
        with self._lock:
            entry = self._entries.get((claim.tenant_id, claim.pcs_id))
            if entry is not None and entry.get("t") == claim.token:
                del self._entries[(claim.tenant_id, claim.pcs_id)]

    def ping(self) -> None:
        return None


_store: DedupStore | None = None


def get_dedup_store() -> DedupStore:
    """The configured store, built once per process."""
    global _store
    if _store is None:
        if settings.DEDUP_BACKEND == "redis":
            _store = RedisDedupStore(
                settings.REDIS_URL,
                ttl_seconds=settings.TIER_HOT_TTL,
                claim_timeout=settings.DEDUP_CLAIM_TIMEOUT_SECONDS,
                timeout=settings.STORE_TIMEOUT_SECONDS,
            )
        elif settings.DEDUP_BACKEND == "database":
            _store = DatabaseDedupStore(claim_timeout=settings.DEDUP_CLAIM_TIMEOUT_SECONDS)
        else:
            _store = MemoryDedupStore(claim_timeout=settings.DEDUP_CLAIM_TIMEOUT_SECONDS)
    return _store


def reset_dedup_store() -> None:
    """Forget the built store so the next call reads the settings again (tests)."""
    global _store
    _store = None


register("pcs.dedup_store", reset_dedup_store)
