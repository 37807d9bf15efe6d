"""Tenants: who sends PCS, and the limits they send under."""

from __future__ import annotations

from django.db import models


class Tenant(models.Model):
    """One sender of PCS. Single-tenant installations have exactly one, the default tenant."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    # Limits; 0 switches one off.
    rate_per_second = models.FloatField(default=0.0)
    burst = models.PositiveIntegerField(default=0)
    daily_quota = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class RateBucket(models.Model):
    """Token bucket and daily counter of one tenant, for installations without Redis."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True)
    tokens = models.FloatField()
    refilled_at = models.FloatField(help_text="unix seconds of the last refill")
    day = models.DateField()
    day_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"bucket of {self.tenant_id}"
