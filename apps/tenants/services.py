"""Tenant writes."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from apps.tenants.models import Tenant


@transaction.atomic
def tenant_ensure_default() -> Tenant:
    """Create or refresh the default tenant from the single-tenant settings."""
    tenant, _ = Tenant.objects.update_or_create(
        slug=settings.DEFAULT_TENANT_ID,
        defaults={
            "name": "Default tenant",
            "active": True,
            "rate_per_second": settings.RATE_LIMIT_RATE,
            "burst": settings.RATE_LIMIT_BURST,
            "daily_quota": settings.DAILY_QUOTA,
        },
    )
    return tenant
