"""SIEM sinks and how far each has streamed each tenant's audit log.

A sink is one vendor endpoint (Splunk HEC, Datadog logs, Elasticsearch bulk) with its secret stored
encrypted (``apps.tenants.crypto``, like signing keys). Its progress is one ``SiemCursor`` per tenant it
streams: ``next_seq`` is the first entry of the tenant's log not yet acknowledged by the vendor, so a
crash between a POST and the cursor's advance sends the same entries again, never skips one.
"""

from __future__ import annotations

from django.db import models

from apps.tenants.models import Tenant


class SiemSink(models.Model):
    """One destination of the audit stream, with its delivery state as the admin shows it."""

    KIND_SPLUNK, KIND_DATADOG, KIND_ELASTIC = "splunk_hec", "datadog", "elasticsearch"
    KIND_CHOICES = [
        (KIND_SPLUNK, "Splunk HTTP Event Collector"),
        (KIND_DATADOG, "Datadog logs (API v2)"),
        (KIND_ELASTIC, "Elasticsearch bulk"),
    ]
    # active: streamed by every run; paused: by an operator; stopped: by a refusal that retrying
    # cannot fix (a wrong token, a malformed request), until an operator resumes it.
    STATE_ACTIVE, STATE_PAUSED, STATE_STOPPED = "active", "paused", "stopped"
    STATE_CHOICES = [(STATE_ACTIVE, "active"), (STATE_PAUSED, "paused"), (STATE_STOPPED, "stopped")]

    name = models.SlugField(max_length=64, unique=True, help_text="also the `sink` label of its metrics")
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    endpoint = models.URLField(
        max_length=500,
        blank=True,
        help_text="base URL, e.g. https://hec.example.com:8088 (Splunk), https://es.example.com:9200 "
        "(Elasticsearch); for Datadog, empty means the intake of the configured site",
    )
    secret_encrypted = models.TextField(blank=True, help_text="Fernet token of the HEC token / API key")
    options = models.JSONField(default=dict, blank=True, help_text="vendor options, see docs/siem.md")
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="siem_sinks",
        help_text="stream only this tenant's log; empty streams every tenant",
    )
    state = models.CharField(max_length=8, choices=STATE_CHOICES, default=STATE_ACTIVE)
    max_batch_events = models.PositiveIntegerField(
        null=True, blank=True, help_text="events per request; empty = the vendor's default"
    )
    max_batch_bytes = models.PositiveIntegerField(
        null=True, blank=True, help_text="bytes per request body; empty = the vendor's default"
    )
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="after failures, runs leave the sink alone until then"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SIEM sink"

    def __str__(self) -> str:
        return self.name


class SiemCursor(models.Model):
    """How far one sink has delivered one tenant's log: entries with ``seq < next_seq`` are acknowledged.

    Locked with ``SELECT … FOR UPDATE SKIP LOCKED`` for the length of a batch, so two workers never ship
    the same (sink, tenant) at once; a worker that dies releases it with its connection.
    """

    sink = models.ForeignKey(SiemSink, on_delete=models.CASCADE, related_name="cursors")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="siem_cursors")
    next_seq = models.BigIntegerField(default=0, help_text="the first entry not yet acknowledged")
    delivered = models.BigIntegerField(default=0, help_text="events acknowledged, redeliveries included")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sink", "tenant"], name="siem_cursor_sink_tenant_uniq")
        ]
        ordering = ["sink", "tenant"]

    def __str__(self) -> str:
        return f"{self.sink_id}/{self.tenant_id}: next {self.next_seq}"
