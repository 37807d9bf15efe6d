"""Shapes of the ingest API for the OpenAPI document; the pipeline itself parses strictly by hand."""

from __future__ import annotations

from rest_framework import serializers


class FtSerializer(serializers.Serializer):
    outbox_seq = serializers.IntegerField(min_value=0)
    degraded = serializers.BooleanField()
    fallbacks = serializers.ListField(child=serializers.CharField(), max_length=32)
    clock_skew_ms = serializers.IntegerField()


class PcsSerializer(serializers.Serializer):
    """A PCS v0.1 as DESIGN §2 defines it."""

    pcs_id = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="sha256(merkle_root|epoch|shard_id)")
    schema = serializers.ChoiceField(choices=["fractal-lba-kakeya"])
    version = serializers.ChoiceField(choices=["0.1"])
    shard_id = serializers.CharField(max_length=256)
    epoch = serializers.IntegerField(min_value=0)
    attempt = serializers.IntegerField(min_value=1)
    sent_at = serializers.DateTimeField()
    seed = serializers.IntegerField(min_value=0)
    scales = serializers.ListField(child=serializers.IntegerField(min_value=2), min_length=2, max_length=32)
    N_j = serializers.DictField(child=serializers.IntegerField(min_value=1))
    coh_star = serializers.FloatField(min_value=0, max_value=1)
    v_star = serializers.ListField(child=serializers.FloatField(min_value=-1, max_value=1))
    D_hat = serializers.FloatField(min_value=0)
    r = serializers.FloatField(min_value=0, max_value=2)
    regime = serializers.ChoiceField(choices=["sticky", "non_sticky", "mixed"])
    budget = serializers.FloatField(min_value=0, max_value=1)
    merkle_root = serializers.RegexField(r"^[0-9a-f]{64}$")
    sig = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="standard base64 of HMAC-SHA256 or Ed25519 over the digest; missing or empty is 401",
    )
    key_id = serializers.CharField(required=False)
    vrf_proof = serializers.CharField(required=False)
    ft = FtSerializer(required=False)


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    verdict = serializers.ChoiceField(choices=["pass", "fail", "reject", "skipped"])
    detail = serializers.CharField(required=False)


class DecisionSerializer(serializers.Serializer):
    """The answer of 200 (accepted) and 202 (escalated)."""

    pcs_id = serializers.CharField()
    accepted = serializers.BooleanField()
    escalated = serializers.BooleanField()
    reason = serializers.CharField(
        allow_blank=True, help_text='"" when accepted; otherwise the comma-separated reasons'
    )
    recomputed_D_hat = serializers.FloatField(help_text="D̂ recomputed from scales and N_j")
    recomputed_budget = serializers.FloatField(help_text="budget recomputed with the tenant's policy")
    recomputed_regime = serializers.CharField(help_text="regime recomputed with the tenant's policy")
    D_hat = serializers.FloatField(help_text="the same as recomputed_D_hat")
    budget = serializers.FloatField(help_text="the same as recomputed_budget")
    regime = serializers.CharField(help_text="the same as recomputed_regime")
    anomaly_score = serializers.FloatField(allow_null=True)
    policy_version = serializers.CharField()
    checks = CheckSerializer(many=True)
    flags = serializers.ListField(child=serializers.CharField(), required=False)
    audit_index = serializers.IntegerField()


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
    fields = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="422 only: the fields that differ"
    )


class BatchSerializer(serializers.Serializer):
    """The body of ``POST /v1/pcs/submit:batch``."""

    items = PcsSerializer(many=True, help_text="at most BATCH_MAX_ITEMS (default 1,000) signed PCS")


class BatchItemResultSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="what POST /v1/pcs/submit would have answered for this item")
    body = serializers.JSONField(help_text="that answer's body: a decision or an error")
    replayed = serializers.BooleanField(help_text="the stored answer of an already decided PCS")
    retry_after = serializers.IntegerField(required=False, help_text="409 and 429 items: seconds to wait")


class BatchResultSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True, help_text="one per item, in the items' order")
