"""Tenant writes: tenants, signing keys, API tokens and limits. Every change is audited with its actor."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_append
from apps.tenants.crypto import encrypt_secret, reencrypt_secret
from apps.tenants.models import ApiToken, SigningKey, Tenant
from apps.tenants.selectors import reset_key_cache

TOKEN_PREFIX = "flk_"


class TenantError(ValueError):
    """A tenant operation that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class NewKey:
    """A key just created. ``secret`` (HMAC) exists only here: it is never shown again."""

    key: SigningKey
    secret: str | None


def _audit(
    tenant: Tenant, kind: str, actor: str, detail: str, details: dict[str, object] | None = None
) -> None:
    audit_append(tenant_id=tenant.pk, kind=kind, actor=actor, reason=detail[:200], details=details)


@transaction.atomic
def tenant_ensure_default() -> Tenant:
    """Create or refresh the default tenant from the single-tenant settings."""
    tenant, created = Tenant.objects.update_or_create(
        slug=settings.DEFAULT_TENANT_ID,
        defaults={
            "name": "Default tenant",
            "active": True,
            "sign_alg": settings.PCS_SIGN_ALG,
            "rate_per_second": settings.RATE_LIMIT_RATE,
            "burst": settings.RATE_LIMIT_BURST,
            "daily_quota": settings.DAILY_QUOTA,
        },
    )
    if created:
        _audit(tenant, "tenant_created", "system", "default tenant from settings")
    return tenant


def _validate_public_key(public_key_b64: str | None) -> str:
    try:
        raw = base64.b64decode((public_key_b64 or "").encode(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TenantError("the Ed25519 public key must be standard base64") from exc
    if len(raw) != 32:
        raise TenantError("an Ed25519 public key is 32 bytes (44 base64 characters)")
    return public_key_b64 or ""


def _new_key(
    tenant: Tenant,
    *,
    actor: str,
    public_key_b64: str | None,
    not_before=None,  # noqa: ANN001
    secret: str | None = None,
) -> NewKey:
    key_id = f"{tenant.slug}-{timezone.now():%Y%m%d}-{secrets.token_hex(3)}"
    if tenant.sign_alg == Tenant.ALG_HMAC:
        secret = secret or secrets.token_urlsafe(32)
        key = SigningKey.objects.create(
            tenant=tenant,
            key_id=key_id,
            alg=Tenant.ALG_HMAC,
            secret_encrypted=encrypt_secret(secret.encode()),
            not_before=not_before or timezone.now(),
            created_by=actor,
        )
        return NewKey(key, secret)
    key = SigningKey.objects.create(
        tenant=tenant,
        key_id=key_id,
        alg=Tenant.ALG_ED25519,
        public_key_b64=_validate_public_key(public_key_b64),
        not_before=not_before or timezone.now(),
        created_by=actor,
    )
    return NewKey(key, None)


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str,
    actor: str,
    sign_alg: str = Tenant.ALG_HMAC,
    public_key_b64: str | None = None,
    daily_quota: int = 0,
    rate_per_second: float = 0.0,
    burst: int = 0,
    secret: str | None = None,
) -> tuple[Tenant, NewKey]:
    """Create a tenant with its first signing key (an HMAC secret is generated, unless given, and
    returned once)."""
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantError(f"tenant {slug!r} exists")
    tenant = Tenant.objects.create(
        slug=slug,
        name=name,
        sign_alg=sign_alg,
        daily_quota=daily_quota,
        rate_per_second=rate_per_second,
        burst=burst,
    )
    _audit(
        tenant, "tenant_created", actor, f"alg={sign_alg} quota={daily_quota} rate={rate_per_second}/{burst}"
    )
    new = _new_key(tenant, actor=actor, public_key_b64=public_key_b64, secret=secret)
    _audit(tenant, "key_created", actor, f"key_id={new.key.key_id}")
    return tenant, new


VRF_CHANGED = "vrf_changed"


_VRF_DETAIL = re.compile(r"required=(True|False) key=([0-9a-f]{64}|-)")


def vrf_audit_detail(*, required: bool, public_key_hex: str) -> str:
    """The reason of a ``vrf_changed`` entry: the full public key, so the audit log is the key history."""
    return f"required={required} key={public_key_hex or '-'}"


def vrf_audit_parse(reason: str) -> tuple[bool, str] | None:
    """(required, public key hex or "") from a ``vrf_audit_detail`` reason; None for another form.

    Only for ``vrf_changed`` entries written before entries had details: newer ones carry the setting
    as structured facts.
    """
    match = _VRF_DETAIL.fullmatch(reason)
    if match is None:
        return None
    return match.group(1) == "True", "" if match.group(2) == "-" else match.group(2)


def _clean(tenant: Tenant) -> None:
    try:
        tenant.full_clean()
    except ValidationError as exc:
        raise TenantError("; ".join(m for ms in exc.message_dict.values() for m in ms)) from exc


# Fields an operator edits on a tenant; the key, limits and activation have services of their own.
EDITABLE_FIELDS = ("name", "active", "sign_alg", "vrf_required", "vrf_public_key", "pii_mode")
LIMIT_FIELDS = ("daily_quota", "rate_per_second", "burst")


@transaction.atomic
def tenant_update(*, tenant: Tenant, changes: dict[str, object], actor: str) -> Tenant:
    """Apply edits to a tenant's settings, validated, each kind of change audited with its actor."""
    unknown = set(changes) - set(EDITABLE_FIELDS) - set(LIMIT_FIELDS)
    if unknown:
        raise TenantError(f"not editable here: {', '.join(sorted(unknown))}")
    limits = {name: changes[name] for name in LIMIT_FIELDS if name in changes}
    changes = {name: value for name, value in changes.items() if name not in LIMIT_FIELDS}
    if limits:
        tenant_set_limits(tenant=tenant, actor=actor, **limits)  # type: ignore[arg-type]
    if "vrf_public_key" in changes:
        changes["vrf_public_key"] = str(changes["vrf_public_key"]).lower()
    if not changes:
        return tenant
    for name, value in changes.items():
        setattr(tenant, name, value)
    _clean(tenant)
    tenant.save(update_fields=list(changes))
    if {"vrf_required", "vrf_public_key"} & set(changes):
        detail = vrf_audit_detail(required=tenant.vrf_required, public_key_hex=tenant.vrf_public_key)
        # The setting the audit reads back is in details; the reason is for people.
        facts = {"vrf_required": tenant.vrf_required, "vrf_public_key": tenant.vrf_public_key}
        _audit(tenant, VRF_CHANGED, actor, detail, facts)
    settings_changed = [n for n in changes if n not in ("vrf_required", "vrf_public_key")]
    if settings_changed:
        detail = " ".join(f"{n}={getattr(tenant, n)}" for n in settings_changed)
        _audit(tenant, "tenant_changed", actor, detail)
    transaction.on_commit(reset_key_cache)
    return tenant


def tenant_set_vrf(*, tenant: Tenant, public_key_hex: str, required: bool, actor: str) -> None:
    """Set the VRF public key a tenant's proofs are checked with, and whether proofs are required."""
    tenant_update(
        tenant=tenant, changes={"vrf_public_key": public_key_hex, "vrf_required": required}, actor=actor
    )


@transaction.atomic
def key_rotate(
    *,
    tenant: Tenant,
    actor: str,
    overlap: timedelta | None = None,
    public_key_b64: str | None = None,
    secret: str | None = None,
) -> NewKey:
    """Add a new signing key (an HMAC ``secret`` given, or generated); keys valid now keep verifying
    for ``overlap``, then get 401."""
    overlap = overlap if overlap is not None else timedelta(hours=settings.KEY_ROTATION_OVERLAP_HOURS)
    now = timezone.now()
    ends = now + overlap
    retiring = (
        SigningKey.objects.select_for_update()
        .filter(tenant=tenant, not_before__lte=now)
        .exclude(not_after__lte=now)
    )
    retired_ids = []
    for key in retiring:
        if key.not_after is None or key.not_after > ends:
            key.not_after = ends
            key.save(update_fields=["not_after"])
        retired_ids.append(key.key_id)
    new = _new_key(tenant, actor=actor, public_key_b64=public_key_b64, secret=secret)
    _audit(
        tenant,
        "key_rotated",
        actor,
        f"new={new.key.key_id} retiring={','.join(retired_ids) or '-'} "
        f"until={ends.isoformat(timespec='seconds')}",
    )
    transaction.on_commit(reset_key_cache)
    return new


@transaction.atomic
def tenant_deactivate(*, tenant: Tenant, actor: str) -> None:
    """Refuse the tenant's submissions from now on (401 unknown_tenant); its data stays."""
    Tenant.objects.filter(pk=tenant.pk).update(active=False)
    _audit(tenant, "tenant_deactivated", actor, "")
    transaction.on_commit(reset_key_cache)


@transaction.atomic
def tenant_set_limits(
    *,
    tenant: Tenant,
    actor: str,
    daily_quota: int | None = None,
    rate_per_second: float | None = None,
    burst: int | None = None,
) -> Tenant:
    """Change the daily quota and/or the token bucket."""
    if daily_quota is not None:
        if daily_quota < 0:
            raise TenantError("the daily quota cannot be negative (0 switches it off)")
        tenant.daily_quota = daily_quota
    if rate_per_second is not None:
        if rate_per_second < 0:
            raise TenantError("the rate cannot be negative (0 switches it off)")
        tenant.rate_per_second = rate_per_second
    if burst is not None:
        tenant.burst = max(0, burst)
    tenant.save(update_fields=["daily_quota", "rate_per_second", "burst"])
    _audit(
        tenant,
        "limits_changed",
        actor,
        f"quota={tenant.daily_quota} rate={tenant.rate_per_second} burst={tenant.burst}",
    )
    transaction.on_commit(reset_key_cache)
    return tenant


def token_hash(raw: str) -> str:
    """How a token is stored and looked up: tokens are long random strings, so SHA-256 suffices."""
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def token_issue(
    *, tenant: Tenant, name: str, actor: str, scope: str = ApiToken.SCOPE_READ
) -> tuple[ApiToken, str]:
    """Create an API token of a scope in ``ApiToken.SCOPE_CHOICES``; the raw value is shown once only."""
    if scope not in dict(ApiToken.SCOPE_CHOICES):
        raise TenantError(f"unknown token scope {scope!r}")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        tenant=tenant, name=name, prefix=raw[:10], token_hash=token_hash(raw), created_by=actor, scope=scope
    )
    _audit(tenant, "token_issued", actor, f"name={name} prefix={token.prefix} scope={scope}")
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: str) -> bool:
    """Refuse ``token`` from its next request on (401), audited like issuance; False if it already was."""
    locked = ApiToken.objects.select_for_update().select_related("tenant").get(pk=token.pk)
    if locked.revoked_at is not None:
        return False
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    token.revoked_at = locked.revoked_at
    _audit(
        locked.tenant,
        "token_revoked",
        actor,
        f"name={locked.name} prefix={locked.prefix} scope={locked.scope}",
        {"prefix": locked.prefix, "name": locked.name, "scope": locked.scope},
    )
    return True


@transaction.atomic
def secrets_reencrypt() -> int:
    """Re-encrypt every stored HMAC secret under the newest encryption key; return how many."""
    count = 0
    for key in SigningKey.objects.select_for_update().exclude(secret_encrypted=""):
        key.secret_encrypted = reencrypt_secret(key.secret_encrypted)
        key.save(update_fields=["secret_encrypted"])
        count += 1
    return count
