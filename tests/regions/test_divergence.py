"""Divergence and reconciliation: PCS decided in one region only, and PCS decided differently in both
(different policies while the regions did not talk), converge to one final outcome per PCS in both
regions; each true conflict is settled by the earliest receive time and audited in both."""

from __future__ import annotations

import json

from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs.services import pcs_submit
from apps.regions.models import Settlement
from apps.regions.shipping import crr_ship

# Region B runs a stricter policy: every PCS is escalated there.
STRICT_POLICY_AND_SUBMIT = """
import json
from django.utils import timezone
from apps.pcs.services import pcs_submit
from apps.policy.services import policy_activate, policy_create
from apps.tenants.services import tenant_ensure_default
tenant = tenant_ensure_default()
rule = {"name": "all", "expr": "pcs.epoch > 0", "action": "escalate", "message": "strict region"}
policy = policy_create(tenant=tenant, name="strict", version="2.0.0", params={}, rules=[rule], actor="ops@b")
policy_activate(policy=policy, actor="ops@b")
result = [
    pcs_submit(body=body.encode(), tenant_header=None, received_at=timezone.now()).status
    for body in json.loads(BODIES)
]
"""


def _final(region, pcs_id: str) -> int:
    rows = region.query(
        "SELECT coalesce((SELECT s.status_code FROM regions_settlement s WHERE s.pcs_id = r.pcs_id), "
        "r.status_code) FROM pcs_pcsrecord r WHERE r.pcs_id = %s",
        (pcs_id,),
    )
    assert len(rows) == 1, f"{pcs_id}: {len(rows)} records"
    return rows[0][0]


def test_missing_and_conflicting_decisions_reconcile_to_one_outcome_audited_in_both(
    regions, tenant, pcs_factory
):
    a, b = regions
    both, only_a, only_b = pcs_factory(epoch=1), pcs_factory(epoch=2), pcs_factory(epoch=3)
    bodies = json.dumps([json.dumps(both), json.dumps(only_b)])
    assert b.shell.run("exec", f"BODIES = {bodies!r}\n" + STRICT_POLICY_AND_SUBMIT) == [202, 202]
    for pcs in (both, only_a):  # A receives ``both`` after B did, and accepts it
        answer = pcs_submit(body=json.dumps(pcs).encode(), tenant_header=None, received_at=timezone.now())
        assert answer.status == 200
    crr_ship()
    b.crr("ship")  # the chunks are in the buckets; neither region has pulled them

    rounds = []
    for _ in range(8):
        mine, theirs = a.crr("reconcile"), b.crr("reconcile")
        rounds.append((mine, theirs))
        done = [r for r in mine + theirs if r["peer_known"] and r["share"] == 0 and not r["conflicts"]]
        if len(done) == 2 and not any(r["missing_here"] or r["missing_there"] for r in mine + theirs):
            break
    else:
        raise AssertionError(f"no convergence: {rounds}")
    print(f"\nreconciled in {len(rounds)} rounds (each region's reconcile once per round)")

    ids = [both["pcs_id"], only_a["pcs_id"], only_b["pcs_id"]]
    for pcs_id in ids:  # one record per PCS per region, and one final outcome, the same in both
        assert _final(a, pcs_id) == _final(b, pcs_id)
    # The PCS both received: B received it first, so B's outcome (escalated) is final in both.
    assert _final(a, both["pcs_id"]) == 202
    # Replayed copies keep the receive time: the first-hand decision wins (only_b escalated in B).
    assert (_final(a, only_a["pcs_id"]), _final(a, only_b["pcs_id"])) == (200, 202)
    settled = Settlement.objects.get(pcs_id=both["pcs_id"])
    assert settled.conflict and settled.winner_region == "b"
    # Records are never rewritten: A's own decision is still there, superseded.
    assert a.query("SELECT status_code FROM pcs_pcsrecord WHERE pcs_id = %s", (both["pcs_id"],)) == [(200,)]

    # Every conflict is a "reconciliation" audit entry in both regions, with both outcomes.
    conflicts_a = {s.pcs_id for s in Settlement.objects.filter(conflict=True)}
    entries_a = {e.pcs_id: e.details for e in AuditEntry.objects.filter(kind="reconciliation")}
    entries_b = dict(b.query("SELECT pcs_id, details FROM audit_auditentry WHERE kind = 'reconciliation'"))
    assert both["pcs_id"] in conflicts_a
    assert set(entries_a) == conflicts_a == set(entries_b)
    for details in (entries_a[both["pcs_id"]], entries_b[both["pcs_id"]]):
        assert details["winner_region"] == "b" and details["final_status"] == 202
        assert {k: v["status"] for k, v in details["outcomes"].items()} == {"a": 200, "b": 202}
    # The last comparison on each side: nothing differs.
    assert a.crr("diff")[0]["share"] == 0.0 and b.crr("diff")[0]["share"] == 0.0
