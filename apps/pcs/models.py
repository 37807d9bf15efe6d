"""PCS records with their decisions, and the database dedup store."""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant


class PcsRecord(models.Model):
    """A decided PCS: what the agent signed, what the server recomputed, and the stored answer.

    The unique (tenant, pcs_id) constraint is the last line of first-write-wins: whatever the dedup
    store says, the database never holds two decisions for one PCS.
    """

    # No index of its own: the unique (tenant, pcs_id) index serves every lookup by tenant.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="pcs_records", db_index=False)
    pcs_id = models.CharField(max_length=64)
    payload_digest = models.CharField(max_length=64, help_text="hex SHA-256 of the signed payload")
    inputs_digest = models.CharField(
        max_length=64, blank=True, help_text="hex SHA-256 of the unsigned fields the decision read"
    )
    shard_id = models.CharField(max_length=256)
    epoch = models.BigIntegerField()
    pcs = models.JSONField(help_text="the PCS as parsed")
    status_code = models.PositiveSmallIntegerField()
    accepted = models.BooleanField()
    escalated = models.BooleanField()
    reason = models.CharField(max_length=200, blank=True)
    policy_version = models.CharField(max_length=32)
    d_hat = models.FloatField(help_text="recomputed D̂")
    regime = models.CharField(max_length=16, help_text="recomputed regime")
    budget = models.FloatField(help_text="recomputed budget")
    anomaly_score = models.FloatField(null=True, help_text="the anomaly score the decision was made with")
    # Text, not JSON: PostgreSQL's jsonb reorders keys, and replays must be byte-identical.
    response = models.TextField(help_text="the JSON body answered, replayed verbatim on retries")
    audit_entry_id = models.BigIntegerField()
    received_at = models.DateTimeField()
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "pcs_id"], name="pcs_record_tenant_pcs_id_uniq")
        ]
        indexes = [models.Index(fields=["tenant", "decided_at"])]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.pcs_id}"


class DedupEntry(models.Model):
    """The ``database`` dedup store: a claim while deciding, then the stored outcome."""

    STATE_PENDING = "pending"
    STATE_DECIDED = "decided"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, db_index=False)
    pcs_id = models.CharField(max_length=64)
    payload_digest = models.CharField(max_length=64)
    inputs_digest = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=8)
    claim_token = models.CharField(max_length=32)
    claim_owner = models.CharField(max_length=200, blank=True, help_text="host:pid:start of the claimer")
    claimed_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "pcs_id"], name="dedup_entry_tenant_pcs_id_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.pcs_id} {self.state}"


class QuarantinedRequest(models.Model):
    """A WAL request whose processing raised: kept aside with its error so replay can go on.

    The request stays in its WAL segment (which is not pruned while it is open here) and its raw
    bytes are copied here too, so an operator can read, fix and retry it.
    """

    segment = models.CharField(max_length=128)
    offset = models.BigIntegerField()
    received_at = models.DateTimeField()
    # NULL is "no header was sent", which the WAL tells apart from an empty one.
    tenant_header = models.CharField(max_length=256, blank=True, null=True)  # noqa: DJ001
    body = models.BinaryField()
    batch = models.BooleanField(default=False, help_text="a submit:batch body")
    error = models.TextField(help_text="the exception, as the replay saw it")
    attempts = models.PositiveIntegerField(default=1)
    quarantined_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "offset"], name="quarantined_request_ref_uniq")
        ]
        ordering = ["-quarantined_at"]

    def __str__(self) -> str:
        return f"{self.segment}@{self.offset}"
