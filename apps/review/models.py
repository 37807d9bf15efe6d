"""The review queue: one row per escalated PCS, from pending through a claim to one decision.

An item names its PCS by (tenant, pcs_id), not by a foreign key: tiering moves old ``PcsRecord`` rows
out of the warm table, and neither the queue nor a decided review may block that or vanish with it.
What a reviewer needs to see and what the review's audit entry commits to is copied in when the item
is created (escalation time and reason, policy version, payload digest, the decision's audit entry).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.tenants.models import Tenant


class ReviewItem(models.Model):
    """An escalated PCS in the review queue.

    States: ``pending`` (nobody holds it), ``claimed`` (a reviewer holds it until ``claim_expires_at``;
    after that it counts as pending again), then ``accepted`` or ``rejected``, once, for good.
    """

    PENDING, CLAIMED, ACCEPTED, REJECTED = "pending", "claimed", "accepted", "rejected"
    STATE_CHOICES = [
        (PENDING, "pending"),
        (CLAIMED, "claimed"),
        (ACCEPTED, "accepted"),
        (REJECTED, "rejected"),
    ]
    DECIDED = (ACCEPTED, REJECTED)

    # Indexed through (tenant, pcs_id) and (tenant, state, id) below.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="review_items", db_index=False)
    pcs_id = models.CharField(max_length=64)
    shard_id = models.CharField(max_length=256)
    epoch = models.BigIntegerField()
    escalated_at = models.DateTimeField(help_text="when the PCS was decided (escalated)")
    escalation_reason = models.CharField(max_length=200, blank=True, help_text="why the policy escalated it")
    policy_version = models.CharField(max_length=32)
    payload_digest = models.CharField(max_length=64, help_text="hex SHA-256 of the signed payload")
    decision_entry_id = models.BigIntegerField(help_text="id of the PCS's decision audit entry")

    state = models.CharField(max_length=8, choices=STATE_CHOICES, default=PENDING)
    claimed_by = models.CharField(max_length=150, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="the reviewer's reason")
    review_entry_id = models.BigIntegerField(
        null=True, blank=True, help_text="id of the review's audit entry"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One item per PCS: the review of a PCS can only ever be decided once.
            models.UniqueConstraint(fields=["tenant", "pcs_id"], name="review_item_tenant_pcs_id_uniq"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "claimed"], decided_at__isnull=True)
                | Q(
                    state__in=["accepted", "rejected"],
                    decided_at__isnull=False,
                    review_entry_id__isnull=False,
                ),
                name="review_item_decided_has_time_and_entry",
            ),
        ]
        # The queue: a tenant's open items, oldest first.
        indexes = [models.Index(fields=["tenant", "state", "id"], name="review_item_queue_idx")]
        permissions = [
            ("claim_reviewitem", "Can claim review items"),
            ("decide_reviewitem", "Can accept or reject review items"),
        ]

    def __str__(self) -> str:
        return f"{self.pcs_id[:16]}… ({self.effective_state})"

    @property
    def claim_live(self) -> bool:
        """True while a claim holds the item: claimed and not yet expired."""
        return (
            self.state == self.CLAIMED
            and self.claim_expires_at is not None
            and self.claim_expires_at > timezone.now()
        )

    @property
    def effective_state(self) -> str:
        """The state a reviewer sees: a claim that expired is pending again."""
        if self.state == self.CLAIMED and not self.claim_live:
            return self.PENDING
        return self.state


class ReviewSyncCursor(models.Model):
    """How far the queue has taken in a tenant's escalated decisions (``review_queue_sync``).

    The next sync reads decisions made since ``synced_until`` minus a margin, through the
    (tenant, decided_at) index of ``PcsRecord``, instead of the tenant's whole history.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, primary_key=True, related_name="+")
    synced_until = models.DateTimeField(help_text="when the last complete sync of this tenant started")

    def __str__(self) -> str:
        return f"{self.tenant_id}: synced until {self.synced_until:%Y-%m-%d %H:%M:%S}"
