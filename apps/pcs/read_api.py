"""The read API: a tenant token sees its own PCS and their decisions, nothing else."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.pcs.models import PcsRecord
from apps.pcs.selectors import STATUS_FILTERS, pcs_record_get, pcs_records
from apps.tenants.auth import IsTenant, TenantTokenAuthentication
from apps.tenants.selectors import tenant_usage


class PcsRecordSerializer(serializers.ModelSerializer):
    """A decided PCS: what was signed, what was recomputed, and the answer given."""

    tenant = serializers.CharField(source="tenant.slug")
    decision = serializers.SerializerMethodField()

    class Meta:
        model = PcsRecord
        fields = [
            "pcs_id",
            "tenant",
            "shard_id",
            "epoch",
            "status_code",
            "accepted",
            "escalated",
            "reason",
            "policy_version",
            "d_hat",
            "regime",
            "budget",
            "audit_entry_id",
            "received_at",
            "decided_at",
            "pcs",
            "decision",
        ]

    def get_decision(self, record: PcsRecord) -> dict[str, Any]:
        return json.loads(record.response)


class _TenantScoped:
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [IsTenant]


class DecidedFirstPagination(CursorPagination):
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "limit"
    ordering = "-id"  # newest first, stable under inserts


class PcsDetailView(_TenantScoped, RetrieveAPIView):
    """``GET /v1/pcs/{pcs_id}``."""

    serializer_class = PcsRecordSerializer

    def get_object(self) -> PcsRecord:
        record = pcs_record_get(tenant=self.request.user.tenant, pcs_id=self.kwargs["pcs_id"])
        if record is None:
            raise Http404
        return record


class PcsListView(_TenantScoped, ListAPIView):
    """``GET /v1/pcs?since=…&status=accepted|escalated|rejected``, newest first, cursor-paginated."""

    serializer_class = PcsRecordSerializer
    pagination_class = DecidedFirstPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("since", str, description="ISO 8601 time: decided at or after"),
            OpenApiParameter("status", str, enum=list(STATUS_FILTERS)),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # noqa: ANN201
        params = self.request.query_params
        since = None
        if params.get("since"):
            since = parse_datetime(params["since"])
            if since is None or since.tzinfo is None:
                raise ValidationError({"since": "an ISO 8601 time with a zone, e.g. 2026-01-01T00:00:00Z"})
        status = params.get("status")
        if status is not None and status not in STATUS_FILTERS:
            raise ValidationError({"status": f"one of {', '.join(STATUS_FILTERS)}"})
        return pcs_records(tenant=self.request.user.tenant, since=since, status=status).select_related(
            "tenant"
        )


class UsageSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    day = serializers.DateField(help_text="the UTC day counted")
    used_today = serializers.IntegerField()
    daily_quota = serializers.IntegerField(allow_null=True, help_text="null: no quota")
    remaining_today = serializers.IntegerField(allow_null=True)
    rate_per_second = serializers.FloatField(allow_null=True, help_text="null: no rate limit")
    burst = serializers.IntegerField(allow_null=True)


class UsageView(_TenantScoped, APIView):
    """``GET /v1/tenants/me/usage``: today's count against the quota, and the rate limit."""

    @extend_schema(responses={200: UsageSerializer})
    def get(self, request: Request) -> Response:
        return Response(tenant_usage(tenant=request.user.tenant))
