"""The audit log: one append-only entry per decision, written in the decision's transaction.

Hash chaining, database-enforced immutability and the Merkle transparency log build on this table in
the audit issue; today it gives every decision a stable audit index.
"""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant


class AuditEntry(models.Model):
    """One audited event. Its primary key is the audit index returned to the agent."""

    # Indexed through (tenant, id) below; a separate index would only slow every append.
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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["tenant", "id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.pcs_id}"
