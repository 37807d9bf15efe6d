"""Writing a decision: its audit entry and its ``PcsRecord``, atomically.

The tenant's audit log head is locked and the entry chained to it (apps.audit.services), then on
PostgreSQL both rows go in one statement (a data-modifying CTE) without the ORM's per-insert work:
profiling the ingest path showed the two ORM inserts at about a third of a request's CPU. Other
databases (the embedded SQLite) take the ORM path, which writes the same rows.

The stored answer is the exact JSON text returned to the agent, replayed byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from apps.audit.models import AuditEntry, AuditLogHead
from apps.audit.services import PreparedEntry, audit_finish, audit_prepare, head_after
from apps.pcs.errors import encode_body
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


def _single_statement_sql() -> str:
    audit = AuditEntry._meta.db_table
    record = PcsRecord._meta.db_table
    head = AuditLogHead._meta.db_table
    return f"""
        WITH head AS (
            UPDATE {head}
            SET size = %(head_size)s, last_hash = %(head_last_hash)s, edge = %(head_edge)s::jsonb
            WHERE tenant_id = %(tenant_id)s
        ), entry AS (
            INSERT INTO {audit} (tenant_id, kind, pcs_id, status, reason, policy_version,
                                 request_digest, actor, created_at, seq, prev_hash, entry_hash)
            VALUES (%(tenant_id)s, %(kind)s, %(pcs_id)s, %(status)s, %(reason)s, %(policy_version)s,
                    %(request_digest)s, %(actor)s, %(created_at)s, %(seq)s, %(prev_hash)s, %(entry_hash)s)
            RETURNING id
        )
        INSERT INTO {record} (tenant_id, pcs_id, payload_digest, shard_id, epoch, pcs, status_code,
                              accepted, escalated, reason, policy_version, d_hat, regime, budget,
                              response, audit_entry_id, received_at, decided_at)
        SELECT %(tenant_id)s, %(pcs_id)s, %(request_digest)s, %(shard_id)s, %(epoch)s, %(pcs)s::jsonb,
               %(status)s, %(accepted)s, %(escalated)s, %(reason)s, %(policy_version)s, %(d_hat)s,
               %(regime)s, %(budget)s, %(response)s, entry.id, %(received_at)s, %(created_at)s
        FROM entry
        RETURNING audit_entry_id
    """


_SQL: str | None = None


def decision_insert(*, decision: Decision, body: dict[str, Any], single_statement: bool | None = None) -> int:
    """Store the decision with its chained audit entry; set ``body["audit_index"]`` and return it.

    The audit index is the entry's position in the tenant's log. Raises ``IntegrityError`` when the
    PCS was already decided (the unique constraint), in which case nothing is written.
    ``single_statement`` defaults to "on PostgreSQL".
    """
    if single_statement is None:
        single_statement = connection.vendor == "postgresql"
    pcs = decision.pcs
    with transaction.atomic():
        prepared = audit_prepare(
            tenant_id=decision.tenant_id,
            kind=DECISION_KIND,
            actor=decision.actor,
            pcs_id=pcs["pcs_id"],
            status=decision.status,
            reason=decision.reason,
            policy_version=decision.policy_version,
            request_digest=decision.digest,
        )
        body.pop("audit_index", None)
        body["audit_index"] = prepared.seq
        if single_statement:  # advances the head in the same statement
            _insert_single_statement(decision, body, prepared)
        else:
            _insert_with_orm(decision, body, prepared)
            audit_finish(prepared)
    return prepared.seq


def _insert_single_statement(decision: Decision, body: dict[str, Any], prepared: PreparedEntry) -> None:
    global _SQL
    if _SQL is None:
        _SQL = _single_statement_sql()
    pcs = decision.pcs
    head = head_after(prepared)
    params = {
        **prepared.values,
        "head_size": head["size"],
        "head_last_hash": head["last_hash"],
        "head_edge": json.dumps(head["edge"]),
        "shard_id": pcs["shard_id"],
        "epoch": pcs["epoch"],
        "pcs": json.dumps(pcs, ensure_ascii=False),
        "accepted": decision.status == 200,
        "escalated": decision.status == 202,
        "d_hat": decision.d_hat,
        "regime": decision.regime,
        "budget": decision.budget,
        "response": encode_body(body),
        "received_at": decision.received_at,
    }
    # A raw psycopg cursor binds parameters on the server, so psycopg prepares the statement after a
    # few executions; Django's cursor would quote every value in Python and re-plan each time. A
    # duplicate rolls back the surrounding atomic() block, head lock and all.
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(_SQL, params)


def _insert_with_orm(decision: Decision, body: dict[str, Any], prepared: PreparedEntry) -> None:
    pcs = decision.pcs
    entry = AuditEntry.objects.create(**prepared.values)
    PcsRecord.objects.create(
        tenant_id=decision.tenant_id,
        pcs_id=pcs["pcs_id"],
        payload_digest=decision.digest,
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
        response=encode_body(body),
        audit_entry_id=entry.pk,
        received_at=decision.received_at,
    )
