"""The operator's webhook pages: register with the secret shown once, the delivery log, resend and ping."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.urls import reverse

from apps.audit.models import AuditEntry
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import webhook_endpoint_create, webhook_ping

PUBLIC = "https://93.184.215.14/hook"


def _staff(*codenames: str) -> User:
    user = User.objects.create_user("ops", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="webhooks", codename__in=codenames)
    )
    return user


def test_an_operator_registers_an_endpoint_and_sees_its_secret_once(admin_client, tenant):
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"tenant": tenant.pk, "url": PUBLIC, "events": ["pcs.escalated"], "description": "pager"},
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    assert "whsec_" in response.content.decode() and endpoint.public_id in response.content.decode()
    entry = AuditEntry.objects.get(kind="webhook_created")
    assert entry.actor == "admin:admin" and entry.details["endpoint"] == endpoint.public_id
    page = admin_client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert page.status_code == 200 and "whsec_" not in page.content.decode()


def test_a_private_target_is_refused_on_the_form(admin_client, tenant):
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"tenant": tenant.pk, "url": "https://169.254.169.254/", "events": ["pcs.escalated"]},
    )
    assert response.status_code == 200 and "public addresses only" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def _failed_delivery(tenant) -> WebhookDelivery:
    endpoint = webhook_endpoint_create(
        tenant=tenant, url=PUBLIC, event_types=["pcs.escalated"], actor="t"
    ).endpoint
    delivery = webhook_ping(endpoint=endpoint, actor="t")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state="failed", attempts=1, last_status_code=500)
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=delivery.created_at,
        duration_ms=12,
        status_code=500,
        response_excerpt="upstream down",
        succeeded=False,
    )
    return delivery


def test_the_delivery_log_shows_each_attempt(admin_client, tenant):
    delivery = _failed_delivery(tenant)
    page = admin_client.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200
    assert "upstream down" in page.content.decode() and delivery.event_id in page.content.decode()
    endpoint_page = admin_client.get(
        reverse("admin:webhooks_webhookendpoint_change", args=[delivery.endpoint_id])
    ).content.decode()
    assert delivery.event_id in endpoint_page  # the endpoint's recent deliveries


def test_resend_needs_its_permission(client, tenant):
    delivery = _failed_delivery(tenant)
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")
    client.force_login(_staff("view_webhookdelivery"))
    assert "Resend" not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "resend", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert (delivery.state, delivery.max_attempts) == ("failed", 1)  # nothing changed

    User.objects.all().delete()
    client.force_login(_staff("view_webhookdelivery", "resend_webhookdelivery"))
    response = client.post(changelist, {"action": "resend", "_selected_action": [delivery.pk]})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.state, delivery.max_attempts, delivery.event_id) == ("pending", 2, delivery.event_id)


def test_a_test_ping_from_the_list(admin_client, tenant):
    endpoint = webhook_endpoint_create(
        tenant=tenant, url=PUBLIC, event_types=["pcs.escalated"], actor="t"
    ).endpoint
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_changelist"),
        {"action": "send_test_ping", "_selected_action": [endpoint.pk]},
    )
    assert response.status_code == 302
    assert WebhookDelivery.objects.get(endpoint=endpoint).event_type == "webhook.ping"
