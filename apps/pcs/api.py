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
from apps.pcs.serializers import (
    BatchResultSerializer,
    BatchSerializer,
    DecisionSerializer,
    ErrorSerializer,
    PcsSerializer,
)
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


READ_CHUNK_BYTES = 64 * 1024


def _too_large(limit: int) -> IngestError:
    return IngestError(413, "payload_too_large", f"body exceeds {limit} bytes")


def read_limited_body(request: Request, limit: int | None = None) -> bytes:
    """The raw body, refusing more than ``limit`` bytes (MAX_BODY_BYTES) before anything is stored.

    A chunked body has no Content-Length: Django would read it as empty, so it is read from the
    server's decoded stream here, and refused as soon as it passes the limit, never read whole.
    """
    limit = settings.MAX_BODY_BYTES if limit is None else limit
    meta = request.META
    declared = meta.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and meta.get("wsgi.input_terminated"):
        stream, parts, size = meta["wsgi.input"], [], 0
        while True:
            try:
                chunk = stream.read(READ_CHUNK_BYTES)
            except Exception as exc:  # the server's chunk decoder: a bad size line, a cut-off body
                raise IngestError(400, "malformed_body", "the chunked body could not be read") from exc
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise _too_large(limit)
    return body


def client_address(request: Request) -> str:
    """The client's address: the proxy's header when one is configured, else the peer's."""
    if settings.PROXY_CLIENT_IP_HEADER:
        key = "HTTP_" + settings.PROXY_CLIENT_IP_HEADER.upper().replace("-", "_")
        forwarded = request.META.get(key, "").strip()
        if forwarded:
            return forwarded[:64]
    return request.META.get("REMOTE_ADDR", "")


def error_response(exc: IngestError) -> HttpResponse:
    """The JSON answer of a refusal made before the pipeline runs (413, an unreadable body)."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return _json_response(exc.status, exc.body(), headers)


def submit_response(request: Request, *, batch: bool) -> HttpResponse:
    """Read the body within its limit, run it through the pipeline, answer in JSON."""
    received_at = timezone.now()
    try:
        body = read_limited_body(request, settings.BATCH_MAX_BODY_BYTES if batch else settings.MAX_BODY_BYTES)
    except IngestError as exc:
        return error_response(exc)
    result: IngestResult = pcs_submit(
        body=body,
        tenant_header=request.headers.get("X-Tenant-Id"),
        received_at=received_at,
        client_addr=client_address(request),
        batch=batch,
    )
    return _json_response(result.status, result.body, result.headers)


_ERRORS = OpenApiResponse(ErrorSerializer)


class SubmitView(APIView):
    """Verify one signed PCS and answer its decision."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes: list[type] = []

    @extend_schema(
        operation_id="pcs_submit",
        request={"application/json": PcsSerializer},
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
        description="Order of work: size limit, inbox WAL, strict parse, tenant, signature (failed "
        "authentications are throttled on their own and never charged to the tenant), rate limit and "
        "daily quota, dedup, checks and recomputation, decision. Any retry of a decided PCS answers the "
        "stored decision with `Idempotent-Replayed: true`; a copy whose signed payload or decision inputs "
        "differ is 422. Chunked bodies are accepted.",
    )
    def post(self, request: Request) -> HttpResponse:
        return submit_response(request, batch=False)


class SubmitBatchView(APIView):
    """Verify many signed PCS of one tenant in one request; one result per item, in order."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes: list[type] = []

    @extend_schema(
        operation_id="pcs_submit_batch",
        request={"application/json": BatchSerializer},
        parameters=[OpenApiParameter("X-Tenant-Id", str, OpenApiParameter.HEADER, required=False)],
        responses={
            200: BatchResultSerializer,
            400: _ERRORS,
            401: _ERRORS,
            413: _ERRORS,
            429: _ERRORS,
            503: _ERRORS,
        },
        description="Each item goes through the same pipeline as `POST /v1/pcs/submit`, with the same "
        "statuses (per item, in `results`), replays and conflicts (also between copies inside the batch) "
        "and rate limit counted per item; the new decisions are written in one transaction. The whole "
        "batch is one WAL record. Only batch-level problems answer for all of it: a body that is not "
        '`{"items": [...]}` (400), more than `BATCH_MAX_ITEMS` items or `BATCH_MAX_BODY_BYTES` bytes '
        "(413), an unknown tenant (401; 429 once its source failed too often), a store that is down "
        "(503, the batch is kept and decided by replay).",
    )
    def post(self, request: Request) -> HttpResponse:
        return submit_response(request, batch=True)


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
            return error_response(exc)
        return _json_response(200, {"pcs_id": pcs["pcs_id"], "accepted": True})
