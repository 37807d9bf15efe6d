"""Policy rules (CEL) and the anomaly score decide PCS through the HTTP API."""

from __future__ import annotations

import numpy as np
import pytest

from apps.audit.models import AuditEntry
from apps.audit.reverify import audit_pending
from apps.pcs.models import PcsRecord
from flk_agent.builder import build_pcs
from tests.conftest import submit
from tests.policy.conftest import publish

ESCALATE_DEGRADED_SHARD = {
    "name": "canary_shard",
    "expr": "pcs.shard_id.startsWith('canary-') && recomputed.D_hat > 1.5",
    "action": "escalate",
    "message": "canary shards need a human look",
}
REJECT_RETRIES = {
    "name": "too_many_retries",
    "expr": "pcs.attempt > 3",
    "action": "reject",
    "message": "more than 3 attempts: the agent is looping",
}


@pytest.fixture
def ruled(api, policy_token):
    publish(api, policy_token, "2.0.0", rules=[ESCALATE_DEGRADED_SHARD, REJECT_RETRIES])


def test_an_escalate_rule_escalates_with_its_name_and_message(api, ruled, pcs_factory):
    response = submit(api, pcs_factory(epoch=1, shard_id="canary-7"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["reason"] == "rule:canary_shard" and body["policy_version"] == "2.0.0"
    check = next(c for c in body["checks"] if c["name"] == "rule:canary_shard")
    assert check == {
        "name": "rule:canary_shard",
        "verdict": "fail",
        "detail": "canary shards need a human look",
    }
    assert PcsRecord.objects.get(pcs_id=body["pcs_id"]).policy_version == "2.0.0"


def test_a_reject_rule_refuses_400_and_the_refusal_is_a_recorded_decision(api, ruled, pcs_factory):
    pcs = pcs_factory(epoch=2, attempt=4)
    response = submit(api, pcs)
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["field"]) == ("policy_rejected", "rule:too_many_retries")
    assert body["detail"] == "more than 3 attempts: the agent is looping"
    entry = AuditEntry.objects.get(kind="decision", pcs_id=pcs["pcs_id"])
    assert (entry.status, entry.reason, entry.policy_version) == (
        400,
        "policy_rejected:rule:too_many_retries",
        "2.0.0",
    )
    replay = submit(api, pcs)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.text == response.text
    assert audit_pending()["dead_lettered"] == 0  # the async audit reaches the same decision


def test_a_pcs_no_rule_matches_is_accepted_with_each_rule_checked(api, ruled, pcs_factory):
    body = submit(api, pcs_factory(epoch=3)).json()
    verdicts = {c["name"]: c["verdict"] for c in body["checks"]}
    assert verdicts["rule:canary_shard"] == verdicts["rule:too_many_retries"] == "pass"
    assert body["accepted"] is True


def test_a_rule_that_cannot_run_escalates(api, policy_token, pcs_factory):
    rule = {"name": "key_pinned", "expr": "pcs.key_id == 'k-2026'", "action": "reject", "message": "old key"}
    publish(api, policy_token, "2.1.0", rules=[rule])
    body = submit(api, pcs_factory(epoch=4)).json()  # no key_id: the rule cannot be evaluated
    assert body["escalated"] is True and body["reason"] == "rule_error:key_pinned"


def _cloud_pcs(signer, points: np.ndarray, epoch: int, raw_seed: int) -> dict:
    return build_pcs(
        points=points,
        raw=np.random.default_rng(raw_seed).bytes(4096),
        shard_id="history",
        epoch=epoch,
        seed=3,
        signer=signer,
    )


def test_an_outlier_against_the_tenants_history_is_rejected(api, signer):
    for epoch in range(25):  # uniform clouds in the square: D̂ ≈ 2
        pcs = _cloud_pcs(signer, np.random.default_rng(epoch).random((2000, 2)), epoch, epoch)
        assert submit(api, pcs).status_code == 200
    t = np.random.default_rng(99).random(2000)
    line = np.column_stack([t, 0.5 * t])  # a segment: D̂ ≈ 1, far outside the history
    response = submit(api, _cloud_pcs(signer, line, 100, 100))
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["field"]) == ("anomaly_rejected", "anomaly")
    assert body["anomaly_score"] >= 0.8


def test_soft_violations_raise_the_score_and_the_alert_level_is_a_policy_parameter(
    api, policy_token, pcs_factory
):
    # Two soft violations (claimed D̂ and budget disagree) with no history: 1 - 0.75^2 = 0.4375.
    wrong = {"D_hat": 1.2, "budget": 0.9}
    body = submit(api, pcs_factory(epoch=5, **wrong)).json()
    assert body["anomaly_score"] == 0.4375
    assert "anomaly_alert" not in body["reason"]  # below the built-in alert level 0.5
    publish(api, policy_token, "2.2.0", params={"anomaly_alert": 0.4})
    body = submit(api, pcs_factory(epoch=6, **wrong)).json()
    assert body["anomaly_score"] == 0.4375 and "anomaly_alert" in body["reason"].split(",")
