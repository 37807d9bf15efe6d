"""Audit reads: walking a tenant's chain to prove nothing was changed, removed or reordered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.audit.chain import GENESIS_HASH, content_hash, edge_append, edge_root, entry_content, link_hash
from apps.audit.models import AuditEntry, AuditLogHead, Checkpoint

VERIFY_BATCH = 5_000  # entries read per query: memory stays bounded on long logs


@dataclass
class ChainReport:
    """The outcome of verifying one tenant's log."""

    tenant_id: int
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the chain, the sequence and the Merkle root all hold."""
        return not self.problems


def entry_content_of(entry: AuditEntry) -> dict[str, Any]:
    """The content an entry's hash covers, from its stored columns."""
    return entry_content(
        tenant_id=entry.tenant_id,
        kind=entry.kind,
        actor=entry.actor,
        created_at=entry.created_at,
        pcs_id=entry.pcs_id,
        status=entry.status,
        reason=entry.reason,
        policy_version=entry.policy_version,
        request_digest=entry.request_digest,
        details=entry.details,
    )


def entry_link_problem(entry: AuditEntry, *, expected_seq: int, prev_hash: str) -> str | None:
    """Why ``entry`` does not hold its place after an entry hashed ``prev_hash``; None when it does."""
    where = f"entry id={entry.id} seq={entry.seq}"
    if entry.seq != expected_seq:
        return f"{where}: expected seq {expected_seq} (an entry is missing or moved)"
    if entry.prev_hash != prev_hash:
        return f"{where}: prev_hash does not match the previous entry's hash"
    if link_hash(prev_hash, content_hash(entry_content_of(entry))) != entry.entry_hash:
        return f"{where}: its content does not match its entry_hash (edited)"
    return None


def audit_chain_verify(*, tenant_id: int) -> ChainReport:
    """Recompute every entry hash and link of a tenant's log; name the first broken entry.

    Also checks that the sequence has no gap, that the head agrees with the last entry, and that every
    signed checkpoint's root is the root of the entries it covers, so a deleted or hand-appended row is
    found even if the chain was re-forged after it.
    """
    report = ChainReport(tenant_id)
    # Checkpoint roots are checked as the walk reaches their sizes, on a Merkle right edge kept
    # alongside: O(log n) memory and one pass, however many checkpoints were sealed.
    sealed = dict(Checkpoint.objects.filter(tenant_id=tenant_id).values_list("tree_size", "root_hash"))
    prev, expected_seq, edge = GENESIS_HASH, 0, []
    while True:
        batch = list(
            AuditEntry.objects.filter(tenant_id=tenant_id, seq__gte=expected_seq).order_by("seq")[
                :VERIFY_BATCH
            ]
        )
        if not batch:
            break
        for entry in batch:
            problem = entry_link_problem(entry, expected_seq=expected_seq, prev_hash=prev)
            if problem is not None:
                report.problems.append(problem)
                return report
            edge = edge_append(edge, expected_seq, entry.entry_hash)
            prev, expected_seq = entry.entry_hash, expected_seq + 1
            report.entries += 1
            if expected_seq in sealed and edge_root(edge).hex() != sealed.pop(expected_seq):
                report.problems.append(f"checkpoint at size {expected_seq} does not match the entries")
                return report
    head = AuditLogHead.objects.filter(tenant_id=tenant_id).first()
    if head is not None and (head.size != report.entries or head.last_hash != prev):
        report.problems.append(
            f"log head says {head.size} entries ending {head.last_hash[:12]}…, "
            f"the table holds {report.entries} ending {prev[:12]}…"
        )
    elif head is None and report.entries:
        report.problems.append("entries exist but the tenant has no log head")
    if sealed:  # checkpoints of sizes the table no longer reaches
        report.problems.append(f"checkpoint at size {min(sealed)} does not match the entries")
    return report
