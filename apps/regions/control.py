"""Control-plane replication: tenants, signing keys, policies and API tokens as versioned snapshots.

The shipper publishes a snapshot of the whole control plane to each remote bucket whenever it changed
(``control/<region>/<version>.json``, written once, version + 1 each time). The reader applies the
newest snapshot of each source region it has not applied yet, in one transaction, audited per tenant
(kind ``control_replicated``, actor ``region:<source>``).

Applying is idempotent and converges when both regions change things: an object is taken from a
snapshot only when the source changed it since the last snapshot applied from there (its content
hash differs from ``ControlApplied``). When this region changed the same object too (its own copy
differs from what it last took from the source), the region whose id sorts first wins, in both
regions, so two regions never swap their versions back and forth. Nothing is deleted by replication.

HMAC secrets travel as the Fernet tokens they are stored as: regions share ``FLK_ENCRYPTION_KEYS``.
API tokens travel as their SHA-256 (the raw token is never stored), so a token issued in one region
authenticates in the other after one interval; a revocation in either region wins over a live copy.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.dateparse import parse_datetime

from apps.audit.services import audit_append
from apps.policy.models import Policy
from apps.regions import storage
from apps.regions.models import ControlApplied, ShipTarget, SourceCursor
from apps.tenants.models import ApiToken, SigningKey, Tenant
from apps.tenants.selectors import reset_key_cache

logger = logging.getLogger("flk.regions")

TENANT_FIELDS = (
    "name",
    "active",
    "sign_alg",
    "vrf_required",
    "vrf_public_key",
    "pii_mode",
    "rate_per_second",
    "burst",
    "daily_quota",
)
KEY_FIELDS = ("alg", "secret_encrypted", "public_key_b64", "not_before", "not_after", "created_by")
POLICY_FIELDS = ("name", "status", "params", "rules", "canary_share", "created_by")
TOKEN_FIELDS = ("name", "scope", "prefix", "created_by", "revoked_at")
KIND_ORDER = {"tenant": 0, "key": 1, "policy": 2, "token": 3}  # owners before what they own
# Live statuses last, so that an incoming active policy meets the other versions already retired.
_STATUS_ORDER = {Policy.DRAFT: 0, Policy.RETIRED: 1, Policy.CANARY: 2, Policy.ACTIVE: 3}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def control_snapshot() -> dict[str, dict[str, Any]]:
    """The control plane as ``{object key: fields}``; keys say what and whose."""
    objects: dict[str, dict[str, Any]] = {}
    for tenant in Tenant.objects.order_by("slug"):
        objects[f"tenant:{tenant.slug}"] = {f: _plain(getattr(tenant, f)) for f in TENANT_FIELDS}
    for key in SigningKey.objects.select_related("tenant").order_by("tenant__slug", "key_id"):
        objects[f"key:{key.tenant.slug}:{key.key_id}"] = {f: _plain(getattr(key, f)) for f in KEY_FIELDS}
    for policy in Policy.objects.select_related("tenant").order_by("tenant__slug", "version"):
        objects[f"policy:{policy.tenant.slug}:{policy.version}"] = {
            f: _plain(getattr(policy, f)) for f in POLICY_FIELDS
        }
    for token in ApiToken.objects.select_related("tenant").order_by("tenant__slug", "token_hash"):
        objects[f"token:{token.tenant.slug}:{token.token_hash}"] = {
            f: _plain(getattr(token, f)) for f in TOKEN_FIELDS
        }
    return objects


def _hash(fields: dict[str, Any]) -> str:
    return storage.sha256_hex(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())


def control_publish(*, target: ShipTarget) -> bool:
    """Write a new snapshot version to ``target``'s bucket if the control plane changed; True if written."""
    objects = control_snapshot()
    body = json.dumps(
        {"region": settings.REGION_ID, "objects": objects}, sort_keys=True, separators=(",", ":")
    ).encode()
    digest = storage.sha256_hex(json.dumps(objects, sort_keys=True).encode())
    if digest == target.control_digest:
        return False
    version = target.control_version + 1
    storage.put_once(target.bucket, storage.control_key(settings.REGION_ID, version), body)
    ShipTarget.objects.filter(pk=target.pk).update(control_version=version, control_digest=digest)
    target.control_version, target.control_digest = version, digest
    logger.info("regions.control_published bucket=%s version=%d", target.bucket, version)
    return True


def control_apply(*, source: str) -> int | None:
    """Apply the newest snapshot of ``source`` not applied yet; its version, or None if none is new."""
    cursor, _ = SourceCursor.objects.get_or_create(source_region=source)
    keys = storage.list_keys(
        settings.REGION_BUCKET,
        f"control/{source}/",
        start_after=storage.control_key(source, cursor.control_version),
    )
    if not keys:
        return None
    newest = keys[-1]
    version = int(newest.rsplit("/", 1)[1].removesuffix(".json"))
    found = storage.get(settings.REGION_BUCKET, newest)
    if found.metadata.get("sha256") not in (None, storage.sha256_hex(found.body)):
        raise ValueError(f"control snapshot {newest} fails its SHA-256")
    objects: dict[str, dict[str, Any]] = json.loads(found.body)["objects"]
    with transaction.atomic():
        changed = _apply_objects(source, version, objects)
        SourceCursor.objects.filter(pk=source).update(control_version=version)
        transaction.on_commit(reset_key_cache)
    logger.info("regions.control_applied source=%s version=%d changed=%d", source, version, len(changed))
    return version


def _apply_objects(source: str, version: int, objects: dict[str, dict[str, Any]]) -> list[str]:
    applied = dict(
        ControlApplied.objects.filter(source_region=source).values_list("object_key", "content_hash")
    )
    local = control_snapshot()
    changed_by_tenant: dict[str, list[str]] = defaultdict(list)

    def order(item: tuple[str, dict[str, Any]]) -> tuple[int, int, str]:
        kind = item[0].split(":", 1)[0]
        return (
            KIND_ORDER[kind],
            _STATUS_ORDER.get(item[1].get("status", ""), 0),
            item[0],
        )

    for object_key, fields in sorted(objects.items(), key=order):
        incoming = _hash(fields)
        if applied.get(object_key) == incoming:
            continue  # the source did not change it since we last took it
        mine = local.get(object_key)
        mine_hash = _hash(mine) if mine is not None else None
        locally_changed = mine is not None and mine_hash != applied.get(object_key)
        take = mine_hash != incoming and (not locally_changed or source < settings.REGION_ID)
        if take:
            _upsert(object_key, fields)
            changed_by_tenant[object_key.split(":")[1]].append(object_key)
        ControlApplied.objects.update_or_create(
            source_region=source, object_key=object_key, defaults={"content_hash": incoming}
        )
    for slug, keys in changed_by_tenant.items():
        tenant = Tenant.objects.get(slug=slug)
        audit_append(
            tenant_id=tenant.pk,
            kind="control_replicated",
            actor=f"region:{source}",
            reason=f"snapshot {version} of {source}: {len(keys)} objects",
            details={"source_region": source, "snapshot_version": version, "objects": sorted(keys)},
        )
    return [key for keys in changed_by_tenant.values() for key in keys]


def _datetimes(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: (parse_datetime(v) if k in names and isinstance(v, str) else v) for k, v in fields.items()}


def _upsert(object_key: str, fields: dict[str, Any]) -> None:
    kind, slug, *rest = object_key.split(":", 2)
    if kind == "tenant":
        Tenant.objects.update_or_create(slug=slug, defaults=fields)
        return
    tenant = Tenant.objects.get(slug=slug)
    if kind == "key":
        SigningKey.objects.update_or_create(
            tenant=tenant, key_id=rest[0], defaults=_datetimes(fields, ("not_before", "not_after"))
        )
        return
    if kind == "token":
        _token_upsert(tenant, rest[0], fields)
        return
    version = rest[0]
    status = fields.get("status")
    if status in (Policy.ACTIVE, Policy.CANARY):
        # One active and one canary per tenant: the one replaced steps down first.
        Policy.objects.filter(tenant=tenant, status=status).exclude(version=version).update(
            status=Policy.RETIRED
        )
    Policy.objects.update_or_create(tenant=tenant, version=version, defaults=fields)


def _token_upsert(tenant: Tenant, token_hash: str, fields: dict[str, Any]) -> None:
    """Take a token's fields, keeping the earliest revocation of the two regions (revoked stays revoked)."""
    fields = _datetimes(fields, ("revoked_at",))
    mine = ApiToken.objects.filter(token_hash=token_hash).values_list("revoked_at", flat=True).first()
    revocations = [at for at in (mine, fields["revoked_at"]) if at is not None]
    fields["revoked_at"] = min(revocations) if revocations else None
    ApiToken.objects.update_or_create(token_hash=token_hash, defaults={"tenant": tenant, **fields})
