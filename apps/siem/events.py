"""What a SIEM receives for one audit entry: an idempotent event id and a body of the entry's facts.

The id is a function of (tenant, seq, entry hash) only, so every redelivery of an entry carries the same
id: Elasticsearch refuses the second ``create`` of it, and a Splunk or Datadog search can drop repeats
with ``dedup event_id``. The body holds what the entry holds, never a secret or a raw PCS payload (the
log stores neither).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.audit.models import AuditEntry

# 16 hex digits (64 bits) of the entry hash tell two logs' entry N apart (a rebuilt test installation,
# a restored backup) while keeping the id short enough for every vendor's id field.
HASH_PREFIX = 16


@dataclass(frozen=True)
class Event:
    """One event as sent: its id, the entry's index, when it happened (unix seconds) and its body."""

    event_id: str
    seq: int
    time: float
    body: dict[str, Any]


def event_id(*, tenant_slug: str, seq: int, entry_hash: str) -> str:
    """The deterministic id of a tenant's entry ``seq``: ``<tenant>:<seq>:<first 16 hex of its hash>``."""
    return f"{tenant_slug}:{seq}:{entry_hash[:HASH_PREFIX]}"


def event_from_entry(entry: AuditEntry, *, tenant_slug: str) -> Event:
    """The event of one audit entry."""
    eid = event_id(tenant_slug=tenant_slug, seq=entry.seq, entry_hash=entry.entry_hash)
    body = {
        "event_id": eid,
        "tenant": tenant_slug,
        "seq": entry.seq,
        "kind": entry.kind,
        "pcs_id": entry.pcs_id,
        "status": entry.status,
        "reason": entry.reason,
        "actor": entry.actor,
        "policy_version": entry.policy_version,
        "created_at": entry.created_at.isoformat(),
        "entry_hash": entry.entry_hash,
        "prev_hash": entry.prev_hash,
        "details": entry.details,
    }
    return Event(eid, entry.seq, entry.created_at.timestamp(), body)
