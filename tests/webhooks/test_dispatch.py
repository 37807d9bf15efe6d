"""The dispatcher: which audit entries become deliveries, for whom, with what body, and only once."""

from __future__ import annotations

import json

from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.audit.services import audit_append
from apps.pcs.services import pcs_ingest
from apps.webhooks.events import event_id
from apps.webhooks.models import WebhookCursor, WebhookDelivery
from apps.webhooks.services import (
    webhook_dispatch,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_set_active,
)
from tests.support.pcs_factory import make_pcs

HOOK = "https://93.184.215.14/hook"  # a public IP literal: passes the target check without DNS


def _ingest(kit, epoch: int, **fields) -> int:
    result = pcs_ingest(
        body=json.dumps(make_pcs(kit.signer, epoch=epoch, **fields)).encode(),
        tenant_header=kit.tenant.slug,
        received_at=timezone.now(),
    )
    return result.status


def _review(kit, escalation: AuditEntry, outcome: str = "accepted") -> AuditEntry:
    # The review app's entry, in the shape the contract fixes (its own service may not exist yet).
    return audit_append(
        tenant_id=kit.tenant.pk,
        kind="review",
        actor="admin:rita",
        pcs_id=escalation.pcs_id,
        reason="looked fine",
        details={
            "outcome": outcome,
            "reviewer": "admin:rita",
            "reason": "looked fine",
            "supersedes_seq": escalation.seq,
            "escalated_at": escalation.created_at.isoformat(),
            "seconds_to_decision": 42.5,
        },
    )


def test_an_endpoint_gets_escalations_from_its_creation_on_and_nothing_else(tenant_a):
    assert _ingest(tenant_a, 1, D_hat=0.2) == 202  # before the endpoint: history is not sent
    new = webhook_endpoint_create(
        tenant=tenant_a.tenant, url=HOOK, event_types=["pcs.escalated"], actor="test"
    )
    assert _ingest(tenant_a, 2) == 200  # accepted: not an event
    assert _ingest(tenant_a, 3, D_hat=0.2) == 202
    assert webhook_dispatch() == {"created": 1, "requeued": 0, "busy_tenants": 0}
    delivery = WebhookDelivery.objects.get()
    entry = AuditEntry.objects.get(
        tenant=tenant_a.tenant, kind="decision", status=202, seq__gte=new.endpoint.start_seq
    )
    body = json.loads(delivery.body)
    assert body == {
        "id": event_id(tenant_slug="acme", seq=entry.seq, entry_hash=entry.entry_hash),
        "type": "pcs.escalated",
        "created_at": body["created_at"],
        "tenant": "acme",
        "pcs_id": entry.pcs_id,
        "data": {"status": 202, "reason": entry.reason, "policy_version": entry.policy_version},
        "audit": {"seq": entry.seq, "entry_hash": entry.entry_hash},
    }
    assert entry.reason and body["created_at"].endswith("Z")
    assert (delivery.event_id, delivery.audit_seq, delivery.state) == (body["id"], entry.seq, "pending")
    # A second run finds nothing new: one delivery per event and endpoint.
    assert webhook_dispatch()["created"] == 0
    assert WebhookCursor.objects.get(tenant=tenant_a.tenant).next_seq == entry.seq + 1


def test_review_outcomes_go_to_endpoints_that_subscribed_to_them(tenant_a):
    reviews = webhook_endpoint_create(
        tenant=tenant_a.tenant, url=HOOK, event_types=["review.decided"], actor="test"
    ).endpoint
    both = webhook_endpoint_create(
        tenant=tenant_a.tenant, url=HOOK + "2", event_types=["pcs.escalated", "review.decided"], actor="test"
    ).endpoint
    assert _ingest(tenant_a, 1, D_hat=0.2) == 202
    escalation = AuditEntry.objects.get(tenant=tenant_a.tenant, kind="decision")
    review = _review(tenant_a, escalation, "rejected")
    webhook_dispatch()
    got = {(d.endpoint_id, d.event_type) for d in WebhookDelivery.objects.all()}
    assert got == {
        (reviews.pk, "review.decided"),
        (both.pk, "review.decided"),
        (both.pk, "pcs.escalated"),
    }
    body = json.loads(WebhookDelivery.objects.filter(event_type="review.decided").first().body)
    assert body["pcs_id"] == escalation.pcs_id and body["audit"]["seq"] == review.seq
    assert body["data"] == {
        "outcome": "rejected",
        "reviewer": "admin:rita",
        "reason": "looked fine",
        "supersedes_seq": escalation.seq,
        "escalated_at": escalation.created_at.isoformat(),
        "seconds_to_decision": 42.5,
    }
    # The same event has the same id for every endpoint: a receiver behind both sees one event.
    assert len({d.event_id for d in WebhookDelivery.objects.filter(event_type="review.decided")}) == 1


def test_one_tenants_events_never_reach_another_tenants_endpoint(tenant_a, tenant_b):
    webhook_endpoint_create(tenant=tenant_a.tenant, url=HOOK, event_types=["pcs.escalated"], actor="test")
    assert _ingest(tenant_b, 1, D_hat=0.2) == 202
    assert webhook_dispatch()["created"] == 0
    assert _ingest(tenant_a, 1, D_hat=0.2) == 202
    webhook_dispatch()
    assert [json.loads(d.body)["tenant"] for d in WebhookDelivery.objects.all()] == ["acme"]
    assert not WebhookCursor.objects.filter(tenant=tenant_b.tenant).exists()  # no endpoint, no reading


def test_a_paused_or_deleted_endpoint_gets_nothing_new(tenant_a):
    paused, gone = (
        webhook_endpoint_create(tenant=tenant_a.tenant, url=HOOK, event_types=["pcs.escalated"], actor="t")
        for _ in range(2)
    )
    webhook_endpoint_set_active(endpoint=paused.endpoint, active=False, actor="t")
    webhook_endpoint_delete(endpoint=gone.endpoint, actor="t")
    assert _ingest(tenant_a, 1, D_hat=0.2) == 202
    assert webhook_dispatch()["created"] == 0
    kinds = list(AuditEntry.objects.filter(kind__startswith="webhook_").values_list("kind", flat=True))
    assert kinds == ["webhook_created", "webhook_created", "webhook_changed", "webhook_deleted"]
