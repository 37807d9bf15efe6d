"""The read API: a tenant token sees its own PCS and their decisions, nothing else."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib import parse

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.models import AuditEntry
from apps.pcs import tiers
from apps.pcs.models import PcsRecord
from apps.pcs.selectors import (
    PCS_ID,
    STATUS_FILTERS,
    pcs_audit_history,
    pcs_records,
    pcs_review_status,
)
from apps.tenants.auth import IsTenant, TenantTokenAuthentication
from apps.tenants.selectors import tenant_usage
from flk_project.api_errors import ApiError, error_responses, not_found
from flk_project.api_params import BIGINT_MAX, choice_param, datetime_param, int_param


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


class AuditHistoryEntrySerializer(serializers.ModelSerializer):
    """One audit entry about a PCS: its decision, or a reviewer's outcome that supersedes it."""

    class Meta:
        model = AuditEntry
        fields = [
            "seq",
            "kind",
            "created_at",
            "actor",
            "status",
            "reason",
            "policy_version",
            "details",
            "entry_hash",
        ]


class PcsRecordDetailSerializer(PcsRecordSerializer):
    """A decided PCS with its review status and its audit history (``GET /v1/pcs/{pcs_id}``).

    ``review_status`` is present for escalated PCS only: ``pending_review`` until a reviewer decides,
    then ``accepted`` or ``rejected``. ``decision`` stays the answer given at ingest, as replays do.
    """

    review_status = serializers.SerializerMethodField(
        help_text="escalated PCS only: pending_review, accepted or rejected"
    )
    history = serializers.SerializerMethodField()

    class Meta(PcsRecordSerializer.Meta):
        fields = [*PcsRecordSerializer.Meta.fields, "review_status", "history"]

    def _history(self, record: PcsRecord) -> list[AuditEntry]:
        if not hasattr(record, "_audit_history"):
            record._audit_history = pcs_audit_history(
                tenant_id=record.tenant_id, pcs_id=record.pcs_id, decision_entry_id=record.audit_entry_id
            )
        return record._audit_history

    def get_review_status(self, record: PcsRecord) -> str | None:
        return pcs_review_status(record=record, history=self._history(record))

    @extend_schema_field(AuditHistoryEntrySerializer(many=True))
    def get_history(self, record: PcsRecord) -> list[dict[str, Any]]:
        return AuditHistoryEntrySerializer(self._history(record), many=True).data

    def to_representation(self, record: PcsRecord) -> dict[str, Any]:
        data = super().to_representation(record)
        if data.get("review_status") is None:
            data.pop("review_status", None)
        return data


class _TenantScoped:
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [IsTenant]


class DecidedFirstPagination(CursorPagination):
    """Newest first; ``limit`` and ``cursor`` are checked strictly (400, never a silent default).

    A cursor is what ``next``/``previous`` links carry: standard base64 of ``o=<offset>&r=1&p=<id>``
    (DRF's encoding). Anything else, including a well-formed cursor whose position is not an id, is
    the 400 ``invalid_cursor``: DRF's own decoding would answer 404, or let a non-numeric position
    reach the database and fail there.
    """

    page_size = 100
    max_page_size = 1000
    page_size_query_param = "limit"
    ordering = "-id"  # newest first, stable under inserts

    def get_page_size(self, request: Request) -> int:
        size = int_param(request.query_params, "limit", minimum=1, maximum=self.max_page_size)
        return self.page_size if size is None else size

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:
            return None
        try:
            tokens = parse.parse_qs(
                base64.b64decode(encoded, validate=True).decode("ascii"), strict_parsing=True
            )
        except (ValueError, binascii.Error) as exc:  # not base64, not ASCII, not a query string
            raise _invalid_cursor() from exc
        if not set(tokens) <= {"o", "r", "p"} or any(len(v) != 1 for v in tokens.values()):
            raise _invalid_cursor()
        offset = tokens.get("o", ["0"])[0]
        reverse = tokens.get("r", ["0"])[0]
        position = tokens["p"][0] if "p" in tokens else None
        if not _DIGITS.fullmatch(offset) or int(offset) > self.offset_cutoff or reverse not in ("0", "1"):
            raise _invalid_cursor()
        if position is not None and not (_DIGITS.fullmatch(position) and int(position) <= BIGINT_MAX):
            raise _invalid_cursor()
        return Cursor(offset=int(offset), reverse=reverse == "1", position=position)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "opaque: take it from a `next` or `previous` link",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"results per page (default {self.page_size})",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]


_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


def _invalid_cursor() -> ApiError:
    return ApiError(400, "invalid_cursor", "not a cursor of this list", field="cursor")


class PcsDetailView(_TenantScoped, RetrieveAPIView):
    """``GET /v1/pcs/{pcs_id}``.

    An id that cannot be a pcs_id (not 64 lowercase hex digits) is 404 like an unknown one: a path
    names a resource, and no resource has that name.
    """

    serializer_class = PcsRecordDetailSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "pcs_id",
                {"type": "string", "pattern": f"^{PCS_ID.pattern}$"},
                OpenApiParameter.PATH,
                description="lowercase hex SHA-256 (64 digits)",
            )
        ],
        responses={200: PcsRecordDetailSerializer, **error_responses(401, 404, 406, 503)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_object(self) -> PcsRecord:
        pcs_id = self.kwargs["pcs_id"]
        record = None
        if PCS_ID.fullmatch(pcs_id):
            try:  # warm, then cold (apps.pcs.tiers); an evicted record is gone: 404
                record = tiers.record_lookup(
                    tenant_id=self.request.user.tenant.pk, pcs_id=pcs_id, evicted=False
                )
            except tiers.TierCorrupt as exc:
                raise _tier_unavailable("the stored copy of this PCS failed its integrity check") from exc
            except tiers.TierUnavailable as exc:
                raise _tier_unavailable("the cold tier is unavailable") from exc
        if record is None:
            raise not_found("no PCS with this id for this tenant", field="pcs_id")
        return record


def _tier_unavailable(detail: str) -> ApiError:
    """503 with Retry-After, as for a store that is down: a cold copy failing its digest is never served."""
    error = ApiError(503, "store_unavailable", detail)
    error.wait = settings.RETRY_AFTER_SECONDS  # DRF's handler turns ``wait`` into Retry-After
    return error


class PcsListView(_TenantScoped, ListAPIView):
    """``GET /v1/pcs?since=…&status=accepted|escalated|rejected``, newest first, cursor-paginated.

    Warm and cold records alike (``apps.pcs.tiers.records_list``): a record keeps its id when it is
    demoted, so the order and the cursors span both tiers. A page's cold records are read from the
    cold store; when it cannot be read, or a copy fails its digest, the list answers 503 like a lookup.
    """

    serializer_class = PcsRecordSerializer
    pagination_class = DecidedFirstPagination

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since",
                {"type": "string", "format": "date-time"},
                description="ISO 8601 time with a zone: decided at or after",
            ),
            OpenApiParameter("status", str, enum=list(STATUS_FILTERS)),
        ],
        responses={200: PcsRecordSerializer(many=True), **error_responses(400, 401, 406, 503)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().get(request, *args, **kwargs)
        except tiers.TierCorrupt as exc:
            raise _tier_unavailable("a stored copy on this page failed its integrity check") from exc
        except tiers.TierUnavailable as exc:
            raise _tier_unavailable("the cold tier is unavailable") from exc

    def get_queryset(self) -> tiers.TieredRecords:
        params = self.request.query_params
        since = datetime_param(params, "since")
        status = choice_param(params, "status", STATUS_FILTERS)
        tenant = self.request.user.tenant
        return tiers.records_list(
            tenant=tenant,
            warm=pcs_records(tenant=tenant, since=since, status=status).select_related("tenant"),
            window=tiers.RecordWindow(
                status_code=STATUS_FILTERS[status] if status is not None else None, since=since
            ),
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

    @extend_schema(responses={200: UsageSerializer, **error_responses(401, 406, 503)})
    def get(self, request: Request) -> Response:
        return Response(tenant_usage(tenant=request.user.tenant))
