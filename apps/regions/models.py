"""State of cross-region replication (docs/regions.md), kept in each region's own database.

The source side remembers what it shipped to each remote bucket (``ShipTarget``, ``ShippedSegment``);
the target side remembers, per source region, how far it replayed (``SourceCursor``, written in the
transaction of the decisions it replays), which control-plane objects it applied
(``ControlApplied``), how the last comparison with each peer came out (``DivergenceStatus``) and how
each true conflict was settled (``Settlement``).
"""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant

GENESIS = "0" * 64  # the "previous hash" of a manifest's first entry


class ShipTarget(models.Model):
    """A remote bucket this region ships to: the manifest chain's head and the control-plane version."""

    STATE_OK, STATE_DIVERGED = "ok", "diverged"

    bucket = models.CharField(max_length=255, primary_key=True)
    manifest_seq = models.BigIntegerField(
        default=0, help_text="manifest entries written (the last one's seq)"
    )
    manifest_hash = models.CharField(max_length=64, default=GENESIS, help_text="SHA-256 of the last entry")
    control_version = models.BigIntegerField(default=0, help_text="last control-plane snapshot published")
    control_digest = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=8, default=STATE_OK)
    error = models.TextField(blank=True)
    last_shipped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.bucket} @{self.manifest_seq} ({self.state})"


class ShippedSegment(models.Model):
    """How many bytes of one local WAL segment are shipped to one bucket."""

    bucket = models.CharField(max_length=255)
    segment = models.CharField(max_length=128, help_text="the segment's file name, without .done")
    shipped_bytes = models.BigIntegerField(default=0)
    finished = models.BooleanField(default=False, help_text="closed, and every whole record shipped")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "segment"], name="shipped_segment_bucket_segment_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.bucket}:{self.segment}@{self.shipped_bytes}"


class SourceCursor(models.Model):
    """How far this region replayed another region's WAL, and whether that source is stopped.

    ``manifest_seq`` is the last chunk replayed whole; ``chunk_seq``/``chunk_pos`` the chunk in
    progress and the segment offset of its next record. Both are written in the transaction of the
    decisions they cover.
    """

    STATE_OK, STATE_STOPPED = "ok", "stopped"

    source_region = models.CharField(max_length=64, primary_key=True)
    manifest_seq = models.BigIntegerField(default=0)
    manifest_hash = models.CharField(max_length=64, default=GENESIS)
    chunk_seq = models.BigIntegerField(default=0)
    chunk_pos = models.BigIntegerField(default=0)
    state = models.CharField(max_length=8, default=STATE_OK)
    error = models.TextField(blank=True, help_text="why the source is stopped")
    stopped_at = models.DateTimeField(null=True, blank=True)
    covered_at = models.DateTimeField(
        null=True, blank=True, help_text="every WAL byte the source received before this is replayed here"
    )
    head_at = models.DateTimeField(null=True, blank=True, help_text="the source's last shipment, as it said")
    control_version = models.BigIntegerField(default=0, help_text="last control-plane snapshot applied")
    chunks_replayed = models.BigIntegerField(default=0)
    requests_replayed = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.source_region} @{self.manifest_seq} ({self.state})"


class ReplayedChunk(models.Model):
    """One chunk replayed here: its place in the source's manifest and how old its first byte was."""

    source_region = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    key = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    requests = models.IntegerField()
    first_byte_at = models.DateTimeField(null=True, help_text="receive time of its first request")
    replayed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_region", "seq"], name="replayed_chunk_source_seq_uniq")
        ]
        ordering = ["source_region", "seq"]

    def __str__(self) -> str:
        return f"{self.source_region}#{self.seq}"


class ControlApplied(models.Model):
    """The content hash of a control-plane object as last received from a source region."""

    source_region = models.CharField(max_length=64)
    object_key = models.CharField(
        max_length=300, help_text="tenant:<slug>, key:<slug>:<id>, policy:<slug>:<v>"
    )
    content_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_region", "object_key"], name="control_applied_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.source_region}:{self.object_key}"


class DivergenceStatus(models.Model):
    """The last comparison of this region's decided set with one peer region's."""

    peer_region = models.CharField(max_length=64, primary_key=True)
    computed_at = models.DateTimeField()
    cells = models.IntegerField(default=0, help_text="(tenant, time bucket) cells compared")
    differing_cells = models.IntegerField(default=0)
    share = models.FloatField(default=0.0, help_text="differing cells / cells: dedup_divergence")
    missing_here = models.IntegerField(default=0)
    missing_there = models.IntegerField(default=0)
    conflicts = models.IntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "divergence statuses"

    def __str__(self) -> str:
        return f"{self.peer_region}: {self.share:.4f}"


class Settlement(models.Model):
    """The final outcome of a PCS two regions decided differently (or received at different times).

    The ``PcsRecord`` is never rewritten: like a review, the settlement supersedes it. A true conflict
    (different outcome or payload) also has a "reconciliation" audit entry, in both regions.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="region_settlements")
    pcs_id = models.CharField(max_length=64)
    conflict = models.BooleanField(help_text="the outcomes differed (not only the receive times)")
    winner_region = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(help_text="the final outcome")
    payload_digest = models.CharField(max_length=64)
    received_at = models.DateTimeField(help_text="the earliest receive time in any region")
    details = models.JSONField(default=dict)
    audit_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "pcs_id"], name="settlement_tenant_pcs_id_uniq")
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.pcs_id} -> {self.status_code} ({self.winner_region})"
