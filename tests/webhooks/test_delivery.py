"""One attempt at a time, run in this process against the real local HTTPS receiver.

The retry schedule across processes is in test_delivery_worker.py; here each attempt is called
directly (the task's body) so the test can look at every step: signatures, rotation, the SSRF guard at
send time, a delivery running out of attempts, resends, duplicates.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.webhooks.models import WebhookAttempt, WebhookDelivery
from apps.webhooks.services import (
    webhook_delivery_attempt,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_ping,
    webhook_secret_rotate,
)
from flk_agent import WebhookVerificationError, verify_webhook


@pytest.fixture(autouse=True)
def _own_broker(settings):
    # Retries are queued to the broker on commit; no worker runs here, so clear what they left.
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    yield
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()


def _endpoint(kit, receiver, **kwargs):
    return webhook_endpoint_create(
        tenant=kit.tenant, url=receiver.url, event_types=["pcs.escalated"], actor="test", **kwargs
    )


def _counter(name: str, outcome: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total", {"outcome": outcome}) or 0.0


def test_a_ping_arrives_signed_and_verifies_with_the_secret(tenant_a, receiver):
    new = _endpoint(tenant_a, receiver)
    delivery = webhook_ping(endpoint=new.endpoint, actor="test")
    before = _counter("flk_webhook_deliveries", "delivered")
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    [got] = receiver.requests
    assert got.path == "/flk-hook"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["flk-event-id"] == delivery.event_id
    assert got.headers["flk-event-type"] == "webhook.ping"
    assert got.headers["user-agent"].startswith("FLK-Webhooks/")
    event = verify_webhook(got.body, got.headers["flk-signature"], new.secret)
    assert event["data"] == {"endpoint": new.endpoint.public_id} and event["tenant"] == "acme"
    for wrong in ("whsec_wrong", new.secret + "x"):
        with pytest.raises(WebhookVerificationError):
            verify_webhook(got.body, got.headers["flk-signature"], wrong)
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert (attempt.number, attempt.status_code, attempt.succeeded) == (1, 200, True)
    assert attempt.response_excerpt == '{"ok": true}'
    assert _counter("flk_webhook_deliveries", "delivered") == before + 1
    # The same task message again (a broker redelivery) sends nothing.
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    assert len(receiver.requests) == 1


def test_a_delivery_that_keeps_failing_stops_after_its_last_attempt(tenant_a, receiver):
    receiver.fail_first = 99
    new = _endpoint(tenant_a, receiver)

    delivery = webhook_ping(endpoint=new.endpoint, actor="test")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(max_attempts=3)
    failed_before = _counter("flk_webhook_deliveries", "failed")
    outcomes = [webhook_delivery_attempt(delivery_id=delivery.pk) for _ in range(4)]
    assert outcomes == ["retry", "retry", "failed", "skipped"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    log = list(
        WebhookAttempt.objects.filter(delivery=delivery).values_list("number", "status_code", "succeeded")
    )
    assert log == [(1, 500, False), (2, 500, False), (3, 500, False)]
    assert (
        WebhookAttempt.objects.filter(delivery=delivery).first().response_excerpt
        == "receiver failing on purpose"
    )
    assert len(receiver.requests) == 3
    assert _counter("flk_webhook_deliveries", "failed") == failed_before + 1
    # An operator resends once the receiver is fixed: one more attempt, the same event id and body.
    receiver.fail_first = 0
    receiver._seen.clear()
    webhook_delivery_resend(delivery=delivery, actor="admin:ops")
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    assert receiver.requests[-1].headers["flk-event-id"] == delivery.event_id
    assert receiver.requests[-1].body == receiver.requests[0].body
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 4


def test_during_a_rotation_deliveries_carry_both_signatures(tenant_a, receiver):
    new = _endpoint(tenant_a, receiver)
    rotated = webhook_secret_rotate(endpoint=new.endpoint, actor="test", grace=timedelta(hours=1))
    assert rotated.secret != new.secret and rotated.secret.startswith("whsec_")
    webhook_delivery_attempt(delivery_id=webhook_ping(endpoint=new.endpoint, actor="t").pk)
    got = receiver.requests[-1]
    assert got.headers["flk-signature"].count("v1=") == 2
    verify_webhook(got.body, got.headers["flk-signature"], new.secret)  # a receiver not yet switched
    verify_webhook(got.body, got.headers["flk-signature"], rotated.secret)
    # With no grace, the old secret stops at once.
    last = webhook_secret_rotate(endpoint=new.endpoint, actor="test", grace=timedelta(0))
    webhook_delivery_attempt(delivery_id=webhook_ping(endpoint=new.endpoint, actor="t").pk)
    got = receiver.requests[-1]
    assert got.headers["flk-signature"].count("v1=") == 1
    verify_webhook(got.body, got.headers["flk-signature"], last.secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(got.body, got.headers["flk-signature"], rotated.secret)


def test_a_target_that_is_private_at_send_time_is_not_called(tenant_a, receiver, settings):
    new = _endpoint(tenant_a, receiver)  # registered while private networks were allowed
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    delivery = webhook_ping(endpoint=new.endpoint, actor="test")
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"  # a ping has one attempt
    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.status_code is None and "private" in attempt.error and not attempt.succeeded


def test_an_untrusted_certificate_is_a_failed_attempt(tenant_a, receiver, settings):
    new = _endpoint(tenant_a, receiver)
    settings.WEBHOOK_CA_BUNDLE = ""  # the public CAs do not know the test's CA
    delivery = webhook_ping(endpoint=new.endpoint, actor="test")
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "failed"
    assert receiver.requests == []
    assert "CERTIFICATE_VERIFY_FAILED" in WebhookAttempt.objects.get(delivery=delivery).error


def test_deleting_an_endpoint_fails_what_it_had_pending_without_sending(tenant_a, receiver):
    new = _endpoint(tenant_a, receiver)
    delivery = webhook_ping(endpoint=new.endpoint, actor="test")
    webhook_endpoint_delete(endpoint=new.endpoint, actor="test")
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    delivery.refresh_from_db()
    assert delivery.state == "failed" and delivery.last_error == "the endpoint was deleted"
    assert receiver.requests == []


def test_a_delivery_not_yet_due_is_not_sent_early(tenant_a, receiver):
    new = _endpoint(tenant_a, receiver)
    delivery = webhook_ping(endpoint=new.endpoint, actor="test")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    assert receiver.requests == []
    assert json.loads(delivery.body)["type"] == "webhook.ping"


def test_concurrent_duplicate_messages_make_one_post(tenant_a, receiver):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    new = _endpoint(tenant_a, receiver)
    delivery = webhook_ping(endpoint=new.endpoint, actor="test")

    def attempt(_: int) -> str:
        try:
            return webhook_delivery_attempt(delivery_id=delivery.pk)
        finally:
            connection.close()  # each thread's own connection

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(attempt, range(4)))
    assert outcomes == ["delivered", "skipped", "skipped", "skipped"]
    assert len(receiver.requests) == 1 and WebhookAttempt.objects.filter(delivery=delivery).count() == 1


def test_a_claim_whose_worker_died_is_logged_and_sent_again_by_the_sweep(tenant_a, receiver):
    from apps.webhooks.services import webhook_dispatch

    new = _endpoint(tenant_a, receiver)
    delivery = webhook_ping(endpoint=new.endpoint, actor="test")
    # What a worker killed between its claim and its answer leaves behind.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state="sending", attempts=1, max_attempts=3, lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert webhook_dispatch()["requeued"] == 1
    delivery.refresh_from_db()
    assert delivery.state == "pending"
    [lost] = WebhookAttempt.objects.filter(delivery=delivery)
    assert lost.number == 1 and "outcome is unknown" in lost.error
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == "delivered"
    assert list(WebhookAttempt.objects.filter(delivery=delivery).values_list("number", flat=True)) == [1, 2]
    assert len(receiver.requests) == 1


def test_beat_runs_the_dispatcher_every_few_seconds_on_the_webhooks_queue():
    from flk_project.celery import app
    from tasks.webhooks import deliver, dispatch

    app.finalize()
    assert app.conf.beat_schedule["webhooks-dispatch"]["task"] == dispatch.name
    assert app.conf.beat_schedule["webhooks-dispatch"]["schedule"] <= 10
    for task in (dispatch, deliver):
        assert app.amqp.router.route({}, task.name)["queue"].name == "webhooks"
