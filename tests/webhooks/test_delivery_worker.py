"""End to end across processes: HTTP in, the audit log, the dispatcher and deliveries on a real Celery
worker, signed HTTPS POSTs to a local receiver that verifies them with flk_agent.verify_webhook.
"""

from __future__ import annotations

import json
import time

import pytest
import redis
from django.conf import settings

from apps.audit.models import AuditEntry
from apps.audit.services import audit_append
from apps.webhooks.models import WebhookAttempt, WebhookDelivery
from flk_agent import verify_webhook
from flk_project.celery import app as celery_app
from tasks.webhooks import deliver, dispatch
from tests.conftest import submit
from tests.support.servers import celery_worker
from tests.webhooks.conftest import bearer

# Bounds on waiting for the worker, not expectations of speed: the test fails only if nothing happens.
WAIT_SECONDS = 60


def _wait_for(what: str, check, log) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen; worker log:\n{log.read_text()}"
        time.sleep(0.1)


def _policy_token(tenant) -> str:
    from apps.tenants.models import ApiToken
    from apps.tenants.services import token_issue

    return token_issue(tenant=tenant, name="ops", actor="test", scope=ApiToken.SCOPE_POLICY)[1]


@pytest.mark.slow
def test_an_escalation_reaches_a_failing_receiver_once_on_the_fourth_attempt_and_verifies(
    api, tenant, pcs_factory, receiver, tmp_path
):
    receiver.fail_first = 3  # 500 to the first three POSTs of each event
    registered = api.post(
        "/v1/webhooks",
        json={"url": receiver.url, "events": ["pcs.escalated", "review.decided"], "description": "ops"},
        headers=bearer(_policy_token(tenant)),
    )
    assert registered.status_code == 201, registered.text
    secret = registered.json()["secret"]
    escalated = submit(api, pcs_factory(epoch=5, D_hat=0.2))
    assert escalated.status_code == 202, escalated.text
    assert submit(api, pcs_factory(epoch=6)).status_code == 200  # accepted: no event

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    log = tmp_path / "worker.log"
    env = {
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "WEBHOOK_CA_BUNDLE": str(receiver.tls.ca_pem),
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    }
    with celery_worker("webhooks", log=log, **env):
        dispatch.delay()
        _wait_for(
            "the escalation's delivery",
            lambda: WebhookDelivery.objects.filter(state="delivered").exists(),
            log,
        )
        delivery = WebhookDelivery.objects.get()
        event_requests = receiver.of_event(delivery.event_id)
        assert [r.answered for r in event_requests] == [500, 500, 500, 200]
        assert receiver.accepted[delivery.event_id] == 1
        attempts = WebhookAttempt.objects.filter(delivery=delivery).order_by("number")
        assert [(a.number, a.status_code) for a in attempts] == [(1, 500), (2, 500), (3, 500), (4, 200)]
        # Every attempt carried the same body and event id, each signed afresh; each verifies.
        assert len({r.body for r in event_requests}) == 1
        event = verify_webhook(event_requests[-1].body, event_requests[-1].headers["flk-signature"], secret)
        entry = AuditEntry.objects.get(kind="decision", status=202)
        assert event["type"] == "pcs.escalated" and event["pcs_id"] == escalated.json()["pcs_id"]
        assert event["audit"] == {"seq": entry.seq, "entry_hash": entry.entry_hash}
        assert event["data"]["reason"] == escalated.json()["reason"]

        # The same task message twice more (a broker redelivery, a stuck beat): nothing is sent again.
        for _ in range(2):
            deliver.delay(delivery.pk)
        dispatch.delay()
        _wait_for("the duplicates to be consumed", lambda: log.read_text().count("succeeded") >= 8, log)
        assert len(receiver.of_event(delivery.event_id)) == 4
        assert WebhookAttempt.objects.filter(delivery=delivery).count() == 4

        # A reviewer's decision, appended in the review app's shape, follows as review.decided.
        receiver.fail_first = 0
        audit_append(
            tenant_id=tenant.pk,
            kind="review",
            actor="admin:rita",
            pcs_id=entry.pcs_id,
            reason="known noisy shard",
            details={
                "outcome": "accepted",
                "reviewer": "admin:rita",
                "reason": "known noisy shard",
                "supersedes_seq": entry.seq,
                "escalated_at": entry.created_at.isoformat(),
                "seconds_to_decision": 3.0,
            },
        )
        celery_app.send_task("tasks.webhooks.dispatch", queue="webhooks")
        reviewed = WebhookDelivery.objects.filter(event_type="review.decided", state="delivered")
        _wait_for("the review outcome's delivery", reviewed.exists, log)
        [got] = receiver.of_event(reviewed.get().event_id)
        event = verify_webhook(got.body, got.headers["flk-signature"], secret)
        assert event["type"] == "review.decided" and event["pcs_id"] == entry.pcs_id
        assert event["data"]["outcome"] == "accepted" and event["data"]["reviewer"] == "admin:rita"
        assert json.loads(got.body)["data"]["supersedes_seq"] == entry.seq
