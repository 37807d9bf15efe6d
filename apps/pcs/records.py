"""Writing a decision: its audit entry and its ``PcsRecord``, atomically.

On PostgreSQL both rows go in one statement (a data-modifying CTE): one round trip, no explicit
transaction, and none of the ORM's per-insert work. Profiling the ingest path showed the two ORM inserts
inside ``atomic()`` at about a third of a request's CPU; the statement halves that. Other databases
(the embedded SQLite) take the ORM path, which writes the same rows.

The stored answer is the exact JSON text returned to the agent, with ``audit_index`` as its last key,
so that PostgreSQL can complete it with the entry id it has just assigned.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.audit.services import audit_append
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
    return f"""
        WITH entry AS (
            INSERT INTO {audit} (tenant_id, kind, pcs_id, status, reason, policy_version,
                                 request_digest, actor, created_at)
            VALUES (%(tenant_id)s, %(kind)s, %(pcs_id)s, %(status)s, %(reason)s, %(policy_version)s,
                    %(digest)s, %(actor)s, %(now)s)
            RETURNING id
        )
        INSERT INTO {record} (tenant_id, pcs_id, payload_digest, shard_id, epoch, pcs, status_code,
                              accepted, escalated, reason, policy_version, d_hat, regime, budget,
                              response, audit_entry_id, received_at, decided_at)
        SELECT %(tenant_id)s, %(pcs_id)s, %(digest)s, %(shard_id)s, %(epoch)s, %(pcs)s::jsonb,
               %(status)s, %(accepted)s, %(escalated)s, %(reason)s, %(policy_version)s, %(d_hat)s,
               %(regime)s, %(budget)s, %(response_head)s || entry.id::text || '}}', entry.id,
               %(received_at)s, %(now)s
        FROM entry
        RETURNING audit_entry_id
    """


_SQL: str | None = None


def decision_insert(*, decision: Decision, body: dict[str, Any], single_statement: bool | None = None) -> int:
    """Store the decision and its audit entry; set ``body["audit_index"]`` and return it.

    Raises ``IntegrityError`` when the PCS was already decided (the unique constraint), in which case
    nothing is written. ``single_statement`` defaults to "on PostgreSQL".
    """
    if single_statement is None:
        single_statement = connection.vendor == "postgresql"
    body.pop("audit_index", None)
    index = _insert_single_statement(decision, body) if single_statement else _insert_with_orm(decision, body)
    body["audit_index"] = index
    return index


def _insert_single_statement(decision: Decision, body: dict[str, Any]) -> int:
    global _SQL
    if _SQL is None:
        _SQL = _single_statement_sql()
    encoded = encode_body(body)
    pcs = decision.pcs
    params = {
        "tenant_id": decision.tenant_id,
        "kind": DECISION_KIND,
        "pcs_id": pcs["pcs_id"],
        "status": decision.status,
        "reason": decision.reason,
        "policy_version": decision.policy_version,
        "digest": decision.digest,
        "actor": decision.actor,
        "now": timezone.now(),
        "shard_id": pcs["shard_id"],
        "epoch": pcs["epoch"],
        "pcs": json.dumps(pcs, ensure_ascii=False),
        "accepted": decision.status == 200,
        "escalated": decision.status == 202,
        "d_hat": decision.d_hat,
        "regime": decision.regime,
        "budget": decision.budget,
        # {"a":1} -> {"a":1,"audit_index":  and the database appends  <id>}
        "response_head": encoded[:-1] + ',"audit_index":',
        "received_at": decision.received_at,
    }
    # A raw psycopg cursor binds parameters on the server, so psycopg prepares the statement after a
    # few executions; Django's cursor would quote every value in Python and re-plan each time.
    # Alone, the statement is its own transaction; inside a caller's transaction it takes a savepoint,
    # so that a duplicate leaves the caller's transaction usable.
    scope = transaction.atomic() if connection.in_atomic_block else nullcontext()
    connection.ensure_connection()
    with scope, connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(_SQL, params)
        return cursor.fetchone()[0]


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
            response=encode_body({**body, "audit_index": entry.pk}),
            audit_entry_id=entry.pk,
            received_at=decision.received_at,
        )
    return entry.pk
