"""Tenant reads used on the ingest path."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.tenants.models import Tenant


@dataclass(frozen=True)
class VerificationKey:
    """Key material that checks a tenant's signatures: an HMAC secret or a raw Ed25519 public key."""

    alg: str
    key: bytes
    key_id: str | None


# slug -> (monotonic time of lookup, tenant or None). Every request resolves its tenant, so a short-lived
# per-process cache saves a query per request; a deactivation takes effect within TENANT_CACHE_SECONDS.
_tenant_cache: dict[str, tuple[float, Tenant | None]] = {}


def tenant_resolve(*, tenant_header: str | None) -> Tenant | None:
    """The tenant a request speaks for, or None when it names no known active tenant.

    With multi-tenancy off every request belongs to the default tenant; a header that names any other
    tenant is refused rather than silently re-routed.
    """
    if not settings.MULTI_TENANT:
        slug = settings.DEFAULT_TENANT_ID
        if tenant_header and tenant_header != slug:
            return None
    else:
        if not tenant_header:
            return None
        slug = tenant_header
    now = time.monotonic()
    cached = _tenant_cache.get(slug)
    if cached is not None and now - cached[0] < settings.TENANT_CACHE_SECONDS:
        return cached[1]
    tenant = Tenant.objects.filter(slug=slug, active=True).first()
    if len(_tenant_cache) > 10_000:  # unknown slugs must not grow it without bound
        _tenant_cache.clear()
    _tenant_cache[slug] = (now, tenant)
    return tenant


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


_cached_key: VerificationKey | None = None


def verification_key_for(*, tenant: Tenant, key_id: str | None) -> VerificationKey | None:
    """The key that verifies ``tenant``'s PCS signed under ``key_id``; None if no such key.

    Single-tenant installations have one key from the environment; a PCS that names a different
    ``key_id`` than the configured one gets no key.
    """
    global _cached_key
    if _cached_key is None:
        _cached_key = _default_key()
    if key_id is not None and _cached_key.key_id is not None and key_id != _cached_key.key_id:
        return None
    return _cached_key


def reset_key_cache() -> None:
    """Forget the cached key and tenants (tests, key and tenant changes)."""
    global _cached_key
    _cached_key = None
    _tenant_cache.clear()
