"""/v1/webhooks through real HTTP: who may register, which targets are refused, tenant isolation."""

from __future__ import annotations

import json

import pytest

from apps.audit.models import AuditEntry
from apps.tenants.crypto import decrypt_secret
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.webhooks.conftest import bearer, policy_token

PUBLIC = "https://93.184.215.14/hook"  # a public address, given as an IP so no DNS is needed


def _register(http, token: str, url: str = PUBLIC, events=("pcs.escalated",), **extra):
    return http.post(
        "/v1/webhooks", json={"url": url, "events": list(events), **extra}, headers=bearer(token)
    )


def _audit_kinds(kit) -> list[str]:
    return list(
        AuditEntry.objects.filter(tenant=kit.tenant, kind__startswith="webhook_").values_list(
            "kind", flat=True
        )
    )


def test_a_policy_token_registers_an_endpoint_and_sees_its_secret_once(http, tenant_a):
    token = policy_token(tenant_a)
    response = _register(http, token, events=["review.decided", "pcs.escalated"], description="pager")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["secret"].startswith("whsec_") and response.headers["Cache-Control"] == "no-store"
    assert body["events"] == ["pcs.escalated", "review.decided"] and body["url"] == PUBLIC
    stored = WebhookEndpoint.objects.get(public_id=body["id"])
    assert body["secret"] not in stored.secret_encrypted  # encrypted at rest
    assert decrypt_secret(stored.secret_encrypted).decode() == body["secret"]
    entry = AuditEntry.objects.get(tenant=tenant_a.tenant, kind="webhook_created")
    assert entry.actor.startswith("token:") and entry.details["endpoint"] == body["id"]
    assert body["secret"] not in str(entry.details) + entry.reason
    # Reads never show the secret again, and a read token may read.
    listed = http.get("/v1/webhooks", headers=bearer(tenant_a.token)).json()
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in http.get(f"/v1/webhooks/{body['id']}", headers=bearer(tenant_a.token)).json()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://93.184.215.14/hook", "https_required"),
        ("ftp://93.184.215.14/hook", "https_required"),
        ("https://127.0.0.1:8443/hook", "target_not_public"),
        ("https://10.1.2.3/hook", "target_not_public"),
        ("https://192.168.0.10/hook", "target_not_public"),
        ("https://169.254.169.254/latest/meta-data", "target_not_public"),  # cloud metadata
        ("https://[::1]/hook", "target_not_public"),
        ("https://[::ffff:127.0.0.1]/hook", "target_not_public"),
        ("https://100.64.0.1/hook", "target_not_public"),  # carrier-grade NAT
        ("https://localhost/hook", "target_not_public"),
        ("https://ops:pw@93.184.215.14/hook", "invalid_url"),
        ("https:///hook", "invalid_url"),
        ("https://93.184.215.14:99999/hook", "invalid_url"),
        ("https://93.184.215.14/a b", "invalid_url"),
        ("https://no-such-host.invalid/hook", "target_unresolvable"),
    ],
)
def test_targets_that_are_not_https_or_not_public_are_refused_and_nothing_is_created(
    http, tenant_a, url, error
):
    response = _register(http, policy_token(tenant_a), url=url)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error and response.json()["field"] == "url"
    assert not WebhookEndpoint.objects.exists() and _audit_kinds(tenant_a) == []


def test_the_development_switches_let_http_and_private_targets_through(http, tenant_a, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    token = policy_token(tenant_a)
    assert _register(http, token, url="http://127.0.0.1:9/hook").status_code == 201
    assert _register(http, token, url="https://10.1.2.3/hook").status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": PUBLIC, "events": []}, "events"),
        ({"url": PUBLIC, "events": ["pcs.accepted"]}, "events"),
        ({"url": PUBLIC, "events": "pcs.escalated"}, "events"),
        ({"url": PUBLIC}, "events"),
        ({"events": ["pcs.escalated"]}, "url"),
        ({"url": PUBLIC, "events": ["pcs.escalated"], "description": "x" * 201}, "description"),
        ({"url": PUBLIC, "events": ["pcs.escalated"], "description": "a\ud800"}, "description"),
        ({"url": PUBLIC + "\x00", "events": ["pcs.escalated"]}, "url"),
    ],
)
def test_a_malformed_registration_is_400_with_the_field(http, tenant_a, body, field):
    # json.dumps escapes the lone surrogate, as a hostile client would send it.
    response = http.post(
        "/v1/webhooks",
        content=json.dumps(body).encode(),
        headers={**bearer(policy_token(tenant_a)), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request" and response.json()["field"].startswith(field)
    assert not WebhookEndpoint.objects.exists()


def test_malformed_json_is_400(http, tenant_a):
    response = http.post(
        "/v1/webhooks",
        content=b'{"url": ',
        headers={**bearer(policy_token(tenant_a)), "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"] == "malformed_json"


def test_a_read_token_cannot_register_rotate_ping_or_delete(http, tenant_a):
    endpoint_id = _register(http, policy_token(tenant_a)).json()["id"]
    stored = WebhookEndpoint.objects.get(public_id=endpoint_id)
    audit_before = _audit_kinds(tenant_a)
    reader = bearer(tenant_a.token)
    refused = [
        http.post("/v1/webhooks", json={"url": PUBLIC, "events": ["pcs.escalated"]}, headers=reader),
        http.post(f"/v1/webhooks/{endpoint_id}/rotate-secret", json={}, headers=reader),
        http.post(f"/v1/webhooks/{endpoint_id}/ping", headers=reader),
        http.delete(f"/v1/webhooks/{endpoint_id}", headers=reader),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert "policy" in refused[0].json()["detail"]
    assert WebhookEndpoint.objects.count() == 1 and not WebhookDelivery.objects.exists()
    after = WebhookEndpoint.objects.get(pk=stored.pk)
    assert (after.secret_encrypted, after.deleted_at) == (stored.secret_encrypted, None)
    assert _audit_kinds(tenant_a) == audit_before
    assert http.get("/v1/webhooks").status_code == 401


def test_another_tenants_endpoint_is_404_and_untouched(http, tenant_a, tenant_b):
    endpoint_id = _register(http, policy_token(tenant_a)).json()["id"]
    stored = WebhookEndpoint.objects.get(public_id=endpoint_id)
    other = bearer(policy_token(tenant_b))
    answers = [
        http.get(f"/v1/webhooks/{endpoint_id}", headers=other),
        http.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=other),
        http.post(f"/v1/webhooks/{endpoint_id}/rotate-secret", json={}, headers=other),
        http.post(f"/v1/webhooks/{endpoint_id}/ping", headers=other),
        http.delete(f"/v1/webhooks/{endpoint_id}", headers=other),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    assert all(a.json()["error"] == "not_found" for a in answers)
    assert http.get("/v1/webhooks", headers=other).json() == []
    after = WebhookEndpoint.objects.get(pk=stored.pk)
    assert (after.secret_encrypted, after.deleted_at) == (stored.secret_encrypted, None)
    assert not WebhookDelivery.objects.exists() and _audit_kinds(tenant_b) == []


def test_rotate_then_delete(http, tenant_a):
    token = bearer(policy_token(tenant_a))
    first = _register(http, policy_token(tenant_a)).json()
    rotated = http.post(f"/v1/webhooks/{first['id']}/rotate-secret", json={"grace_hours": 2}, headers=token)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != first["secret"] and rotated.json()["previous_secret_valid_until"]
    bad = http.post(f"/v1/webhooks/{first['id']}/rotate-secret", json={"grace_hours": -1}, headers=token)
    assert bad.status_code == 400 and bad.json()["field"] == "grace_hours"
    assert http.delete(f"/v1/webhooks/{first['id']}", headers=token).status_code == 204
    assert http.get(f"/v1/webhooks/{first['id']}", headers=token).status_code == 404
    assert http.get("/v1/webhooks/we_%00", headers=token).status_code == 404
    assert _audit_kinds(tenant_a) == ["webhook_created", "webhook_secret_rotated", "webhook_deleted"]
    assert WebhookEndpoint.objects.get(public_id=first["id"]).deleted_at is not None  # the log stays


def test_the_delivery_log_is_readable_per_endpoint(http, tenant_a):
    endpoint_id = _register(http, policy_token(tenant_a)).json()["id"]
    assert (
        http.post(f"/v1/webhooks/{endpoint_id}/ping", headers=bearer(policy_token(tenant_a))).status_code
        == 202
    )
    log = http.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=bearer(tenant_a.token))
    assert log.status_code == 200
    [delivery] = log.json()
    assert delivery["event_type"] == "webhook.ping" and delivery["state"] in ("pending", "sending", "failed")
    for limit in ("0", "201", "x"):
        bad = http.get(f"/v1/webhooks/{endpoint_id}/deliveries?limit={limit}", headers=bearer(tenant_a.token))
        assert bad.status_code == 400 and bad.json()["field"] == "limit"
