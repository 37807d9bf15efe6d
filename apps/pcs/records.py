"""Writing a decision: its audit entry and its ``PcsRecord``, atomically.

On PostgreSQL one statement (data-modifying CTEs) advances the tenant's audit log head, computes the
chain link, and inserts the entry and the record: the head row is locked only from that statement to
commit, with no Python work in between, and none of the ORM's per-insert work is paid. Other databases
(the embedded SQLite) take the ORM path through ``audit_append``, which writes the same rows.

The stored answer is the exact JSON text returned to the agent, replayed byte for byte.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.chain import content_hash, entry_content
from apps.audit.models import AuditEntry, AuditLogHead
from apps.audit.services import audit_append, audit_head_ensure
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

    @property
    def inputs_digest(self) -> str:
        """Digest of the unsigned fields the decision read (see ``apps.pcs.identity``)."""
        return inputs_digest(self.pcs)


def _single_statement_sql() -> str:
    audit = AuditEntry._meta.db_table
    record = PcsRecord._meta.db_table
    head = AuditLogHead._meta.db_table
    # One statement: advance the tenant's log head (the UPDATE locks the row only until commit, and
    # its SET sees the old last_hash, so the link is computed here), insert the entry at the head's
    # old size, insert the record that points at it. RETURNING of an UPDATE gives the new row.
    return f"""
        WITH head AS (
            UPDATE {head}
            SET size = size + 1, prev_hash = last_hash,
                last_hash = encode(sha256(decode(last_hash, 'hex') || decode(%(content_hash)s, 'hex')), 'hex')
            WHERE tenant_id = %(tenant_id)s
            RETURNING size - 1 AS seq, prev_hash, last_hash AS entry_hash
        ), entry AS (
            INSERT INTO {audit} (tenant_id, kind, pcs_id, status, reason, policy_version,
                                 request_digest, actor, created_at, seq, prev_hash, entry_hash)
            SELECT %(tenant_id)s, %(kind)s, %(pcs_id)s, %(status)s, %(reason)s, %(policy_version)s,
                   %(request_digest)s, %(actor)s, %(created_at)s, seq, prev_hash, entry_hash
            FROM head
            RETURNING id, seq
        ), rec AS (
            INSERT INTO {record} (tenant_id, pcs_id, payload_digest, inputs_digest, shard_id, epoch, pcs,
                                  status_code,
                                  accepted, escalated, reason, policy_version, d_hat, regime, budget,
                                  anomaly_score, response, audit_entry_id, received_at, decided_at)
            SELECT %(tenant_id)s, %(pcs_id)s, %(request_digest)s, %(inputs_digest)s, %(shard_id)s, %(epoch)s,
                   %(pcs)s::jsonb,
                   %(status)s, %(accepted)s, %(escalated)s, %(reason)s, %(policy_version)s, %(d_hat)s,
                   %(regime)s, %(budget)s, %(anomaly_score)s,
                   %(response_head)s || entry.seq::text || '}}', entry.id,
                   %(received_at)s, %(created_at)s
            FROM entry
            RETURNING 1
        )
        SELECT entry.seq FROM entry, rec
    """


_SQL: str | None = None


def decision_insert(*, decision: Decision, body: dict[str, Any], single_statement: bool | None = None) -> int:
    """Store the decision with its chained audit entry; set ``body["audit_index"]`` and return it.

    The audit index is the entry's position in the tenant's log, the last key of the stored answer.
    Raises ``IntegrityError`` when the PCS was already decided (the unique constraint), in which case
    nothing is written. ``single_statement`` defaults to "on PostgreSQL".
    """
    if single_statement is None:
        single_statement = connection.vendor == "postgresql"
    body.pop("audit_index", None)
    seq = _insert_single_statement(decision, body) if single_statement else _insert_with_orm(decision, body)
    body["audit_index"] = seq
    return seq


def _insert_single_statement(decision: Decision, body: dict[str, Any]) -> int:
    global _SQL
    if _SQL is None:
        _SQL = _single_statement_sql()
    pcs = decision.pcs
    created_at = timezone.now()
    content = entry_content(
        tenant_id=decision.tenant_id,
        kind=DECISION_KIND,
        actor=decision.actor,
        created_at=created_at,
        pcs_id=pcs["pcs_id"],
        status=decision.status,
        reason=decision.reason,
        policy_version=decision.policy_version,
        request_digest=decision.digest,
    )
    params = {
        "tenant_id": decision.tenant_id,
        "kind": DECISION_KIND,
        "pcs_id": pcs["pcs_id"],
        "status": decision.status,
        "reason": decision.reason,
        "policy_version": decision.policy_version,
        "request_digest": decision.digest,
        "inputs_digest": decision.inputs_digest,
        "actor": decision.actor,
        "created_at": created_at,
        "content_hash": content_hash(content),
        "shard_id": pcs["shard_id"],
        "epoch": pcs["epoch"],
        "pcs": json.dumps(pcs, ensure_ascii=False),
        "accepted": decision.status == 200,
        "escalated": decision.status == 202,
        "d_hat": decision.d_hat,
        "regime": decision.regime,
        "budget": decision.budget,
        "anomaly_score": decision.anomaly_score,
        # {"a":1} -> {"a":1,"audit_index":  and the statement appends  <seq>}
        "response_head": encode_body(body)[:-1] + ',"audit_index":',
        "received_at": decision.received_at,
    }
    # A raw psycopg cursor binds parameters on the server, so psycopg prepares the statement after a
    # few executions; Django's cursor would quote every value in Python and re-plan each time. Inside
    # a caller's transaction the statement takes a savepoint, so a duplicate leaves that usable.
    for _ in range(2):
        scope = transaction.atomic() if connection.in_atomic_block else nullcontext()
        connection.ensure_connection()
        with scope, connection.wrap_database_errors, connection.connection.cursor() as cursor:
            cursor.execute(_SQL, params)
            row = cursor.fetchone()
        if row is not None:
            return row[0]
        audit_head_ensure(tenant_id=decision.tenant_id)  # the tenant's first entry: create its head
    raise RuntimeError("the audit log head could not be created")


def _insert_with_orm(decision: Decision, body: dict[str, Any]) -> int:
    pcs = decision.pcs
    with transaction.atomic():
        entry = audit_append(
            tenant_id=decision.tenant_id,
            kind=DECISION_KIND,
            actor=decision.actor,
            pcs_id=pcs["pcs_id"],
            status=decision.status,
            reason=decision.reason,
            policy_version=decision.policy_version,
            request_digest=decision.digest,
        )
        PcsRecord.objects.create(
            tenant_id=decision.tenant_id,
            pcs_id=pcs["pcs_id"],
            payload_digest=decision.digest,
            inputs_digest=decision.inputs_digest,
            shard_id=pcs["shard_id"],
            epoch=pcs["epoch"],
            pcs=pcs,
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
    return entry.seq
