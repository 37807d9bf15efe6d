"""HTTP ingest: ``POST /v1/pcs/submit`` and, in bench settings only, the floor endpoint."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.pcs.errors import IngestError, encode_body
from apps.pcs.parsing import parse_pcs
from apps.pcs.serializers import DecisionSerializer, ErrorSerializer, PcsSerializer
from apps.pcs.services import IngestResult, pcs_submit


def _json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(
        encode_body(body),
        status=status,
        content_type="application/json",
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def read_limited_body(request: Request) -> bytes:
    """The raw body, refusing more than MAX_BODY_BYTES before anything is stored (413)."""
    limit = settings.MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise IngestError(413, "payload_too_large", f"body exceeds {limit} bytes")
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise IngestError(413, "payload_too_large", f"body exceeds {limit} bytes")
    return body


_ERRORS = OpenApiResponse(ErrorSerializer)


class SubmitView(APIView):
    """Verify one signed PCS and answer its decision."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes: list[type] = []

    @extend_schema(
        operation_id="pcs_submit",
        request=PcsSerializer,
        parameters=[OpenApiParameter("X-Tenant-Id", str, OpenApiParameter.HEADER, required=False)],
        responses={
            200: DecisionSerializer,
            202: DecisionSerializer,
            400: _ERRORS,
            401: _ERRORS,
            409: _ERRORS,
            413: _ERRORS,
            422: _ERRORS,
            429: _ERRORS,
            503: _ERRORS,
        },
        description="Order of work: size limit, inbox WAL, strict parse, tenant and limits, signature, "
        "dedup, checks and recomputation, decision. Replays answer the stored decision with "
        "`Idempotent-Replayed: true`.",
    )
    def post(self, request: Request) -> HttpResponse:
        received_at = timezone.now()
        try:
            body = read_limited_body(request)
        except IngestError as exc:
            return _json_response(exc.status, exc.body())
        result: IngestResult = pcs_submit(
            body=body, tenant_header=request.headers.get("X-Tenant-Id"), received_at=received_at
        )
        return _json_response(result.status, result.body, result.headers)


class FloorView(APIView):
    """Benchmark baseline: the same stack and parse, no verification, no storage."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes: list[type] = []

    @extend_schema(exclude=True)
    def post(self, request: Request) -> HttpResponse:
        if not settings.BENCH_FLOOR_ENDPOINT:
            raise Http404
        try:
            pcs = parse_pcs(read_limited_body(request))
        except IngestError as exc:
            return _json_response(exc.status, exc.body())
        return _json_response(200, {"pcs_id": pcs["pcs_id"], "accepted": True})
