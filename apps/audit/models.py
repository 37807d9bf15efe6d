"""The audit log: append-only, hash-chained entries, written in the transaction of what they record.

The database refuses UPDATE and DELETE on entries (triggers installed by migration 0002), every entry's
hash covers the previous one (``apps.audit.chain``), and per tenant the entry hashes are the leaves of a
Merkle log that signed ``Checkpoint`` rows seal.
"""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant


class AuditEntry(models.Model):
    """One audited event; ``seq`` is its index in the tenant's log (the agent's ``audit_index``)."""

    # Indexed through (tenant, seq) below; a separate index would only slow every append.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="audit_entries", db_index=False)
    kind = models.CharField(max_length=32)  # "decision" for ingest outcomes
    pcs_id = models.CharField(max_length=64, blank=True)
    status = models.PositiveSmallIntegerField(null=True)
    reason = models.CharField(max_length=200, blank=True)
    policy_version = models.CharField(max_length=32, blank=True)
    request_digest = models.CharField(
        max_length=64, blank=True, help_text="hex SHA-256 of the signed payload"
    )
    actor = models.CharField(max_length=150)
    details = models.JSONField(
        default=dict, blank=True, help_text="structured facts, covered by the entry hash when not empty"
    )
    created_at = models.DateTimeField()
    seq = models.BigIntegerField(help_text="index in the tenant's log, from 0")
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="audit_entry_tenant_seq_uniq")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.pcs_id}"


class AuditLogHead(models.Model):
    """Where a tenant's log stands: its size and the hash of its last entry.

    An append advances this row in one UPDATE (chain link computed in the same statement), which
    orders one tenant's entries; tenants do not wait for each other.
    """

    tenant = models.OneToOneField(
        Tenant, on_delete=models.PROTECT, primary_key=True, related_name="audit_head"
    )
    size = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64, help_text="the previous hash of the last entry")

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.size} entries"


class Checkpoint(models.Model):
    """A signed tree head of a tenant's log: a C2SP checkpoint in a C2SP signed note."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="checkpoints", db_index=False)
    tree_size = models.BigIntegerField()
    root_hash = models.CharField(max_length=64)
    note = models.TextField(help_text="the signed note, exactly as served")
    edge = models.JSONField(default=list, help_text="hex roots of the tree's perfect subtrees, largest first")
    sealed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "tree_size"], name="checkpoint_tenant_size_uniq")
        ]
        ordering = ["tenant", "-tree_size"]

    def __str__(self) -> str:
        return f"{self.tenant_id}@{self.tree_size}"


class Anchor(models.Model):
    """Where a checkpoint was written to write-once storage, so the log cannot be rolled back silently."""

    checkpoint = models.OneToOneField(Checkpoint, on_delete=models.PROTECT, related_name="anchor")
    backend = models.CharField(max_length=16)  # "local" (read-only file) or "s3" (Object Lock)
    reference = models.CharField(max_length=500, help_text="where the anchored note is")
    note_sha256 = models.CharField(max_length=64)
    retain_until = models.DateTimeField(null=True, help_text="the store refuses deletion until then")
    anchored_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.checkpoint} -> {self.reference}"


class AuditCursor(models.Model):
    """How far ``async_audit`` has re-verified a tenant's log, and the entry it keeps failing on, if any."""

    tenant = models.OneToOneField(
        Tenant, on_delete=models.PROTECT, primary_key=True, related_name="audit_cursor"
    )
    next_seq = models.BigIntegerField(default=0, help_text="the first entry not yet re-verified")
    last_hash = models.CharField(max_length=64, help_text="entry_hash of entry next_seq - 1")
    failing_seq = models.BigIntegerField(null=True)
    attempts = models.PositiveIntegerField(default=0, help_text="failed attempts on failing_seq")
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant_id}: next {self.next_seq}"


class AuditDeadLetter(models.Model):
    """An entry that re-verification found wrong, or could not check after every retry.

    The audit moves on past it; the row stays open until an operator's retry verifies the entry.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="audit_dead_letters")
    seq = models.BigIntegerField(help_text="the entry's index in the tenant's log")
    # Null when the entry itself is gone (a deleted row leaves a gap in the sequence).
    entry = models.ForeignKey(AuditEntry, on_delete=models.PROTECT, null=True, related_name="dead_letters")
    pcs_id = models.CharField(max_length=64, blank=True)
    problem = models.CharField(max_length=32)
    detail = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True)
    resolved_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="audit_dead_letter_seq_uniq")]
        ordering = ["-id"]
        verbose_name = "audit dead letter"

    def __str__(self) -> str:
        return f"{self.tenant_id}#{self.seq} {self.problem}"
