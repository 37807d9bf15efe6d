"""Tenants from the seed's ``TENANTS`` variable: created or brought up to date at start.

``TENANTS="acme:hmac:SECRET,globex:ed25519:PUBLIC_KEY_B64"`` names each tenant, its signing algorithm and
its key (an HMAC secret, or an Ed25519 public key in base64). ``manage.py flk_init`` (which ``make run``
runs at every start) applies it through ``apps.tenants.services``, so every change is audited with the
actor ``TENANTS`` like any other tenant change. Applying the same value again changes nothing and
writes no audit entry; a new key for a listed tenant is a rotation (the old key keeps verifying for
``KEY_ROTATION_OVERLAP_HOURS``). Tenants missing from the list are left as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.tenants.crypto import decrypt_secret
from apps.tenants.models import SigningKey, Tenant
from apps.tenants.services import TenantError, key_rotate, tenant_create, tenant_update

ACTOR = "TENANTS"
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")


@dataclass(frozen=True)
class TenantSpec:
    """One entry of ``TENANTS``."""

    slug: str
    alg: str
    key: str


def tenants_parse(text: str) -> list[TenantSpec]:
    """The entries of a ``TENANTS`` value (``slug:alg:key`` separated by commas); errors say which."""
    specs: list[TenantSpec] = []
    for number, item in enumerate((i.strip() for i in text.split(",")), 1):
        if not item:
            continue
        parts = item.split(":", 2)
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise TenantError(f"TENANTS entry {number} is not slug:alg:key")
        slug, alg, key = (p.strip() for p in parts)
        if not _SLUG.fullmatch(slug):
            raise TenantError(f"TENANTS entry {number}: {slug!r} is not a slug (letters, digits, - and _)")
        if alg not in (Tenant.ALG_HMAC, Tenant.ALG_ED25519):
            raise TenantError(f"TENANTS entry {number} ({slug}): the algorithm is hmac or ed25519, not {alg}")
        if any(s.slug == slug for s in specs):
            raise TenantError(f"TENANTS names {slug} twice")
        specs.append(TenantSpec(slug, alg, key))
    return specs


def _current_key_matches(tenant: Tenant, spec: TenantSpec) -> bool:
    """Whether the tenant's newest open-ended key valid now is the configured one."""
    now = timezone.now()
    for row in SigningKey.objects.filter(tenant=tenant, alg=spec.alg, not_before__lte=now, not_after=None):
        material = decrypt_secret(row.secret_encrypted).decode() if spec.alg == Tenant.ALG_HMAC else None
        if (material if material is not None else row.public_key_b64) == spec.key:
            return True
    return False


@transaction.atomic
def tenants_apply(specs: list[TenantSpec]) -> list[str]:
    """Create or update each tenant of ``specs``; return one line per change (none: all up to date)."""
    done: list[str] = []
    for spec in specs:
        tenant = Tenant.objects.select_for_update().filter(slug=spec.slug).first()
        material = {"secret": spec.key} if spec.alg == Tenant.ALG_HMAC else {"public_key_b64": spec.key}
        if tenant is None:
            tenant, _ = tenant_create(
                slug=spec.slug,
                name=spec.slug,
                actor=ACTOR,
                sign_alg=spec.alg,
                rate_per_second=settings.RATE_LIMIT_RATE,
                burst=settings.RATE_LIMIT_BURST,
                **material,
            )
            pii_mode_apply(tenant, actor=ACTOR)
            done.append(f"tenant {spec.slug}: created ({spec.alg})")
            continue
        changes: dict[str, object] = {}
        if not tenant.active:
            changes["active"] = True
        if tenant.sign_alg != spec.alg:
            changes["sign_alg"] = spec.alg
        if changes:
            tenant_update(tenant=tenant, changes=changes, actor=ACTOR)
            done.append(f"tenant {spec.slug}: {', '.join(f'{k}={v}' for k, v in changes.items())}")
        if not _current_key_matches(tenant, spec):
            new = key_rotate(tenant=tenant, actor=ACTOR, **material)
            done.append(f"tenant {spec.slug}: key rotated to {new.key.key_id} (the old one keeps verifying)")
    return done


def pii_mode_apply(tenant: Tenant, *, actor: str) -> bool:
    """Give a tenant just created the configured PII mode (``TENANT_PII_MODE``); True if it changed."""
    mode = settings.TENANT_PII_MODE
    if not mode or tenant.pii_mode == mode:
        return False
    if mode not in dict(Tenant.PII_CHOICES):
        raise TenantError(f"TENANT_PII_MODE (or PII_SCAN_MODE) is detect, block or redact, not {mode!r}")
    tenant_update(tenant=tenant, changes={"pii_mode": mode}, actor=actor)
    return True
