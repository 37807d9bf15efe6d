"""The transparency API: the public key, a tenant's latest checkpoint, and proofs against it."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.checkpoints import (
    ProofError,
    consistency_proof_for,
    inclusion_proof_for,
    log_origin,
    public_key_b64,
    verifier_key_for,
)
from apps.audit.models import Checkpoint
from apps.tenants.auth import IsTenant, TenantTokenAuthentication
from apps.tenants.models import Tenant


class PublicKeyView(APIView):
    """``GET /v1/audit/public-key``: what verifies every checkpoint, offline."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"algorithm": "ed25519", "public_key_b64": public_key_b64()})


class _TenantLogView(APIView):
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [IsTenant]

    def tenant(self, slug: str) -> Tenant:
        tenant = self.request.user.tenant
        if tenant.slug != slug:
            raise Http404  # another tenant's log does not exist for this token
        return tenant

    def int_param(self, name: str, default: int | None = None) -> int:
        raw = self.request.query_params.get(name)
        if raw is None and default is not None:
            return default
        try:
            return int(raw)
        except (TypeError, ValueError) as exc:
            raise ValidationError({name: "an integer is required"}) from exc

    def latest(self, tenant: Tenant) -> Checkpoint:
        checkpoint = Checkpoint.objects.filter(tenant=tenant).order_by("-tree_size").first()
        if checkpoint is None:
            raise Http404
        return checkpoint


class CheckpointView(_TenantLogView):
    """``GET /v1/audit/{tenant}/checkpoint``: the latest signed checkpoint (text/plain note)."""

    @extend_schema(responses={(200, "text/plain"): str})
    def get(self, request: Request, tenant: str) -> HttpResponse:
        row = self.tenant(tenant)
        response = HttpResponse(self.latest(row).note, content_type="text/plain; charset=utf-8")
        response["X-Log-Origin"] = log_origin(row)
        response["X-Verifier-Key"] = verifier_key_for(row)
        return response


class InclusionProofView(_TenantLogView):
    """``GET /v1/audit/{tenant}/proof/inclusion?index=&tree_size=`` (tree_size: the latest checkpoint)."""

    @extend_schema(
        parameters=[OpenApiParameter("index", int, required=True), OpenApiParameter("tree_size", int)],
        responses={200: dict},
    )
    def get(self, request: Request, tenant: str) -> Response:
        row = self.tenant(tenant)
        size = self.int_param("tree_size", default=self.latest(row).tree_size)
        try:
            return Response(inclusion_proof_for(tenant=row, index=self.int_param("index"), tree_size=size))
        except ProofError as exc:
            raise ValidationError({"detail": str(exc)}) from exc


class ConsistencyProofView(_TenantLogView):
    """``GET /v1/audit/{tenant}/proof/consistency?first=&second=``."""

    @extend_schema(
        parameters=[
            OpenApiParameter("first", int, required=True),
            OpenApiParameter("second", int, required=True),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, tenant: str) -> Response:
        row = self.tenant(tenant)
        try:
            return Response(
                consistency_proof_for(
                    tenant=row, first=self.int_param("first"), second=self.int_param("second")
                )
            )
        except ProofError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
