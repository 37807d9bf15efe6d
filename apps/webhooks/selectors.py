"""Webhook reads, always scoped by tenant."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from apps.tenants.crypto import decrypt_secret
from apps.tenants.models import Tenant
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    """The tenant's endpoints that are not deleted, newest first."""
    return WebhookEndpoint.objects.filter(tenant=tenant, deleted_at__isnull=True).order_by("-created_at")


def endpoint_get(*, tenant: Tenant, public_id: str) -> WebhookEndpoint | None:
    """One of the tenant's endpoints by its public id; None for another tenant's or a deleted one."""
    return endpoint_list(tenant=tenant).filter(public_id=public_id).first()


def delivery_list(*, tenant: Tenant, endpoint: WebhookEndpoint, limit: int) -> list[WebhookDelivery]:
    """The endpoint's latest deliveries with their attempts, newest first."""
    return list(
        WebhookDelivery.objects.filter(tenant=tenant, endpoint=endpoint)
        .prefetch_related("attempt_log")
        .order_by("-id")[:limit]
    )


def signing_secrets(*, endpoint: WebhookEndpoint) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one in its grace."""
    found = [decrypt_secret(endpoint.secret_encrypted).decode()]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > timezone.now():
        found.append(decrypt_secret(endpoint.previous_secret_encrypted).decode())
    return found
