"""Shapes of the review API: queue items, the reviewer's view of a PCS, decision requests and results."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.pcs.read_api import AuditHistoryEntrySerializer
from apps.review.models import ReviewItem
from apps.review.selectors import ReviewView


class ReviewItemSerializer(serializers.ModelSerializer):
    """An item of the queue. ``state`` is what a reviewer sees: a claim that expired reads ``pending``."""

    tenant = serializers.CharField(source="tenant.slug")
    state = serializers.ChoiceField(
        source="effective_state", choices=[c for c, _ in ReviewItem.STATE_CHOICES], read_only=True
    )

    class Meta:
        model = ReviewItem
        fields = [
            "pcs_id",
            "tenant",
            "state",
            "shard_id",
            "epoch",
            "escalated_at",
            "escalation_reason",
            "policy_version",
            "claimed_by",
            "claimed_at",
            "claim_expires_at",
            "decided_by",
            "decided_at",
            "reason",
        ]

    def to_representation(self, item: ReviewItem) -> dict[str, Any]:
        data = super().to_representation(item)
        if item.state == ReviewItem.CLAIMED and not item.claim_live:
            # An expired claim holds nothing: do not show a holder a client might wait for.
            data.update(claimed_by="", claimed_at=None, claim_expires_at=None)
        return data


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    verdict = serializers.CharField()
    detail = serializers.CharField(required=False, help_text="by how much, when the check said")


class ReviewViewSerializer(serializers.Serializer):
    """``GET /v1/review/items/{pcs_id}``: what a reviewer reads before deciding."""

    item = ReviewItemSerializer()
    pcs = serializers.JSONField(
        allow_null=True, help_text="the PCS as stored (warm or cold); null once evicted past TIER_COLD_TTL"
    )
    recomputed = serializers.DictField(help_text="D_hat, budget and regime as the server recomputed them")
    checks = CheckSerializer(many=True, help_text="the checks of the decision, with their verdicts")
    flags = serializers.ListField(child=serializers.CharField())
    anomaly_score = serializers.FloatField(allow_null=True)
    decision = serializers.JSONField(allow_null=True, help_text="the 202 body answered at ingest")
    history = AuditHistoryEntrySerializer(many=True, help_text="the PCS's audit entries, in seq order")

    def to_representation(self, view: ReviewView) -> dict[str, Any]:
        return {
            "item": ReviewItemSerializer(view.item).data,
            "pcs": view.record.pcs if view.record is not None else None,
            "recomputed": view.recomputed,
            "checks": view.checks,
            "flags": view.flags,
            "anomaly_score": view.anomaly_score,
            "decision": view.decision,
            "history": AuditHistoryEntrySerializer(view.history, many=True).data,
        }


class DecisionRequestSerializer(serializers.Serializer):
    """The body of ``POST /v1/review/items/{pcs_id}/decision`` (documentation; checked by the service)."""

    outcome = serializers.ChoiceField(choices=["accept", "reject"])
    reason = serializers.CharField(
        help_text="why; required, at most REVIEW_REASON_MAX_CHARS (2000) characters"
    )


class BulkDecisionRequestSerializer(DecisionRequestSerializer):
    """The body of ``POST /v1/review/decisions``: one outcome and reason for many PCS."""

    pcs_ids = serializers.ListField(
        child=serializers.CharField(), help_text="at most REVIEW_BULK_MAX_ITEMS (500) pcs_ids"
    )


class BulkResultSerializer(serializers.Serializer):
    pcs_id = serializers.CharField()
    status = serializers.IntegerField(help_text="what the single decision endpoint would have answered")
    item = ReviewItemSerializer(required=False, help_text="200: the decided item")
    error = serializers.CharField(required=False, help_text="otherwise: the error code")
    detail = serializers.CharField(required=False)


class BulkResultsSerializer(serializers.Serializer):
    results = BulkResultSerializer(many=True, help_text="one per pcs_id, in the request's order")
