"""Canary: a candidate version takes a deterministic share of traffic; promote and rollback at once."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest
from apps.policy.models import Policy
from apps.policy.selection import canary_bucket, policy_for_pcs
from tests.conftest import submit
from tests.policy.conftest import auth, create_policy, publish


@pytest.fixture
def canary_at_10(api, policy_token):
    publish(api, policy_token, "2.0.0")
    assert create_policy(api, policy_token, "2.1.0", params={"d_hat_tolerance": 0.1}).status_code == 201
    started = api.post("/v1/policies/2.1.0/canary", json={"share": 0.1}, headers=auth(policy_token))
    assert started.status_code == 200 and started.json()["status"] == "canary"


def test_ten_thousand_generated_pcs_split_ten_percent_to_the_candidate(canary_at_10, tenant, pcs_factory):
    # Signed PCS as agents make them (their pcs_ids by the protocol formula), fed to the selection the
    # ingest pipeline uses; the end-to-end tests below send a few hundred through the real path.
    generated = [pcs_factory(epoch=epoch, shard_id=f"shard-{epoch % 37}") for epoch in range(10_000)]
    pcs_ids = [pcs["pcs_id"] for pcs in generated]
    assert len(set(pcs_ids)) == 10_000
    versions = [policy_for_pcs(tenant_id=tenant.pk, pcs_id=pcs_id).version for pcs_id in pcs_ids]
    share = versions.count("2.1.0") / len(versions)
    assert 0.09 <= share <= 0.11, share
    # Deterministic: the same pcs_id always meets the same version (so a retry is decided alike).
    assert [policy_for_pcs(tenant_id=tenant.pk, pcs_id=p).version for p in pcs_ids[:500]] == versions[:500]


def test_each_decision_records_the_version_that_made_it(canary_at_10, api, pcs_factory):
    for epoch in range(200):
        response = submit(api, pcs_factory(epoch=epoch))
        assert response.status_code == 200
        body = response.json()
        expected = "2.1.0" if canary_bucket(body["pcs_id"]) < 0.1 else "2.0.0"
        assert body["policy_version"] == expected
        assert AuditEntry.objects.get(kind="decision", pcs_id=body["pcs_id"]).policy_version == expected
    counts = {v: PcsRecord.objects.filter(policy_version=v).count() for v in ("2.0.0", "2.1.0")}
    assert counts["2.1.0"] > 0 and sum(counts.values()) == 200
    metrics = api.get("/metrics", auth=(settings.METRICS_USER, settings.METRICS_PASS)).text
    for version, count in counts.items():
        line = (
            f'flk_decisions_by_policy_total{{outcome="accepted",policy_version="{version}",'
            f'tenant_id="default"}} {float(count)}'
        )
        assert line in metrics


def _versions_of(tenant, pcs_factory, epochs: range) -> set[str]:
    seen = set()
    for epoch in epochs:
        body = pcs_ingest(
            body=json.dumps(pcs_factory(epoch=epoch)).encode(), tenant_header=None, received_at=timezone.now()
        ).body
        seen.add(body["policy_version"])
    return seen


def test_rollback_sends_all_traffic_back_to_the_active_version_at_once(
    canary_at_10, api, policy_token, tenant, pcs_factory
):
    assert _versions_of(tenant, pcs_factory, range(0, 100)) == {"2.0.0", "2.1.0"}
    rolled = api.post("/v1/policies/canary/rollback", headers=auth(policy_token))
    assert rolled.status_code == 200 and rolled.json()["status"] == "retired"
    assert _versions_of(tenant, pcs_factory, range(100, 300)) == {"2.0.0"}
    assert AuditEntry.objects.filter(kind="policy_rolled_back", policy_version="2.1.0").exists()


def test_promote_makes_the_candidate_active_for_all_traffic(
    canary_at_10, api, policy_token, tenant, pcs_factory
):
    promoted = api.post("/v1/policies/canary/promote", headers=auth(policy_token))
    assert promoted.status_code == 200 and promoted.json()["status"] == "active"
    assert Policy.objects.get(version="2.0.0").status == "retired"
    assert _versions_of(tenant, pcs_factory, range(0, 100)) == {"2.1.0"}


def test_a_second_canary_and_a_bad_share_are_refused(canary_at_10, api, policy_token):
    assert create_policy(api, policy_token, "2.2.0").status_code == 201
    second = api.post("/v1/policies/2.2.0/canary", json={"share": 0.2}, headers=auth(policy_token))
    assert second.status_code == 409 and "already the canary" in second.json()["detail"]
    api.post("/v1/policies/canary/rollback", headers=auth(policy_token))
    bad = api.post("/v1/policies/2.2.0/canary", json={"share": 1.5}, headers=auth(policy_token))
    assert bad.status_code == 400 and bad.json()["problems"][0]["field"] == "canary_share"


def test_promote_and_rollback_are_admin_actions(canary_at_10, client, tenant):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    canary = Policy.objects.get(version="2.1.0")
    page = client.post(
        "/admin/policy/policy/", {"action": "rollback_canary", "_selected_action": [canary.pk]}, follow=True
    )
    assert "2.1.0 rolled back." in page.content.decode()
    assert policy_for_pcs(tenant_id=tenant.pk, pcs_id="0" * 64).version == "2.0.0"
    draft = Policy.objects.create(tenant=tenant, name="n", version="2.2.0", canary_share=0.5, created_by="t")
    client.post("/admin/policy/policy/", {"action": "start_canary", "_selected_action": [draft.pk]})
    page = client.post(
        "/admin/policy/policy/", {"action": "promote_canary", "_selected_action": [draft.pk]}, follow=True
    )
    assert "2.2.0 promoted." in page.content.decode()
    assert Policy.objects.get(version="2.2.0").status == "active"
    assert Policy.objects.get(version="2.0.0").status == "retired"


def test_saving_an_active_policys_page_changes_nothing(canary_at_10, client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    active = Policy.objects.get(version="2.0.0")
    page = client.post(f"/admin/policy/policy/{active.pk}/change/", {"params": '{"budget_alpha": 0.9}'})
    assert page.status_code == 302
    active.refresh_from_db()
    assert (active.status, active.params) == ("active", {})
