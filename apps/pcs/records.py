"""Writing decisions: their audit entries (through ``apps.audit.appender``) and their ``PcsRecord`` rows.

A group of decisions of one tenant is written under one lock of the tenant's audit head: on PostgreSQL
in one statement that composes the appender's CTEs with the records' insert (every column passed as an
array, so the statement text is the same for 1 or 1,000 decisions and psycopg prepares it once); on other
databases (the embedded SQLite) through the ORM, with the same rows.

The stored answer is the exact JSON text returned to the agent, replayed byte for byte.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.audit.appender import EntryDraft, append_statement, audit_append_many, chain, head_lock
from apps.pcs.errors import encode_body
from apps.pcs.identity import inputs_digest
from apps.pcs.models import PcsRecord

DECISION_KIND = "decision"


@dataclass(frozen=True)
class Decision:
    """Everything stored about one decided PCS, except the audit index it is about to get."""

    tenant_id: int
    pcs: dict[str, Any]
    digest: str
    status: int
    reason: str
    policy_version: str
    d_hat: float
    regime: str
    budget: float
    received_at: datetime
    actor: str
    anomaly_score: float | None = None
    # What the decision entry commits to besides its columns: recomputed values, check verdicts, flags.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs_digest(self) -> str:
        """Digest of the unsigned fields the decision read (see ``apps.pcs.identity``)."""
        return inputs_digest(self.pcs)

    def draft(self) -> EntryDraft:
        """The audit entry of this decision."""
        return EntryDraft(
            kind=DECISION_KIND,
            actor=self.actor,
            pcs_id=self.pcs["pcs_id"],
            status=self.status,
            reason=self.reason,
            policy_version=self.policy_version,
            request_digest=self.digest,
            details=self.details,
        )


Written = tuple[Decision, dict[str, Any]]  # a decision and the answer body it stores


def decision_insert(*, decision: Decision, body: dict[str, Any], single_statement: bool | None = None) -> int:
    """Store one decision with its chained audit entry; set ``body["audit_index"]`` and return it.

    Raises ``IntegrityError`` when the PCS was already decided (the unique constraint), in which case
    nothing is written. ``single_statement`` defaults to "on PostgreSQL".
    """
    with transaction.atomic():
        return _insert_group(decision.tenant_id, [(decision, body)], single_statement)[0]


def decisions_insert(*, written: Sequence[Written], isolate_conflicts: bool = True) -> list[int | None]:
    """Store a group of decisions, one head lock per tenant; each one's audit index, in order.

    A decision whose PCS already has a record gets None and nothing is written for it; the others are
    written all the same. Must run inside the caller's transaction. Isolating conflicts costs a
    savepoint per tenant (two more round trips); without it a conflict raises ``IntegrityError`` and
    spoils the caller's transaction, for callers that rarely meet one and retry with isolation.
    """
    results: list[int | None] = [None] * len(written)
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for index, (decision, _) in enumerate(written):
        by_tenant[decision.tenant_id].append(index)
    for tenant_id, indices in sorted(by_tenant.items()):  # one lock order: no deadlock between groups
        if not isolate_conflicts:
            seqs = _insert_group(tenant_id, [written[i] for i in indices])
            for i, seq in zip(indices, seqs, strict=True):
                results[i] = seq
            continue
        try:
            with transaction.atomic():
                seqs: list[int | None] = list(_insert_group(tenant_id, [written[i] for i in indices]))
        except IntegrityError:
            # Rare: a PCS decided concurrently behind the hot store's back. One at a time, each in
            # its own savepoint, so only that one is left out.
            seqs = []
            for i in indices:
                try:
                    with transaction.atomic():
                        seqs.append(_insert_group(tenant_id, [written[i]])[0])
                except IntegrityError:
                    seqs.append(None)
        for i, seq in zip(indices, seqs, strict=True):
            results[i] = seq
    return results


def _insert_group(
    tenant_id: int, group: Sequence[Written], single_statement: bool | None = None
) -> list[int]:
    if single_statement is None:
        single_statement = connection.vendor == "postgresql"
    for _, body in group:
        body.pop("audit_index", None)
    seqs = _insert_composed(tenant_id, group) if single_statement else _insert_with_orm(tenant_id, group)
    for (_, body), seq in zip(group, seqs, strict=True):
        body["audit_index"] = seq
    return seqs


def _records_sql() -> str:
    record = PcsRecord._meta.db_table
    return f"""
        , rec AS (
            INSERT INTO {record} (tenant_id, pcs_id, payload_digest, inputs_digest, shard_id, epoch, pcs,
                                  status_code, accepted, escalated, reason, policy_version, d_hat, regime,
                                  budget, anomaly_score, response, audit_entry_id, received_at, decided_at)
            SELECT %(audit_tenant)s, r.pcs_id, r.payload_digest, r.inputs_digest, r.shard_id, r.epoch,
                   r.pcs::jsonb, r.status_code, r.status_code = 200, r.status_code = 202, r.reason,
                   r.policy_version, r.d_hat, r.regime, r.budget, r.anomaly_score,
                   r.response_head || entry.seq::text || '}}', entry.id, r.received_at, %(audit_created_at)s
            FROM unnest(%(seq)s::bigint[], %(pcs_id)s::text[], %(payload_digest)s::text[],
                        %(inputs_digest)s::text[], %(shard_id)s::text[], %(epoch)s::bigint[], %(pcs)s::text[],
                        %(status_code)s::int[], %(reason)s::text[], %(policy_version)s::text[],
                        %(d_hat)s::float8[], %(regime)s::text[], %(budget)s::float8[],
                        %(anomaly_score)s::float8[], %(response_head)s::text[],
                        %(received_at)s::timestamptz[])
                 AS r(seq, pcs_id, payload_digest, inputs_digest, shard_id, epoch, pcs, status_code, reason,
                      policy_version, d_hat, regime, budget, anomaly_score, response_head, received_at)
            JOIN entry ON entry.seq = r.seq
            RETURNING 1
        )
        SELECT count(*) FROM rec
    """


def _insert_composed(tenant_id: int, group: Sequence[Written]) -> list[int]:
    chained = chain(
        tenant_id=tenant_id,
        head=head_lock(tenant_id=tenant_id),
        drafts=[decision.draft() for decision, _ in group],
        created_at=timezone.now(),
    )
    audit_sql, params = append_statement(chained)
    decisions = [decision for decision, _ in group]
    params.update(
        seq=[c.seq for c in chained],
        pcs_id=[d.pcs["pcs_id"] for d in decisions],
        payload_digest=[d.digest for d in decisions],
        inputs_digest=[d.inputs_digest for d in decisions],
        shard_id=[d.pcs["shard_id"] for d in decisions],
        epoch=[d.pcs["epoch"] for d in decisions],
        pcs=[json.dumps(d.pcs, ensure_ascii=False) for d in decisions],
        status_code=[d.status for d in decisions],
        reason=[d.reason for d in decisions],
        policy_version=[d.policy_version for d in decisions],
        d_hat=[d.d_hat for d in decisions],
        regime=[d.regime for d in decisions],
        budget=[d.budget for d in decisions],
        anomaly_score=[d.anomaly_score for d in decisions],
        # {"a":1} -> {"a":1,"audit_index":  and the statement appends  <seq>}
        response_head=[encode_body(body)[:-1] + ',"audit_index":' for _, body in group],
        received_at=[d.received_at for d in decisions],
    )
    # A raw psycopg cursor binds parameters on the server, so psycopg prepares the statement after a
    # few executions; Django's cursor would quote every value in Python and re-plan each time. The
    # caller's transaction (``decision_insert``, ``decisions_insert``) rolls back on an error.
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute("WITH " + audit_sql + _records_sql(), params)
        (count,) = cursor.fetchone()
    if count != len(group):
        raise RuntimeError(f"{count} of {len(group)} decision records written")
    return [c.seq for c in chained]


def _insert_with_orm(tenant_id: int, group: Sequence[Written]) -> list[int]:
    entries = audit_append_many(tenant_id=tenant_id, drafts=[decision.draft() for decision, _ in group])
    PcsRecord.objects.bulk_create(
        [
            PcsRecord(
                tenant_id=tenant_id,
                pcs_id=decision.pcs["pcs_id"],
                payload_digest=decision.digest,
                inputs_digest=decision.inputs_digest,
                shard_id=decision.pcs["shard_id"],
                epoch=decision.pcs["epoch"],
                pcs=decision.pcs,
                status_code=decision.status,
                accepted=decision.status == 200,
                escalated=decision.status == 202,
                reason=decision.reason,
                policy_version=decision.policy_version,
                d_hat=decision.d_hat,
                regime=decision.regime,
                budget=decision.budget,
                anomaly_score=decision.anomaly_score,
                response=encode_body({**body, "audit_index": entry.seq}),
                audit_entry_id=entry.pk,
                received_at=decision.received_at,
            )
            for (decision, body), entry in zip(group, entries, strict=True)
        ]
    )
    return [entry.seq for entry in entries]
