"""Re-verification of decision entries, registered with the async audit (``apps.audit.reverify``).

A decision entry is checked against its stored record, and the record is verified again from scratch:
the stored PCS must hash to the digest it was decided under, its signature must verify with the keys
valid when it was received, its VRF proof with the key in effect then (read from the tenant's audit
log), and deciding it again (``apps.policy.decide``, under its recorded policy version, with the
anomaly score and flags it recorded) must give the same status, reason, D̂, regime and budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.audit.models import AuditEntry
from apps.audit.reverify import Finding, VrfSetting, vrf_history
from apps.pcs import tiers
from apps.pcs.models import PcsRecord
from apps.policy.decide import decide
from apps.policy.errors import PolicyRefusal
from apps.policy.selection import policy_for_version
from apps.tenants.selectors import verification_keys_for
from flk_agent import vrf
from flk_agent.pcs import payload_digest
from flk_agent.signing import verify_signature

DECISION_KIND = "decision"


@dataclass(frozen=True)
class DecisionContext:
    """What checking a batch of one tenant's decision entries needs."""

    records: dict[str, PcsRecord]
    vrf_settings: list[VrfSetting]
    # Records whose cold copy failed its digest: a finding, never re-verified from damaged bytes.
    corrupt: set[str] = field(default_factory=set)


def _first_difference(pairs: dict[str, tuple[object, object]]) -> tuple[str, object, object] | None:
    for name, (first, second) in pairs.items():
        if first != second:
            return name, first, second
    return None


def _vrf_finding(pcs: dict, seq: int, history: list[VrfSetting]) -> Finding | None:
    setting = next((s for s in reversed(history) if s.seq < seq), None)
    if setting is None:
        return None  # no VRF was ever configured before this decision
    if pcs.get("vrf_proof") is None:
        return (
            Finding("vrf_invalid", "the tenant required a VRF proof and the PCS has none")
            if setting.required
            else None
        )
    if not setting.public_key_hex:
        return None
    try:
        vrf.verify_pcs(bytes.fromhex(setting.public_key_hex), pcs)
    except vrf.VrfError as exc:
        return Finding("vrf_invalid", f"under the key in effect since entry {setting.seq}: {exc}")
    return None


def recorded_flags(entry: AuditEntry, record: PcsRecord) -> list[str]:
    """The flags a decision recorded: from its entry's details; before details existed, its reason."""
    if entry.details:
        return list(entry.details.get("flags", []))
    return [part for part in record.reason.split(",") if part.startswith("pii:")]


def decision_reverify(
    entry: AuditEntry, record: PcsRecord | None, vrf_settings: list[VrfSetting] | None = None
) -> Finding | None:
    """Check a decision entry against its record and decide the record again; None when all agree.

    ``vrf_settings`` is the tenant's ``vrf_history`` (read here when not given).
    """
    if record is None:
        return Finding("record_missing", f"no PCS record {entry.pcs_id!r} for this decision")
    answered = {
        "audit_entry_id": (record.audit_entry_id, entry.id),
        "status": (record.status_code, entry.status),
        "reason": (record.reason, entry.reason),
        "policy_version": (record.policy_version, entry.policy_version),
        "payload_digest": (record.payload_digest, entry.request_digest),
    }
    differs = _first_difference(answered)
    if differs is not None:
        name, stored, logged = differs
        return Finding("record_mismatch", f"record {name} {stored!r} but the audit entry says {logged!r}")
    pcs = record.pcs
    if payload_digest(pcs).hex() != record.payload_digest:
        return Finding("digest_mismatch", "the stored PCS does not hash to the digest it was decided under")
    keys = verification_keys_for(tenant=record.tenant, key_id=pcs.get("key_id"), at=record.received_at)
    if not any(
        verify_signature(key.alg, key.key, bytes.fromhex(record.payload_digest), pcs["sig"]) for key in keys
    ):
        return Finding(
            "signature_invalid",
            f"no key valid at {record.received_at.isoformat()} (key_id {pcs.get('key_id')!r}) verifies it",
        )
    history = vrf_settings if vrf_settings is not None else vrf_history(record.tenant_id)
    vrf_problem = _vrf_finding(pcs, entry.seq, history)
    if vrf_problem is not None:
        return vrf_problem
    try:
        judgement = decide(
            pcs=pcs,
            tenant=record.tenant,
            received_at=record.received_at,
            params=policy_for_version(tenant_id=record.tenant_id, version=record.policy_version),
            recorded_anomaly_score=record.anomaly_score if record.anomaly_score is not None else 0.0,
            recorded_flags=recorded_flags(entry, record),
        )
    except PolicyRefusal as exc:
        return Finding("decision_differs", f"it now fails the sanity check: {exc.detail}")
    evaluation = judgement.evaluation
    recomputed = {
        "status": (record.status_code, judgement.status),
        "reason": (record.reason, judgement.reason),
        "D_hat": (record.d_hat, evaluation.d_hat),
        "regime": (record.regime, evaluation.regime),
        "budget": (record.budget, evaluation.budget),
    }
    differs = _first_difference(recomputed)
    if differs is not None:
        name, stored, again = differs
        return Finding("decision_differs", f"stored {name} {stored!r}, recomputed {again!r}")
    return None


class DecisionVerifier:
    """The async audit's check of ``decision`` entries."""

    def load(self, tenant_id: int, entries: list[AuditEntry]) -> DecisionContext:
        pcs_ids = [e.pcs_id for e in entries if e.kind == DECISION_KIND]
        corrupt: set[str] = set()
        try:  # warm, then cold (apps.pcs.tiers)
            records = tiers.records_lookup(tenant_id=tenant_id, pcs_ids=pcs_ids)
        except tiers.TierCorrupt:
            records = {}
            for pcs_id in pcs_ids:  # one at a time, to tell which ones are damaged
                try:
                    record = tiers.record_lookup(tenant_id=tenant_id, pcs_id=pcs_id, promote=False)
                except tiers.TierCorrupt:
                    corrupt.add(pcs_id)
                    continue
                if record is not None:
                    records[pcs_id] = record
        return DecisionContext(records, vrf_history(tenant_id), corrupt)

    def check(self, entry: AuditEntry, loaded: Any) -> Finding | None:
        context: DecisionContext = loaded
        if entry.pcs_id in context.corrupt:
            return Finding("record_corrupt", f"the cold copy of {entry.pcs_id!r} failed its SHA-256 check")
        return decision_reverify(entry, context.records.get(entry.pcs_id), context.vrf_settings)
