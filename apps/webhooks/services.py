"""Webhook writes: endpoints (audited), the dispatcher that turns audit entries into deliveries, attempts.

The path of an event: an entry is appended to a tenant's audit log (by ingest or the review app);
``webhook_dispatch`` (beat, every few seconds) reads the log from the tenant's cursor and, in the
transaction that advances the cursor, writes one delivery per subscribed endpoint; after the commit it
queues ``tasks.webhooks.deliver`` for each. ``webhook_delivery_attempt`` claims a due delivery with one
conditional UPDATE (so a duplicate task message finds nothing to claim and sends nothing), POSTs it
signed, logs the attempt, and either finishes the delivery or schedules the next try with backoff.
A worker that dies mid-send leaves its claim to expire; the dispatcher's sweep queues it again.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit.models import AuditEntry, AuditLogHead
from apps.audit.services import audit_append
from apps.tenants.crypto import encrypt_secret
from apps.tenants.models import Tenant
from apps.webhooks import metrics
from apps.webhooks.events import event_body, event_type_of, ping_body
from apps.webhooks.models import EVENT_TYPES, WebhookAttempt, WebhookCursor, WebhookDelivery, WebhookEndpoint
from apps.webhooks.selectors import signing_secrets
from apps.webhooks.sending import SendResult, post
from apps.webhooks.targets import TargetRefused, target_check, url_for_audit
from flk_agent.webhooks import SIGNATURE_HEADER, signature_header
from flk_project.celery import app as celery_app

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
DELIVER_TASK = "tasks.webhooks.deliver"
QUEUE = "webhooks"
# A tenant with more endpoints than this is almost surely a loop creating them; each costs a POST per event.
MAX_ENDPOINTS_PER_TENANT = 16
DESCRIPTION_MAX = WebhookEndpoint._meta.get_field("description").max_length
# Entries matched per query of a tenant's log, and queries per tenant per dispatcher run: one query
# reads an index range of (tenant, seq), so a run stays well under a second even when it catches up.
DISPATCH_BATCH = 500
DISPATCH_ROUNDS = 10
# A pending delivery this late was queued but its message is gone (broker restart): queue it again.
SWEEP_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 500


class WebhookError(ValueError):
    """A webhook change that cannot be made as asked: ``code`` and ``field`` for the API, and why."""

    def __init__(self, code: str, detail: str, *, field: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class NewSecret:
    """An endpoint with a secret just made: ``secret`` exists only here and is never shown again."""

    endpoint: WebhookEndpoint
    secret: str


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _enqueue(delivery_id: int, countdown: float = 0) -> None:
    # By name, not by import: tasks import this module, not the other way round.
    try:
        celery_app.send_task(DELIVER_TASK, args=[delivery_id], queue=QUEUE, countdown=countdown or None)
    except Exception as exc:  # the broker is down: the row is committed, and the sweep queues it later
        logger.warning("webhook.enqueue_failed delivery=%s error=%s", delivery_id, type(exc).__name__)


def _event_types(event_types: object) -> list[str]:
    if not isinstance(event_types, list | tuple) or not event_types:
        raise WebhookError(
            "invalid_events",
            f"events must be a non-empty list among {', '.join(EVENT_TYPES)}",
            field="events",
        )
    unknown = [str(e)[:40] for e in event_types if e not in EVENT_TYPES]
    if unknown:
        raise WebhookError(
            "invalid_events",
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}",
            field="events",
        )
    return [e for e in EVENT_TYPES if e in event_types]  # one copy each, in a fixed order


def webhook_endpoint_create(
    *, tenant: Tenant, url: str, event_types: list[str], actor: str, description: str = ""
) -> NewSecret:
    """Register an endpoint; its secret is returned once. It receives events from the log's head on.

    The URL must be https:// and resolve to public addresses (``apps.webhooks.targets``); it is
    resolved before the transaction, so a slow DNS answer never holds the audit log's lock.
    """
    event_types = _event_types(event_types)
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        raise WebhookError("invalid_request", f"at most {DESCRIPTION_MAX} characters", field="description")
    try:
        url = target_check(url)
    except TargetRefused as exc:
        raise WebhookError(exc.code, str(exc), field="url") from exc
    secret = _new_secret()
    public_id = f"we_{secrets.token_hex(12)}"
    with transaction.atomic():
        count = WebhookEndpoint.objects.filter(tenant=tenant, deleted_at__isnull=True).count()
        if count >= MAX_ENDPOINTS_PER_TENANT:
            raise WebhookError(
                "too_many_endpoints", f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints"
            )
        entry = audit_append(
            tenant_id=tenant.pk,
            kind="webhook_created",
            actor=actor,
            reason=f"{public_id} {url_for_audit(url)}"[:200],
            details={"endpoint": public_id, "url": url_for_audit(url), "events": event_types},
        )
        # Entries before this one (the tenant's history) are not sent: the endpoint starts here.
        start = entry.seq + 1
        endpoint = WebhookEndpoint.objects.create(
            public_id=public_id,
            tenant=tenant,
            url=url,
            event_types=event_types,
            description=description,
            secret_encrypted=encrypt_secret(secret.encode()),
            start_seq=start,
            created_by=actor,
        )
        WebhookCursor.objects.get_or_create(tenant=tenant, defaults={"next_seq": start})
    logger.info("webhook.created tenant=%s endpoint=%s actor=%s", tenant.slug, public_id, actor)
    return NewSecret(endpoint, secret)


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: str) -> None:
    """Stop sending to an endpoint; its row and delivery log stay. Unsent deliveries are failed."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if locked.deleted_at is not None:
        return
    now = timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(deleted_at=now, active=False)
    WebhookDelivery.objects.filter(endpoint=endpoint, state=WebhookDelivery.STATE_PENDING).update(
        state=WebhookDelivery.STATE_FAILED, last_error="the endpoint was deleted"
    )
    audit_append(
        tenant_id=endpoint.tenant_id,
        kind="webhook_deleted",
        actor=actor,
        reason=endpoint.public_id,
        details={"endpoint": endpoint.public_id, "url": url_for_audit(endpoint.url)},
    )
    endpoint.deleted_at, endpoint.active = now, False


@transaction.atomic
def webhook_endpoint_set_active(*, endpoint: WebhookEndpoint, active: bool, actor: str) -> None:
    """Pause or resume an endpoint. A paused one gets no new deliveries and its unsent ones stop."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, deleted_at__isnull=True).update(active=active)
    audit_append(
        tenant_id=endpoint.tenant_id,
        kind="webhook_changed",
        actor=actor,
        reason=f"{endpoint.public_id} active={active}",
        details={"endpoint": endpoint.public_id, "active": active},
    )
    endpoint.active = active


@transaction.atomic
def webhook_secret_rotate(
    *, endpoint: WebhookEndpoint, actor: str, grace: timedelta | None = None
) -> NewSecret:
    """A new signing secret, returned once; the current one keeps signing beside it for ``grace``.

    During the grace period every delivery carries two ``v1`` signatures, one per secret, so a
    receiver can switch to the new secret whenever it likes. ``grace`` 0 retires the old one now.
    """
    grace = grace if grace is not None else timedelta(hours=settings.WEBHOOK_SECRET_GRACE_HOURS)
    if grace < timedelta(0) or grace > timedelta(days=30):
        raise WebhookError(
            "invalid_request", "the grace period is between 0 and 30 days", field="grace_hours"
        )
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if locked.deleted_at is not None:
        raise WebhookError("endpoint_deleted", "the endpoint is deleted")
    secret = _new_secret()
    ends = timezone.now() + grace
    locked.previous_secret_encrypted = locked.secret_encrypted if grace else ""
    locked.previous_secret_expires_at = ends if grace else None
    locked.secret_encrypted = encrypt_secret(secret.encode())
    locked.save(update_fields=["secret_encrypted", "previous_secret_encrypted", "previous_secret_expires_at"])
    audit_append(
        tenant_id=locked.tenant_id,
        kind="webhook_secret_rotated",
        actor=actor,
        reason=f"{locked.public_id} previous valid until {ends.isoformat(timespec='seconds')}",
        details={"endpoint": locked.public_id, "previous_valid_until": ends.isoformat(timespec="seconds")},
    )
    return NewSecret(locked, secret)


def webhook_ping(*, endpoint: WebhookEndpoint, actor: str) -> WebhookDelivery:
    """Queue a ``webhook.ping`` to one endpoint: an operator's or tenant's check that it answers."""
    if endpoint.deleted_at is not None:
        raise WebhookError("endpoint_deleted", "the endpoint is deleted")
    identifier, body = ping_body(tenant_slug=endpoint.tenant.slug, endpoint_id=endpoint.public_id)
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            tenant_id=endpoint.tenant_id,
            event_id=identifier,
            event_type="webhook.ping",
            body=body,
            max_attempts=1,  # a ping tells how the endpoint answers now; it is not retried
            next_attempt_at=timezone.now(),
        )
        transaction.on_commit(lambda: _enqueue(delivery.pk))
    logger.info("webhook.ping endpoint=%s actor=%s", endpoint.public_id, actor)
    return delivery


def webhook_delivery_resend(*, delivery: WebhookDelivery, actor: str) -> WebhookDelivery:
    """Queue one more attempt of a delivery: the same body and event id, whatever its state was."""
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
        if locked.state == WebhookDelivery.STATE_SENDING:
            raise WebhookError("in_flight", "an attempt of this delivery is running; resend after it ends")
        if locked.endpoint.deleted_at is not None:
            raise WebhookError("endpoint_deleted", "the endpoint is deleted")
        locked.state = WebhookDelivery.STATE_PENDING
        locked.max_attempts = locked.attempts + 1
        locked.next_attempt_at = timezone.now()
        locked.last_error = ""
        locked.save(update_fields=["state", "max_attempts", "next_attempt_at", "last_error"])
        transaction.on_commit(lambda: _enqueue(locked.pk))
    logger.info("webhook.resend delivery=%s event=%s actor=%s", locked.pk, locked.event_id, actor)
    return locked


# -- the dispatcher ----------------------------------------------------------------------------


def _dispatch_tenant(tenant_id: int) -> int | None:
    """Turn one tenant's new log entries into deliveries; how many were made, None if busy elsewhere."""
    created: list[int] = []
    with transaction.atomic():
        # SKIP LOCKED: a second dispatcher run leaves this tenant to the one already on it.
        cursor = WebhookCursor.objects.select_for_update(skip_locked=True).filter(tenant_id=tenant_id).first()
        if cursor is None:
            return None
        # The committed size: a log's entries commit in order with its head, so [0, size) is all there.
        size = AuditLogHead.objects.filter(tenant_id=tenant_id).values_list("size", flat=True).first() or 0
        endpoints = list(
            WebhookEndpoint.objects.filter(tenant_id=tenant_id, active=True, deleted_at__isnull=True)
            .select_related("tenant")
            .order_by("pk")
        )
        start = cursor.next_seq
        slug = endpoints[0].tenant.slug if endpoints else ""
        if endpoints:
            start = max(start, min(e.start_seq for e in endpoints))
            for _ in range(DISPATCH_ROUNDS):
                entries = list(
                    AuditEntry.objects.filter(tenant_id=tenant_id, seq__gte=start, seq__lt=size)
                    .filter(Q(kind="decision", status=202) | Q(kind="review"))
                    .order_by("seq")[:DISPATCH_BATCH]
                )
                rows = []
                for entry in entries:
                    event_type = event_type_of(entry)
                    receivers = [
                        e for e in endpoints if event_type in e.event_types and e.start_seq <= entry.seq
                    ]
                    if not receivers:
                        continue
                    identifier, body = event_body(entry, tenant_slug=slug, event_type=event_type)
                    rows.extend(
                        WebhookDelivery(
                            endpoint=endpoint,
                            tenant_id=tenant_id,
                            event_id=identifier,
                            event_type=event_type,
                            audit_seq=entry.seq,
                            body=body,
                            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
                            next_attempt_at=timezone.now(),
                        )
                        for endpoint in receivers
                    )
                created.extend(d.pk for d in WebhookDelivery.objects.bulk_create(rows))
                if len(entries) < DISPATCH_BATCH:
                    start = size
                    break
                start = entries[-1].seq + 1
        else:
            start = max(start, size)  # nobody listens: nothing before now will ever be sent
        if start != cursor.next_seq:
            WebhookCursor.objects.filter(pk=tenant_id).update(next_seq=start, updated_at=timezone.now())
        transaction.on_commit(lambda: [_enqueue(pk) for pk in created])
    return len(created)


def _sweep() -> int:
    """Queue again what was lost: due deliveries whose message is gone, claims whose worker died."""
    now = timezone.now()
    requeued = 0
    with transaction.atomic():
        stale = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(state=WebhookDelivery.STATE_SENDING, lease_until__lt=now)
            .order_by("pk")[:SWEEP_BATCH]
        )
        for delivery in stale:
            # The claim counted an attempt whose outcome nobody recorded: log it as such.
            WebhookAttempt.objects.get_or_create(
                delivery=delivery,
                number=delivery.attempts,
                defaults={
                    "started_at": delivery.lease_until or now,
                    "duration_ms": 0,
                    "error": "the worker stopped during this attempt; its outcome is unknown",
                    "succeeded": False,
                },
            )
            final = delivery.attempts >= delivery.max_attempts
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                state=WebhookDelivery.STATE_FAILED if final else WebhookDelivery.STATE_PENDING,
                next_attempt_at=now,
                lease_until=None,
                last_error="the worker stopped during an attempt",
            )
        due = list(
            WebhookDelivery.objects.filter(
                Q(state=WebhookDelivery.STATE_PENDING, next_attempt_at__lte=now - SWEEP_GRACE)
                | Q(pk__in=[d.pk for d in stale if d.attempts < d.max_attempts])
            )
            .order_by("pk")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        requeued = len(due)
        transaction.on_commit(lambda: [_enqueue(pk) for pk in due])
    return requeued


def webhook_dispatch() -> dict[str, int]:
    """One dispatcher run over every tenant with an endpoint, then the sweep. Safe to run twice."""
    created = busy = 0
    for tenant_id in WebhookCursor.objects.order_by("pk").values_list("pk", flat=True):
        made = _dispatch_tenant(tenant_id)
        if made is None:
            busy += 1
        else:
            created += made
    return {"created": created, "requeued": _sweep(), "busy_tenants": busy}


# -- one attempt -------------------------------------------------------------------------------


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after ``attempt``: exponential from the base, capped, half jittered.

    Half fixed, half random ("equal jitter"): receivers that failed together do not all come back in
    the same second, and no retry comes much sooner than the backoff promises.
    """
    delay = min(settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def _attempt_outcome(result: SendResult) -> str:
    if result.succeeded:
        return "success"
    if result.refused:
        return "refused"
    return "http_error" if result.status_code is not None else "network_error"


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """Send one due delivery once; ``delivered``, ``retry``, ``failed`` or ``skipped`` (not claimable).

    The claim is one conditional UPDATE: only a pending delivery whose time has come is taken, so a
    duplicate task message, a resend racing a retry, or a sweep never make a second concurrent POST,
    and a delivered event is never sent again unless an operator resends it.
    """
    now = timezone.now()
    lease = timedelta(seconds=3 * settings.WEBHOOK_TIMEOUT_SECONDS + 60)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=WebhookDelivery.STATE_PENDING, next_attempt_at__lte=now
    ).update(state=WebhookDelivery.STATE_SENDING, lease_until=now + lease, attempts=F("attempts") + 1)
    if not claimed:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("endpoint", "tenant").get(pk=delivery_id)
    endpoint, number = delivery.endpoint, delivery.attempts
    started, clock = timezone.now(), time.monotonic()
    if endpoint.deleted_at is not None or not endpoint.active:
        result = SendResult(None, error="the endpoint is deleted or paused; nothing was sent", refused=True)
        final = True
    else:
        body = delivery.body.encode()
        header = signature_header(body, signing_secrets(endpoint=endpoint), int(time.time()))
        result = post(
            endpoint.url,
            body,
            {
                SIGNATURE_HEADER: header,
                "FLK-Event-Id": delivery.event_id,
                "FLK-Event-Type": delivery.event_type,
            },
        )
        final = result.succeeded or number >= delivery.max_attempts
    duration_ms = int((time.monotonic() - clock) * 1000)
    delay = 0.0 if final else retry_delay(number)
    if result.succeeded:
        state, outcome = WebhookDelivery.STATE_DELIVERED, "delivered"
    elif final:
        state, outcome = WebhookDelivery.STATE_FAILED, "failed"
    else:
        state, outcome = WebhookDelivery.STATE_PENDING, "retry"
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=duration_ms,
            status_code=result.status_code,
            response_excerpt=result.excerpt,
            error=result.error,
            succeeded=result.succeeded,
        )
        # Only if still ours: a sweep that judged this worker dead has taken the row over.
        WebhookDelivery.objects.filter(
            pk=delivery.pk, state=WebhookDelivery.STATE_SENDING, attempts=number
        ).update(
            state=state,
            lease_until=None,
            last_status_code=result.status_code,
            last_error=result.error,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            delivered_at=timezone.now() if result.succeeded else None,
        )
        if outcome == "retry":
            transaction.on_commit(lambda: _enqueue(delivery.pk, countdown=delay))
    metrics.attempts.labels(outcome=_attempt_outcome(result)).inc()
    if outcome in ("delivered", "failed"):
        metrics.deliveries.labels(outcome=outcome).inc()
    logger.info(
        "webhook.attempt delivery=%s event=%s endpoint=%s number=%s status=%s outcome=%s",
        delivery.pk,
        delivery.event_id,
        endpoint.public_id,
        number,
        result.status_code,
        outcome,
    )
    return outcome
