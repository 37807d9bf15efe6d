"""The transparency API: the public key, a tenant's latest checkpoint, and proofs against it.

Parameters are checked before anything is looked up: sizes and indexes are decimal integers within
PostgreSQL's bigint (400 ``invalid_parameter`` naming the one at fault); a proof the log cannot give
(an unsealed size, an index past the tree) is 400 ``invalid_proof_request``. Another tenant's log
answers 404, exactly like a tenant that does not exist.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
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
from flk_project.api_errors import ApiError, error_responses, not_found
from flk_project.api_negotiation import FirstRendererNegotiation
from flk_project.api_params import BIGINT_MAX, int_param

_TENANT = OpenApiParameter(
    "tenant",
    {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    OpenApiParameter.PATH,
    description="the slug of the token's own tenant",
)


def _size(name: str, *, required: bool, minimum: int = 1, description: str = "") -> OpenApiParameter:
    return OpenApiParameter(
        name,
        {"type": "integer", "minimum": minimum, "maximum": BIGINT_MAX},
        required=required,
        description=description,
    )


def _proof_error(exc: ProofError, field: str) -> ApiError:
    return ApiError(400, "invalid_proof_request", str(exc), field=field)


class PublicKeyView(APIView):
    """``GET /v1/audit/public-key``: what verifies every checkpoint, offline."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, **error_responses(406)})
    def get(self, request: Request) -> Response:
        return Response({"algorithm": "ed25519", "public_key_b64": public_key_b64()})


class _TenantLogView(APIView):
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [IsTenant]

    def tenant(self, slug: str) -> Tenant:
        tenant = self.request.user.tenant
        if tenant.slug != slug:
            # another tenant's log does not exist for this token
            raise not_found("no audit log of this tenant for this token", field="tenant")
        return tenant

    def latest(self, tenant: Tenant) -> Checkpoint:
        checkpoint = Checkpoint.objects.filter(tenant=tenant).order_by("-tree_size").first()
        if checkpoint is None:
            raise not_found("no checkpoint has been sealed yet")
        return checkpoint


class CheckpointView(_TenantLogView):
    """``GET /v1/audit/{tenant}/checkpoint``: the latest signed checkpoint (text/plain note)."""

    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        parameters=[_TENANT],
        responses={
            (200, "text/plain"): OpenApiResponse(str, description="the signed checkpoint note"),
            **error_responses(401, 404, 503),
        },
    )
    def get(self, request: Request, tenant: str) -> HttpResponse:
        row = self.tenant(tenant)
        response = HttpResponse(self.latest(row).note, content_type="text/plain; charset=utf-8")
        response["X-Log-Origin"] = log_origin(row)
        response["X-Verifier-Key"] = verifier_key_for(row)
        return response


class InclusionProofView(_TenantLogView):
    """``GET /v1/audit/{tenant}/proof/inclusion?index=&tree_size=`` (tree_size: the latest checkpoint)."""

    @extend_schema(
        parameters=[
            _TENANT,
            _size("index", required=True, minimum=0, description="the entry's position in the log"),
            _size("tree_size", required=False, description="a sealed checkpoint's size (default: latest)"),
        ],
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 404, 406, 503)},
    )
    def get(self, request: Request, tenant: str) -> Response:
        row = self.tenant(tenant)
        index = int_param(request.query_params, "index", minimum=0, required=True)
        size = int_param(request.query_params, "tree_size", minimum=1)
        if size is None:
            size = self.latest(row).tree_size
        if index >= size:
            raise ApiError(400, "invalid_proof_request", "index must be below tree_size", field="index")
        try:
            return Response(inclusion_proof_for(tenant=row, index=index, tree_size=size))
        except ProofError as exc:
            raise _proof_error(exc, "tree_size") from exc


class ConsistencyProofView(_TenantLogView):
    """``GET /v1/audit/{tenant}/proof/consistency?first=&second=``."""

    @extend_schema(
        parameters=[
            _TENANT,
            _size("first", required=True, description="the older sealed checkpoint's size"),
            _size("second", required=True, description="the newer sealed checkpoint's size"),
        ],
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 404, 406, 503)},
    )
    def get(self, request: Request, tenant: str) -> Response:
        row = self.tenant(tenant)
        first = int_param(request.query_params, "first", minimum=1, required=True)
        second = int_param(request.query_params, "second", minimum=1, required=True)
        if first > second:
            raise ApiError(400, "invalid_proof_request", "first must not exceed second", field="first")
        try:
            return Response(consistency_proof_for(tenant=row, first=first, second=second))
        except ProofError as exc:
            # Name the size at fault; only this refusal pays for the extra lookup.
            sealed = Checkpoint.objects.filter(tenant=row, tree_size=first).exists()
            raise _proof_error(exc, "second" if sealed else "first") from exc
