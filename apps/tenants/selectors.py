"""Tenant reads used on the ingest path."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from apps.tenants.crypto import decrypt_secret
from apps.tenants.models import SigningKey, Tenant
from apps.tenants.ratelimit import get_rate_limiter
from flk_project.caches import register

T = TypeVar("T")


@dataclass(frozen=True)
class VerificationKey:
    """Key material that checks a tenant's signatures: an HMAC secret or a raw Ed25519 public key."""

    alg: str
    key: bytes
    key_id: str | None


class TtlCache:
    """A per-process map whose entries are trusted for TENANT_CACHE_SECONDS.

    Every request resolves its tenant and keys, so caching them saves queries on the hot path; a change
    (deactivation, rotation) reaches the other processes within that time.
    """

    MAX_ENTRIES = 10_000  # unknown tenant slugs must not grow it without bound

    def __init__(self) -> None:
        self._entries: dict[object, tuple[float, object]] = {}

    def get(self, key: object, load: Callable[[], T]) -> T:
        """The cached value of ``key``, or ``load()``'s, which is then cached."""
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < settings.TENANT_CACHE_SECONDS:
            return cached[1]  # type: ignore[return-value]
        value = load()
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()


_tenant_cache = TtlCache()  # slug -> active tenant or None
_key_cache = TtlCache()  # tenant pk -> [(key, not_before, not_after)]
policy_cache = TtlCache()  # tenant pk -> the tenant's PolicySelection (apps.policy.selection)


def tenant_resolve(*, tenant_header: str | None) -> Tenant | None:
    """The tenant a request speaks for, or None when it names no known active tenant.

    With multi-tenancy off every request belongs to the default tenant and ``X-Tenant-Id`` is ignored,
    as the original FLK clients expect: they send it whatever the mode.
    """
    if not settings.MULTI_TENANT:
        slug = settings.DEFAULT_TENANT_ID
    else:
        if not tenant_header:
            return None
        slug = tenant_header
    return _tenant_cache.get(slug, lambda: Tenant.objects.filter(slug=slug, active=True).first())


def _default_key() -> VerificationKey:
    key_id = settings.PCS_KEY_ID or None
    if settings.PCS_SIGN_ALG == "ed25519":
        if not settings.PCS_ED25519_PUB_B64:
            raise ImproperlyConfigured("PCS_SIGN_ALG=ed25519 needs PCS_ED25519_PUB_B64")
        return VerificationKey("ed25519", base64.b64decode(settings.PCS_ED25519_PUB_B64), key_id)
    if settings.PCS_HMAC_KEY:
        return VerificationKey("hmac", settings.PCS_HMAC_KEY.encode(), key_id)
    if settings.PCS_HMAC_KEY_FILE.exists():
        return VerificationKey("hmac", settings.PCS_HMAC_KEY_FILE.read_bytes().strip(), key_id)
    raise ImproperlyConfigured(
        "no signing key: set PCS_HMAC_KEY, or run `manage.py flk_init` to create "
        f"{settings.PCS_HMAC_KEY_FILE}"
    )


_env_key: VerificationKey | None = None


def _load_stored_keys(tenant: Tenant) -> list[tuple[VerificationKey, datetime, datetime | None]]:
    keys = []
    for row in SigningKey.objects.filter(tenant=tenant):
        material = (
            decrypt_secret(row.secret_encrypted)
            if row.alg == Tenant.ALG_HMAC
            else base64.b64decode(row.public_key_b64)
        )
        keys.append((VerificationKey(row.alg, material, row.key_id), row.not_before, row.not_after))
    return keys


def verification_keys_for(*, tenant: Tenant, key_id: str | None, at: datetime) -> list[VerificationKey]:
    """The keys that may verify ``tenant``'s PCS signed at ``at`` under ``key_id`` (any key if None).

    A stored key verifies inside [not_before, not_after); during a rotation's overlap two do. The
    default tenant of a single-tenant installation also has the key from the environment.
    """
    stored = _key_cache.get(tenant.pk, lambda: _load_stored_keys(tenant))
    keys = [key for key, start, end in stored if start <= at and (end is None or at < end)]
    if not settings.MULTI_TENANT and tenant.slug == settings.DEFAULT_TENANT_ID:
        global _env_key
        if _env_key is None and (
            settings.PCS_HMAC_KEY or settings.PCS_ED25519_PUB_B64 or settings.PCS_HMAC_KEY_FILE.exists()
        ):
            _env_key = _default_key()
        if _env_key is not None:
            keys.append(_env_key)
        if settings.PCS_SIGN_ALG == "hmac":
            # Secrets still verifying during a rotation (PCS_HMAC_KEY_PREVIOUS; the seed's PCS_HMAC_KEYS).
            keys += [VerificationKey("hmac", k.encode(), None) for k in settings.PCS_HMAC_KEY_PREVIOUS]
    if key_id is not None:
        keys = [k for k in keys if k.key_id in (key_id, None)]
    return keys


def reset_key_cache() -> None:
    """Forget cached keys and tenants (tests, key and tenant changes in this process)."""
    global _env_key
    _env_key = None
    _key_cache.clear()
    _tenant_cache.clear()
    policy_cache.clear()


register("tenants.key_and_tenant_caches", reset_key_cache)


def tenant_usage(*, tenant: Tenant) -> dict[str, object]:
    """Today's (UTC) admitted submissions against the quota, and the token bucket settings."""
    quota = tenant.daily_quota
    if quota:
        used = get_rate_limiter().used_today(tenant)
    else:  # no quota counter runs: count today's decisions instead
        midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        used = tenant.pcs_records.filter(decided_at__gte=midnight).count()
    return {
        "tenant": tenant.slug,
        "day": timezone.now().date().isoformat(),
        "used_today": used,
        "daily_quota": quota or None,
        "remaining_today": max(0, quota - used) if quota else None,
        "rate_per_second": tenant.rate_per_second or None,
        "burst": tenant.burst or None,
    }
