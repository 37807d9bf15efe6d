"""Versioned trust policies per tenant: the parameters of DESIGN §2 and CEL rules (DESIGN §6)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.tenants.models import Tenant


class Policy(models.Model):
    """One version of a tenant's policy. At most one is active and one is a canary at a time."""

    DRAFT, ACTIVE, CANARY, RETIRED = "draft", "active", "canary", "retired"
    STATUS_CHOICES = [(s, s) for s in (DRAFT, ACTIVE, CANARY, RETIRED)]

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="policies")
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=64, help_text="SemVer, unique per tenant")
    status = models.CharField(max_length=8, choices=STATUS_CHOICES, default=DRAFT)
    params = models.JSONField(default=dict, blank=True, help_text="overrides of the built-in parameters")
    rules = models.JSONField(
        default=list, blank=True, help_text='[{"name", "expr" (CEL), "action": escalate|reject, "message"}]'
    )
    canary_share = models.FloatField(default=0.0, help_text="share of traffic while a canary, in (0, 1)")
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policies"
        ordering = ["tenant", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"], name="policy_tenant_version_uniq"),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(status="active"), name="policy_one_active"
            ),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(status="canary"), name="policy_one_canary"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.name}@{self.version} ({self.status})"


class AnomalyHistory(models.Model):
    """The database copy of one tenant's anomaly history (apps.policy.anomaly, docs/policy.md).

    With Redis configured this is a recent snapshot of the Redis copy, written every few updates, that a
    lost Redis copy is rebuilt from; without Redis it is the history itself, updated under a row lock.
    Floats are double precision, so a value read back is the value written.
    """

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, primary_key=True, related_name="anomaly_history"
    )
    seen = models.BigIntegerField(default=0, help_text="accepted PCS the statistics learnt from")
    d_hat_mean = models.FloatField(default=0.0)
    d_hat_var = models.FloatField(default=0.0)
    coh_star_mean = models.FloatField(default=0.0)
    coh_star_var = models.FloatField(default=0.0)
    r_mean = models.FloatField(default=0.0)
    r_var = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "anomaly histories"

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.seen} accepted PCS"
