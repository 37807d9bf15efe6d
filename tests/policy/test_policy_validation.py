"""A policy is validated when saved and again when activated; every refusal names the bound it breaks."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEntry
from apps.policy.models import Policy
from tests.policy.conftest import auth, create_policy

RULE = {"name": "r", "expr": "recomputed.budget > 0.9", "action": "escalate", "message": "high budget"}

INVALID = {
    "tolerance-zero": ({"params": {"d_hat_tolerance": 0}}, "params.d_hat_tolerance", "tolerance must be > 0"),
    "tolerance-negative": (
        {"params": {"budget_tolerance": -0.1}},
        "params.budget_tolerance",
        "tolerance must be > 0",
    ),
    "weight-above-one": (
        {"params": {"budget_alpha": 1.5}},
        "params.budget_alpha",
        "must be in [0, 1], got 1.5",
    ),
    "weight-below-zero": ({"params": {"budget_gamma": -0.2}}, "params.budget_gamma", "must be in [0, 1]"),
    "sticky-not-below-non-sticky": (
        {"params": {"sticky_d_max": 2.8, "non_sticky_d_min": 2.6}},
        "params.sticky_d_max",
        "sticky threshold 2.8 must be below the non-sticky threshold 2.6",
    ),
    "anomaly-levels": (
        {"params": {"anomaly_alert": 0.9, "anomaly_reject": 0.8}},
        "params.anomaly_alert",
        "anomaly_alert < anomaly_reject",
    ),
    "unknown-parameter": ({"params": {"budget_delta": 0.1}}, "params.budget_delta", "unknown parameter"),
    "rule-does-not-compile": (
        {"rules": [{**RULE, "expr": "recomputed.budget >"}]},
        "rules[0].expr",
        "Failed to parse",
    ),
    "rule-unknown-field": (
        {"rules": [{**RULE, "expr": "pcs.D_hatt > 1.0"}]},
        "rules[0].expr",
        "unknown field pcs.D_hatt",
    ),
    "rule-unknown-nested-field": (
        {"rules": [{**RULE, "expr": "pcs.ft.retries > 1"}]},
        "rules[0].expr",
        "unknown field pcs.ft.retries",
    ),
    "rule-unknown-field-before-a-method": (
        {"rules": [{**RULE, "expr": "pcs.shard.startsWith('a')"}]},
        "rules[0].expr",
        "unknown field pcs.shard",
    ),
    "rule-unknown-variable": (
        {"rules": [{**RULE, "expr": "request.size > 1"}]},
        "rules[0].expr",
        "unknown variable 'request'",
    ),
    "rule-not-boolean": (
        {"rules": [{**RULE, "expr": "recomputed.budget + 1.0"}]},
        "rules[0].expr",
        "not a boolean",
    ),
    "rule-type-error": (
        {"rules": [{**RULE, "expr": "pcs.epoch + 'a' == 1"}]},
        "rules[0].expr",
        "does not run",
    ),
    "rule-bad-action": ({"rules": [{**RULE, "action": "delete"}]}, "rules[0].action", "escalate, reject"),
    "rule-empty-message": ({"rules": [{**RULE, "message": " "}]}, "rules[0].message", "must not be empty"),
    "rule-duplicate-name": ({"rules": [RULE, RULE]}, "rules[1].name", "duplicate rule name"),
    "not-semver": ({"version": "2.0"}, "version", "not a SemVer version"),
    "builtin-version": ({"version": "1.0.0"}, "version", "built-in policy"),
}


@pytest.mark.parametrize(("fields", "where", "message"), INVALID.values(), ids=INVALID.keys())
def test_an_invalid_policy_is_refused_naming_the_bound(api, policy_token, fields, where, message):
    version = fields.pop("version", "2.0.0")
    response = create_policy(api, policy_token, version, **fields)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "policy_invalid"
    assert any(p["field"] == where and message in p["message"] for p in body["problems"]), body
    assert not Policy.objects.exists()


def test_a_valid_policy_is_saved_as_a_draft_and_audited(api, policy_token, tenant):
    rules = [RULE, {**RULE, "name": "ft_ok", "expr": "size(pcs.ft.fallbacks) > 2 && !pcs.ft.degraded"}]
    response = create_policy(api, policy_token, "2.0.0", params={"d_hat_tolerance": 0.1}, rules=rules)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "draft"
    entry = AuditEntry.objects.get(kind="policy_created")
    assert (entry.policy_version, entry.actor) == ("2.0.0", f"token:{policy_token[:10]}")


def test_a_stored_policy_that_no_longer_validates_cannot_be_activated(api, policy_token, tenant):
    # A row saved by hand (or by an older release with looser checks) must still not go live.
    Policy.objects.create(
        tenant=tenant, name="legacy", version="3.0.0", params={"budget_beta": 2}, created_by="sql"
    )
    response = api.post("/v1/policies/3.0.0/activate", headers=auth(policy_token))
    assert response.status_code == 400
    assert response.json()["problems"] == [
        {"field": "params.budget_beta", "message": "must be in [0, 1], got 2"}
    ]
    assert Policy.objects.get(version="3.0.0").status == "draft"


def test_a_read_token_may_list_but_not_change_policies(api, read_token):
    assert api.get("/v1/policies", headers=auth(read_token)).status_code == 200
    refused = create_policy(api, read_token, "2.0.0")
    assert refused.status_code == 403 and "scope 'policy'" in refused.json()["detail"]


def test_only_drafts_can_be_edited(api, policy_token):
    create_policy(api, policy_token, "2.0.0")
    edit = api.put(
        "/v1/policies/2.0.0", json={"params": {"d_hat_tolerance": 0.2}}, headers=auth(policy_token)
    )
    assert edit.status_code == 200 and edit.json()["params"] == {"d_hat_tolerance": 0.2}
    api.post("/v1/policies/2.0.0/activate", headers=auth(policy_token))
    refused = api.put("/v1/policies/2.0.0", json={"params": {}}, headers=auth(policy_token))
    assert refused.status_code == 409 and "only drafts" in refused.json()["detail"]
