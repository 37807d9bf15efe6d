"""Tenant webhooks: endpoints, the dispatcher's cursor over each audit log, deliveries and their attempts.

Events are read from the audit log, never pushed by the ingest path: the dispatcher follows each
tenant's log from ``WebhookCursor.next_seq`` and, in the transaction that advances the cursor, writes
one ``WebhookDelivery`` per subscribed endpoint and event. A crash before that commit re-reads the same
entries; after it, the rows are there to be sent. Every send is a ``WebhookAttempt`` row.
"""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant

EVENT_PCS_ESCALATED = "pcs.escalated"
EVENT_REVIEW_DECIDED = "review.decided"
EVENT_PING = "webhook.ping"
# What an endpoint may subscribe to; pings go to any endpoint that asks for one.
EVENT_TYPES = (EVENT_PCS_ESCALATED, EVENT_REVIEW_DECIDED)


class WebhookEndpoint(models.Model):
    """Where a tenant wants its events, and the secret deliveries are signed with.

    The secret is stored encrypted (``apps.tenants.crypto``) and shown once. After a rotation the
    previous secret keeps signing, beside the new one, until ``previous_secret_expires_at``: receivers
    that still hold it keep verifying during the grace period. A deleted endpoint keeps its row and its
    delivery log (``deleted_at``) and receives nothing more.
    """

    public_id = models.CharField(max_length=32, unique=True, help_text="the id the API shows: we_…")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    event_types = models.JSONField(
        default=list, help_text=f"subscribed events among {', '.join(EVENT_TYPES)}"
    )
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    secret_encrypted = models.TextField(help_text="Fernet token of the signing secret (whsec_…)")
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    start_seq = models.BigIntegerField(
        help_text="the first audit entry this endpoint may receive: the log's head when it was created"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "-created_at"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"


class WebhookCursor(models.Model):
    """How far the dispatcher has read a tenant's audit log. Created with the tenant's first endpoint."""

    tenant = models.OneToOneField(
        Tenant, on_delete=models.PROTECT, primary_key=True, related_name="webhook_cursor"
    )
    next_seq = models.BigIntegerField(help_text="the first audit entry not yet dispatched")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant_id}: next {self.next_seq}"


class WebhookDelivery(models.Model):
    """One event for one endpoint: the exact body, and where its sending stands.

    ``pending`` waits for ``next_attempt_at``; ``sending`` is claimed by one worker until
    ``lease_until`` (a worker that dies mid-send leaves it to the dispatcher's sweep); ``delivered``
    and ``failed`` are final until an operator resends. The body is fixed when the row is written, so
    every attempt and every resend carries the same bytes and the same event id.
    """

    STATE_PENDING, STATE_SENDING, STATE_DELIVERED, STATE_FAILED = "pending", "sending", "delivered", "failed"
    STATE_CHOICES = [
        (STATE_PENDING, "pending"),
        (STATE_SENDING, "sending"),
        (STATE_DELIVERED, "delivered"),
        (STATE_FAILED, "failed"),
    ]

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=32)
    audit_seq = models.BigIntegerField(null=True, help_text="the audit entry of the event; none for a ping")
    body = models.TextField(help_text="the JSON body, exactly as signed and sent")
    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=STATE_PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(help_text="attempts allowed; a resend allows one more")
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        permissions = [("resend_webhookdelivery", "Can resend webhook deliveries")]
        constraints = [
            # The dispatcher's second run over the same entries adds nothing.
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_event_uniq")
        ]
        indexes = [
            # The sweep: deliveries that are due (pending) or whose lease ran out (sending).
            models.Index(fields=["state", "next_attempt_at"], name="webhook_delivery_due_idx"),
            models.Index(fields=["tenant", "-id"], name="webhook_delivery_tenant_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} -> {self.endpoint_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One POST of a delivery (or one refusal to send it): what came back and how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    succeeded = models.BooleanField()

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id}#{self.number} {self.status_code or self.error[:40]}"
