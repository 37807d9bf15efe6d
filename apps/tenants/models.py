"""Tenants: who sends PCS, and the limits they send under."""

from __future__ import annotations

from django.db import models


class Tenant(models.Model):
    """One sender of PCS. Single-tenant installations have exactly one, the default tenant."""

    ALG_HMAC = "hmac"
    ALG_ED25519 = "ed25519"
    ALG_CHOICES = [(ALG_HMAC, "HMAC-SHA256"), (ALG_ED25519, "Ed25519")]
    PII_DETECT, PII_BLOCK, PII_REDACT = "detect", "block", "redact"
    PII_CHOICES = [(PII_DETECT, "detect"), (PII_BLOCK, "block"), (PII_REDACT, "redact")]

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    sign_alg = models.CharField("signing algorithm", max_length=8, choices=ALG_CHOICES, default=ALG_HMAC)
    vrf_required = models.BooleanField("VRF required", default=False)
    vrf_public_key = models.CharField(
        "VRF public key (hex)",
        max_length=64,
        blank=True,
        help_text="the agents' ECVRF-EDWARDS25519-SHA512-TAI public key, 64 hex digits",
    )
    pii_mode = models.CharField("PII mode", max_length=8, choices=PII_CHOICES, default=PII_DETECT)
    # Limits; 0 switches one off.
    rate_per_second = models.FloatField(default=0.0)
    burst = models.PositiveIntegerField(default=0)
    daily_quota = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        """A tenant that requires VRF proofs needs the public key they are checked with."""
        from django.core.exceptions import ValidationError

        from flk_agent import vrf

        if self.vrf_public_key:
            try:
                key = bytes.fromhex(self.vrf_public_key)
            except ValueError:
                key = b""
            if not vrf.public_key_is_valid(key):
                raise ValidationError(
                    {"vrf_public_key": "not an Ed25519 point of the prime-order group (hex)"}
                )
        if self.vrf_required and not self.vrf_public_key:
            raise ValidationError({"vrf_public_key": "required when VRF proofs are required"})


class RateBucket(models.Model):
    """Token bucket and daily counter of one tenant, for installations without Redis."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True)
    tokens = models.FloatField()
    refilled_at = models.FloatField(help_text="unix seconds of the last refill")
    day = models.DateField()
    day_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"bucket of {self.tenant_id}"


class SigningKey(models.Model):
    """A key that verifies a tenant's PCS signatures.

    HMAC secrets are stored encrypted (``apps.tenants.crypto``) and shown once, when created; Ed25519
    keys store only the public half. A key verifies from ``not_before`` until ``not_after`` (open-ended
    when unset): rotation gives the old key a ``not_after`` in the future, the overlap window.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="signing_keys", db_index=False)
    key_id = models.CharField(max_length=64)
    alg = models.CharField(max_length=8, choices=Tenant.ALG_CHOICES)
    secret_encrypted = models.TextField(blank=True, help_text="Fernet token of the HMAC secret")
    public_key_b64 = models.CharField(max_length=64, blank=True, help_text="raw Ed25519 public key")
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key_id"], name="signing_key_tenant_key_id_uniq")
        ]
        ordering = ["tenant", "-not_before"]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.key_id}"


class ApiToken(models.Model):
    """A bearer token for the tenant API, scoped to one tenant. Only its SHA-256 is stored.

    ``read`` tokens read decisions, usage and audit proofs; ``policy`` tokens may also change policies;
    ``review`` tokens may also list, claim and decide escalated PCS; ``reports`` tokens may also build
    and download compliance reports.
    """

    SCOPE_READ, SCOPE_POLICY, SCOPE_REVIEW, SCOPE_REPORTS = "read", "policy", "review", "reports"
    SCOPE_CHOICES = [
        (SCOPE_READ, "read"),
        (SCOPE_POLICY, "read and manage policies"),
        (SCOPE_REVIEW, "read and review escalated PCS"),
        (SCOPE_REPORTS, "read and build compliance reports"),
    ]

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=SCOPE_CHOICES, default=SCOPE_READ)
    prefix = models.CharField(max_length=12, help_text="the first characters, to recognise a token")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class AuthFailureDay(models.Model):
    """Failed authentications of one tenant on one UTC day, for compliance reports.

    Failures are never audited (a flood must not grow the log): the failed-authentication limiter
    counts them in Redis and a beat task adds the counts here (``auth_failure_days_flush``).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="auth_failure_days")
    day = models.DateField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="auth_failure_day_uniq")]
        ordering = ["tenant", "day"]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day}: {self.count}"
