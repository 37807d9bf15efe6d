"""SIEM sink writes: create, change, pause, resume, rewind, and a test event.

Secrets are encrypted with ``apps.tenants.crypto`` (like HMAC signing keys) and never read back out but
to send. Changes to a sink scoped to one tenant are appended to that tenant's audit log with their actor,
in the same transaction; an all-tenant sink has no tenant log to write to, and Django's admin history
records who changed it. The delivery loop itself is ``apps.siem.delivery``.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_append
from apps.siem.delivery import SinkConfig
from apps.siem.events import Event
from apps.siem.models import SiemCursor, SiemSink
from apps.siem.vendors import DELIVERED, DUPLICATE, VENDORS, TooLarge, limits_check, options_check
from apps.tenants.crypto import encrypt_secret, reencrypt_secret
from apps.tenants.models import Tenant

logger = logging.getLogger("flk.siem")

# Fields an operator edits with sink_update; the secret, the state and cursors have services of their own.
EDITABLE_FIELDS = ("name", "endpoint", "options", "tenant", "max_batch_events", "max_batch_bytes")


class SiemError(ValueError):
    """A sink change that cannot be made as asked; the message says why."""


def _audit(sink: SiemSink, kind: str, actor: str, reason: str, details: dict[str, Any] | None = None) -> None:
    if sink.tenant_id is None:
        logger.info("siem.%s sink=%s actor=%s %s", kind, sink.name, actor, reason)
        return
    audit_append(
        tenant_id=sink.tenant_id,
        kind=kind,
        actor=actor,
        reason=f"sink={sink.name} {reason}".strip()[:200],
        details={"sink": sink.name, **(details or {})},
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sink_validate(*, sink: SiemSink) -> None:
    """Raise ``SiemError`` naming every problem of a sink's kind, options, limits and endpoint."""
    problems = []
    if sink.kind not in VENDORS:
        raise SiemError(f"unknown sink kind {sink.kind!r}: one of {', '.join(VENDORS)}")
    if not isinstance(sink.options, dict):
        raise SiemError("options: a JSON object")
    problems += options_check(sink.kind, sink.options)
    problems += limits_check(sink.kind, sink.max_batch_events, sink.max_batch_bytes)
    if sink.endpoint:
        parts = urlsplit(sink.endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            problems.append("endpoint: an http(s) URL")
        # The secret travels in a header: only TLS, unless the endpoint is this machine (a local relay).
        elif parts.scheme == "http" and not (_loopback(parts.hostname) or settings.SIEM_ALLOW_HTTP):
            problems.append("endpoint: https is required (SIEM_ALLOW_HTTP allows plain http)")
    elif sink.kind != SiemSink.KIND_DATADOG:
        problems.append("endpoint: required for this kind (Datadog alone derives it from its site)")
    if problems:
        raise SiemError("; ".join(problems))


@transaction.atomic
def sink_create(
    *,
    name: str,
    kind: str,
    secret: str,
    actor: str,
    endpoint: str = "",
    options: dict[str, Any] | None = None,
    tenant: Tenant | None = None,
    max_batch_events: int | None = None,
    max_batch_bytes: int | None = None,
    active: bool = True,
) -> SiemSink:
    """Create a sink; its secret is stored encrypted. It streams from each tenant's first entry."""
    if not secret:
        raise SiemError("secret: the HEC token, Datadog API key or Elasticsearch API key is required")
    if SiemSink.objects.filter(name=name).exists():
        raise SiemError(f"a sink named {name!r} exists")
    sink = SiemSink(
        name=name,
        kind=kind,
        endpoint=endpoint,
        options=options or {},
        tenant=tenant,
        max_batch_events=max_batch_events,
        max_batch_bytes=max_batch_bytes,
        state=SiemSink.STATE_ACTIVE if active else SiemSink.STATE_PAUSED,
        secret_encrypted=encrypt_secret(secret.encode()),
    )
    sink_validate(sink=sink)
    sink.save()
    _audit(sink, "siem_sink_created", actor, f"kind={kind} endpoint={sink.endpoint or '-'}", {"kind": kind})
    return sink


@transaction.atomic
def sink_update(
    *, sink: SiemSink, changes: dict[str, Any], actor: str, secret: str | None = None
) -> SiemSink:
    """Change a sink's settings and, when ``secret`` is given, replace its secret (audited, never logged)."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise SiemError(f"not editable here: {', '.join(sorted(unknown))}")
    sink = SiemSink.objects.select_for_update().get(pk=sink.pk)
    before = sink.tenant_id
    changed = [name for name, value in changes.items() if getattr(sink, name) != value]
    for name in changed:
        setattr(sink, name, changes[name])
    if secret:
        sink.secret_encrypted = encrypt_secret(secret.encode())
    if not changed and not secret:
        return sink
    sink_validate(sink=sink)
    sink.save()
    what = " ".join(changed) + (" secret" if secret else "")
    facts = {"fields": changed, "secret_replaced": bool(secret)}
    if "tenant" in changed and before is not None:
        # The tenant that stops being streamed sees it in its own log too.
        _audit(
            SiemSink(name=sink.name, tenant_id=before), "siem_sink_changed", actor, f"changed: {what}", facts
        )
    _audit(sink, "siem_sink_changed", actor, f"changed: {what.strip()}", facts)
    return sink


@transaction.atomic
def sink_pause(*, sink: SiemSink, actor: str) -> SiemSink:
    """Stop streaming to the sink until it is resumed; its cursors stay where they are."""
    updated = (
        SiemSink.objects.filter(pk=sink.pk)
        .exclude(state=SiemSink.STATE_PAUSED)
        .update(state=SiemSink.STATE_PAUSED)
    )
    sink.refresh_from_db()
    if updated:
        _audit(sink, "siem_sink_paused", actor, "")
    return sink


@transaction.atomic
def sink_resume(*, sink: SiemSink, actor: str) -> SiemSink:
    """Stream again from the cursors, after a pause or a stop; the error and backoff are cleared."""
    updated = (
        SiemSink.objects.filter(pk=sink.pk)
        .exclude(state=SiemSink.STATE_ACTIVE)
        .update(state=SiemSink.STATE_ACTIVE, consecutive_failures=0, next_attempt_at=None)
    )
    sink.refresh_from_db()
    if updated:
        _audit(sink, "siem_sink_resumed", actor, f"last error: {sink.last_error[:120] or '-'}")
    return sink


@transaction.atomic
def sink_rewind(*, sink: SiemSink, tenant: Tenant, next_seq: int, actor: str) -> SiemCursor:
    """Send a tenant's entries again from ``next_seq`` (after a SIEM lost data, or into a new index).

    Events keep their ids, so Elasticsearch holds each once whatever is sent twice.
    """
    if sink.tenant_id is not None and sink.tenant_id != tenant.pk:
        raise SiemError(f"sink {sink.name} streams tenant {sink.tenant} only")
    if next_seq < 0:
        raise SiemError("next_seq: 0 or more")
    cursor, _ = SiemCursor.objects.get_or_create(sink=sink, tenant=tenant)
    cursor = SiemCursor.objects.select_for_update().get(pk=cursor.pk)
    previous = cursor.next_seq
    cursor.next_seq = next_seq
    cursor.save(update_fields=["next_seq", "updated_at"])
    _audit(
        sink,
        "siem_sink_rewound",
        actor,
        f"tenant={tenant.slug} {previous}->{next_seq}",
        {"from": previous, "to": next_seq},
    )
    return cursor


@dataclass(frozen=True)
class TestResult:
    """The answer to a test event: whether the vendor took it, and what it said."""

    ok: bool
    detail: str


def sink_send_test(*, sink: SiemSink, actor: str) -> TestResult:
    """Send one synthetic event (not an audit entry; cursors do not move) and report the vendor's answer."""
    config = SinkConfig(sink)
    now = timezone.now()
    slug = sink.tenant.slug if sink.tenant_id else "flk"
    event_id = f"test:{sink.name}:{uuid.uuid4().hex[:16]}"
    body = {
        "event_id": event_id,
        "tenant": slug,
        "seq": -1,
        "kind": "siem_test",
        "pcs_id": "",
        "status": None,
        "reason": f"test event sent by {actor}",
        "actor": actor,
        "policy_version": "",
        "created_at": now.isoformat(),
        "entry_hash": "",
        "prev_hash": "",
        "details": {},
    }
    event = Event(event_id, -1, now.timestamp(), body)
    try:
        with httpx.Client(timeout=settings.SIEM_HTTP_TIMEOUT_SECONDS) as client:
            response = client.post(
                config.url,
                content=config.vendor.body([config.vendor.encode(event, config.options)]),
                headers=config.headers,
            )
        answer = config.vendor.read(response, 1)
    except TooLarge as exc:
        return TestResult(False, str(exc))
    except httpx.TransportError as exc:
        return TestResult(False, f"network error: {type(exc).__name__}: {exc}")
    ok = answer.outcomes[0] in (DELIVERED, DUPLICATE)
    logger.info("siem.test sink=%s actor=%s ok=%s", sink.name, actor, ok)
    return TestResult(ok, f"HTTP {response.status_code}, event id {event_id}" if ok else answer.problem)


@transaction.atomic
def sink_secrets_reencrypt() -> int:
    """Re-encrypt every sink secret under the newest ``FLK_ENCRYPTION_KEYS`` key; return how many.

    Run with ``manage.py tenant reencrypt`` when rotating the encryption key, before the old key is dropped.
    """
    count = 0
    for sink in SiemSink.objects.select_for_update().exclude(secret_encrypted=""):
        SiemSink.objects.filter(pk=sink.pk).update(secret_encrypted=reencrypt_secret(sink.secret_encrypted))
        count += 1
    return count
