"""Compliance report runs: one row per (tenant, framework, period) build, with its progress and bundle."""

from __future__ import annotations

from django.db import models

from apps.audit.models import Checkpoint
from apps.tenants.models import Tenant


class ReportRun(models.Model):
    """A compliance report: requested, built by the ``reports`` queue, then downloadable as one zip.

    ``progress`` and ``phase`` are written while the worker builds, so the admin and the API show how
    far a long build is. ``checkpoint`` is the signed tree head the bundle covers and
    ``previous_checkpoint`` the one of the tenant's previous report, which the bundle's consistency
    proof extends.
    """

    SOC2, ISO27001, HIPAA, GDPR = "soc2", "iso27001", "hipaa", "gdpr"
    FRAMEWORK_CHOICES = [
        (SOC2, "SOC 2"),
        (ISO27001, "ISO/IEC 27001:2022"),
        (HIPAA, "HIPAA Security Rule"),
        (GDPR, "GDPR"),
    ]
    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATE_CHOICES = [(QUEUED, "queued"), (RUNNING, "running"), (DONE, "done"), (FAILED, "failed")]

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="report_runs")
    framework = models.CharField(max_length=16, choices=FRAMEWORK_CHOICES)
    period_start = models.DateTimeField(help_text="first instant of the period (inclusive, UTC)")
    period_end = models.DateTimeField(help_text="end of the period (exclusive, UTC)")
    state = models.CharField(max_length=8, choices=STATE_CHOICES, default=QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100")
    phase = models.CharField(max_length=100, blank=True, help_text="what the build is doing now")
    error = models.TextField(blank=True)
    bundle_location = models.CharField(max_length=500, blank=True, help_text="file path or s3://bucket/key")
    sha256 = models.CharField(max_length=64, blank=True, help_text="of the zip bundle")
    size = models.BigIntegerField(null=True, blank=True, help_text="bytes of the zip bundle")
    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    previous_checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("build_report", "Can build compliance reports"), ("download_report", "Can download")]
        indexes = [models.Index(fields=["tenant", "state", "-id"], name="report_run_tenant_state")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(period_end__gt=models.F("period_start")), name="report_run_period_order"
            ),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="report_run_progress_max"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.framework} {self.period_start:%Y-%m-%d}..{self.period_end:%Y-%m-%d}"

    @property
    def filename(self) -> str:
        """The download name of the bundle."""
        return (
            f"flk-{self.framework}-{self.tenant.slug}-{self.period_start:%Y%m%d}-"
            f"{self.period_end:%Y%m%d}-{self.pk}.zip"
        )
