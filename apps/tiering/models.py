"""Demotion batches and the cold index: where each demoted PCS record lies in the cold tier."""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant


class DemotionBatch(models.Model):
    """One object of the cold tier: a bounded batch of one tenant's warm records, and how far it got.

    ``copying``: planned (``entries`` say which rows and where each lands); the object may or may not
    be written. ``verified``: the object was read back and matched its SHA-256. ``deleted``: the index
    rows exist and the warm rows are gone (one transaction). ``failed``: the object could not be made
    to match (the warm rows stay). ``evicted``: every record passed ``TIER_COLD_TTL`` and the object
    is gone. A crash at any step resumes from the recorded state.
    """

    COPYING = "copying"
    VERIFIED = "verified"
    DELETED = "deleted"
    FAILED = "failed"
    EVICTED = "evicted"
    STATES = [(s, s) for s in (COPYING, VERIFIED, DELETED, FAILED, EVICTED)]
    UNFINISHED = (COPYING, VERIFIED)

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="demotion_batches")
    state = models.CharField(max_length=8, choices=STATES, default=COPYING)
    codec = models.CharField(max_length=8, help_text="zstd or gzip: how each frame is compressed")
    object_key = models.CharField(max_length=512, help_text="key in the cold store (bucket or directory)")
    object_sha256 = models.CharField(max_length=64)
    object_bytes = models.BigIntegerField()
    record_count = models.PositiveIntegerField()
    record_bytes = models.BigIntegerField(help_text="the records' uncompressed bytes")
    # [[warm pk, pcs_id, frame offset, frame length, offset, length, sha256, decided_at], ...]
    entries = models.JSONField()
    oldest_decided_at = models.DateTimeField()
    newest_decided_at = models.DateTimeField(help_text="the batch is evicted once this passes TIER_COLD_TTL")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["state"]), models.Index(fields=["tenant", "-id"])]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.tenant_id}, {self.record_count} records, {self.state})"


class ColdRecord(models.Model):
    """The cold tier's index: one row per demoted PCS, naming its bytes inside its batch's object.

    An object is a run of independently compressed frames; a record is ``length`` bytes at ``offset``
    of its frame once decompressed, and ``sha256`` is the digest of exactly those bytes, checked on
    every read. The unique (tenant, pcs_id) constraint mirrors ``PcsRecord``'s, and a trigger (see the
    migration) makes a new ``PcsRecord`` of a cold PCS fail like a duplicate: first write still wins.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, db_index=False)
    pcs_id = models.CharField(max_length=64)
    batch = models.ForeignKey(DemotionBatch, on_delete=models.PROTECT, related_name="records")
    object_key = models.CharField(max_length=512)
    frame_offset = models.BigIntegerField()
    frame_length = models.PositiveIntegerField()
    offset = models.PositiveIntegerField()
    length = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    # For eviction past TIER_COLD_TTL, the list's ``since`` filter, and the admin's per-tenant figures.
    decided_at = models.DateTimeField()
    # The read API lists warm and cold records together from the index alone, never reading an object
    # to decide what is on a page: ordered and paged by the record's warm id, filtered by status.
    record_id = models.BigIntegerField(help_text="the record's id while it was warm (PcsRecord.id)")
    status_code = models.PositiveSmallIntegerField(
        null=True, help_text="the decision's status; null only when a backfill found no decision entry"
    )
    # Kept by the tombstone when the record is evicted: a replay is then answered from this entry.
    audit_entry_id = models.BigIntegerField(null=True, help_text="id of the decision's audit entry")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "pcs_id"], name="cold_record_tenant_pcs_id_uniq")
        ]
        indexes = [
            models.Index(fields=["tenant", "decided_at"]),
            # The list: a tenant's cold records by id (scanned backwards for newest first).
            models.Index(fields=["tenant", "record_id"], name="cold_record_tenant_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.pcs_id} in {self.object_key}"


class EvictedRecord(models.Model):
    """A PCS whose cold record passed ``TIER_COLD_TTL`` and was removed: what keeps it decided once.

    The record and its object are gone, but its decision stays in the audit log, and a PCS is never
    decided twice: the trigger that refuses a ``PcsRecord`` of a cold PCS refuses one of an evicted PCS
    too, and a replay is answered from the decision entry (its status, reason and policy version,
    marked ``"evicted": true``; not the original body byte for byte, which went with the record).
    A few dozen bytes per PCS, kept for good: the price of first write wins after eviction.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, db_index=False)
    pcs_id = models.CharField(max_length=64)
    audit_entry_id = models.BigIntegerField(null=True, help_text="id of the decision's audit entry")
    decided_at = models.DateTimeField()
    evicted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "pcs_id"], name="evicted_record_tenant_pcs_id_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.pcs_id} evicted {self.evicted_at:%Y-%m-%d}"
