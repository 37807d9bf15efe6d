"""Which audit entries are webhook events, and the JSON body each becomes.

``pcs.escalated`` is a ``decision`` entry with status 202; ``review.decided`` is a ``review`` entry
(its facts in ``details``: outcome, reviewer, reason, supersedes_seq, escalated_at,
seconds_to_decision). The event id is derived from the tenant, the entry's index and its hash, so it
is the same on every attempt and every resend, and a receiver drops repeats by it. The body carries
the entry's index and hash: a receiver can ask ``/v1/audit/`` for an inclusion proof of the event.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.webhooks.models import EVENT_PCS_ESCALATED, EVENT_PING, EVENT_REVIEW_DECIDED

# Review facts copied into the event, as the review app writes them into the entry's details.
REVIEW_FACTS = ("outcome", "reviewer", "reason", "supersedes_seq", "escalated_at", "seconds_to_decision")


def event_type_of(entry: AuditEntry) -> str | None:
    """The event an audit entry is, or None for entries no webhook receives."""
    if entry.kind == "decision" and entry.status == 202:
        return EVENT_PCS_ESCALATED
    if entry.kind == "review":
        return EVENT_REVIEW_DECIDED
    return None


def event_id(*, tenant_slug: str, seq: int, entry_hash: str) -> str:
    """``evt_`` and 32 hex digits of SHA-256 over tenant, index and entry hash: stable, never reused."""
    digest = hashlib.sha256(f"{tenant_slug}|{seq}|{entry_hash}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(body: dict[str, Any]) -> str:
    # Compact and in a fixed key order: the stored text is exactly the signed and sent bytes.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def event_body(entry: AuditEntry, *, tenant_slug: str, event_type: str) -> tuple[str, str]:
    """(event id, JSON body) of an audit entry that is an event."""
    if event_type == EVENT_PCS_ESCALATED:
        data: dict[str, Any] = {
            "status": entry.status,
            "reason": entry.reason,
            "policy_version": entry.policy_version,
        }
    else:
        details = entry.details or {}
        data = {name: details.get(name) for name in REVIEW_FACTS}
        if data["reason"] is None:
            data["reason"] = entry.reason
    identifier = event_id(tenant_slug=tenant_slug, seq=entry.seq, entry_hash=entry.entry_hash)
    body = {
        "id": identifier,
        "type": event_type,
        "created_at": _timestamp(entry.created_at),
        "tenant": tenant_slug,
        "pcs_id": entry.pcs_id,
        "data": data,
        "audit": {"seq": entry.seq, "entry_hash": entry.entry_hash},
    }
    return identifier, _encode(body)


def ping_body(*, tenant_slug: str, endpoint_id: str) -> tuple[str, str]:
    """(event id, JSON body) of a test ping: no audit entry behind it, so a random id."""
    identifier = f"evt_ping_{secrets.token_hex(12)}"
    body = {
        "id": identifier,
        "type": EVENT_PING,
        "created_at": _timestamp(timezone.now()),
        "tenant": tenant_slug,
        "pcs_id": "",
        "data": {"endpoint": endpoint_id},
        "audit": None,
    }
    return identifier, _encode(body)
