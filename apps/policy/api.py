"""The policy API: a tenant's policies, and the lifecycle changes a ``policy``-scope token may make.

``GET /v1/policies``, ``POST /v1/policies``, ``GET|PUT /v1/policies/{version}``,
``POST /v1/policies/{version}/activate``, ``POST /v1/policies/{version}/canary`` (``{"share": 0.1}``),
``POST /v1/policies/canary/promote``, ``POST /v1/policies/canary/rollback``.
Invalid policies are answered 400 ``policy_invalid`` with one problem per broken bound (``field``
names the first); a change that does not fit the policy's status is 409 ``policy_state``. Before any
of that, a body the database could not store is refused the same way: a NUL byte or a lone surrogate
in any string or key, a number beyond a float's range, a name or version longer than its column. A
``{version}`` that no policy can have (not SemVer, longer than the column) is 404 like an unknown one.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.policy.models import Policy
from apps.policy.services import (
    PolicyInvalid,
    PolicyStateError,
    policy_activate,
    policy_create,
    policy_promote,
    policy_rollback,
    policy_start_canary,
    policy_update,
)
from apps.policy.validation import SEMVER, Problem
from apps.tenants.auth import CanManagePolicy, TenantTokenAuthentication
from flk_project.api_errors import ErrorSerializer, StrictJSONParser, error_responses, not_found

NAME_MAX = Policy._meta.get_field("name").max_length
VERSION_MAX = Policy._meta.get_field("version").max_length

_VERSION = OpenApiParameter(
    "version",
    {"type": "string", "maxLength": VERSION_MAX, "pattern": SEMVER.pattern},
    OpenApiParameter.PATH,
    description="the policy's SemVer version",
)


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = Policy
        fields = ["name", "version", "status", "params", "rules", "canary_share", "created_by", "created_at"]
        read_only_fields = ["status", "canary_share", "created_by", "created_at"]


class ProblemSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="where: a body field, `params.<name>` or `rules[i].<key>`")
    message = serializers.CharField()


class PolicyInvalidSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="`policy_invalid`; other 400s have the common error body")
    detail = serializers.CharField()
    field = serializers.CharField(help_text="the first problem's field")
    problems = ProblemSerializer(many=True)


class CanarySerializer(serializers.Serializer):
    share = serializers.FloatField(help_text="share of the tenant's traffic, in (0, 1)")


def _invalid(exc: PolicyInvalid) -> Response:
    problems = [{"field": p.field, "message": p.message} for p in exc.problems]
    return Response(
        {"error": "policy_invalid", "detail": str(exc), "field": problems[0]["field"], "problems": problems},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _state(exc: PolicyStateError) -> Response:
    return Response({"error": "policy_state", "detail": str(exc)}, status=status.HTTP_409_CONFLICT)


def _unstorable(value: Any) -> str | None:
    """Why PostgreSQL (or the JSON answer) cannot take this scalar, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL byte"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate"
    elif isinstance(value, float) and not math.isfinite(value):
        return "is beyond a float's range"  # 1e999 parses as infinity
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        return "is beyond a float's range"
    return None


def _first_unstorable(data: dict[str, Any]) -> Problem | None:
    """The first value or key of the body the database could not store (iterative: no recursion limit)."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            children = []
            for key, item in value.items():
                why = _unstorable(key)
                if why:  # never echo the hostile key itself
                    return Problem(where, f"a key {why}")
                children.append((f"{where}.{key}" if where else key, item))
            pending.extend(reversed(children))
        elif isinstance(value, list):
            pending.extend(reversed([(f"{where}[{i}]", item) for i, item in enumerate(value)]))
        else:
            why = _unstorable(value)
            if why:
                return Problem(where, why)
    return None


def _storable(data: dict[str, Any]) -> None:
    """Refuse (PolicyInvalid) a body the database could not store, before it is validated."""
    problem = _first_unstorable(data)
    if problem is None and len(str(data.get("name", ""))) > NAME_MAX:
        problem = Problem("name", f"at most {NAME_MAX} characters")
    if problem is None and len(str(data.get("version", ""))) > VERSION_MAX:
        problem = Problem("version", f"at most {VERSION_MAX} characters")
    if problem is not None:
        raise PolicyInvalid([problem])


class _PolicyView(APIView):
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [CanManagePolicy]
    parser_classes = [StrictJSONParser, FormParser, MultiPartParser]

    def _policy(self, request: Request, version: str) -> Policy:
        # The test policy_create applies: a version that fails it cannot exist (and a NUL byte
        # would make PostgreSQL raise rather than find nothing).
        policy = None
        if len(version) <= VERSION_MAX and SEMVER.fullmatch(version):
            policy = Policy.objects.filter(tenant=request.user.tenant, version=version).first()
        if policy is None:
            raise not_found("no policy with this version for this tenant", field="version")
        return policy

    def _run(self, change: Any) -> Response:
        try:
            policy = change()
        except PolicyInvalid as exc:
            return _invalid(exc)
        except PolicyStateError as exc:
            return _state(exc)
        return Response(PolicySerializer(policy).data)


def _body(request: Request) -> dict[str, Any]:
    return request.data if isinstance(request.data, dict) else {}


# Who may call what: every operation needs a tenant token (401); changes need scope ``policy`` (403).
_READ = (401, 406, 503)
_CHANGE = (401, 403, 406, 409, 503)
_INVALID = {
    400: OpenApiResponse(
        PolymorphicProxySerializer(
            component_name="PolicyRefusal",
            serializers=[PolicyInvalidSerializer, ErrorSerializer],
            resource_type_field_name=None,
        ),
        description="`policy_invalid`: the policy breaks bounds, one problem each; `malformed_json` and "
        "`invalid_request` (a body field of the wrong type) have the common error body",
    )
}


class PolicyListView(_PolicyView):
    @extend_schema(responses={200: PolicySerializer(many=True), **error_responses(*_READ)})
    def get(self, request: Request) -> Response:
        policies = Policy.objects.filter(tenant=request.user.tenant)
        return Response(PolicySerializer(policies, many=True).data)

    @extend_schema(
        request=PolicySerializer,
        responses={201: PolicySerializer, **_INVALID, **error_responses(401, 403, 406, 415, 503)},
    )
    def post(self, request: Request) -> Response:
        data = _body(request)
        try:
            _storable(data)
            policy = policy_create(
                tenant=request.user.tenant,
                name=str(data.get("name", "")),
                version=str(data.get("version", "")),
                params=data.get("params", {}),
                rules=data.get("rules", []),
                actor=request.user.actor,
            )
        except PolicyInvalid as exc:
            return _invalid(exc)
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailView(_PolicyView):
    @extend_schema(parameters=[_VERSION], responses={200: PolicySerializer, **error_responses(*_READ, 404)})
    def get(self, request: Request, version: str) -> Response:
        return Response(PolicySerializer(self._policy(request, version)).data)

    @extend_schema(
        parameters=[_VERSION],
        request=PolicySerializer,
        responses={200: PolicySerializer, **_INVALID, **error_responses(*_CHANGE, 404, 415)},
    )
    def put(self, request: Request, version: str) -> Response:
        policy = self._policy(request, version)
        data = _body(request)

        def change() -> Policy:
            _storable(data)
            return policy_update(
                policy=policy,
                name=str(data.get("name", policy.name)),
                params=data.get("params", policy.params),
                rules=data.get("rules", policy.rules),
                actor=request.user.actor,
            )

        return self._run(change)


class PolicyActivateView(_PolicyView):
    @extend_schema(
        parameters=[_VERSION],
        request=None,
        responses={200: PolicySerializer, **_INVALID, **error_responses(*_CHANGE, 404)},
    )
    def post(self, request: Request, version: str) -> Response:
        policy = self._policy(request, version)
        return self._run(lambda: policy_activate(policy=policy, actor=request.user.actor))


class PolicyCanaryView(_PolicyView):
    @extend_schema(
        parameters=[_VERSION],
        request=CanarySerializer,
        responses={200: PolicySerializer, **_INVALID, **error_responses(*_CHANGE, 404, 415)},
    )
    def post(self, request: Request, version: str) -> Response:
        policy = self._policy(request, version)
        body = CanarySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        share = body.validated_data["share"]
        return self._run(lambda: policy_start_canary(policy=policy, share=share, actor=request.user.actor))


class PolicyPromoteView(_PolicyView):
    @extend_schema(request=None, responses={200: PolicySerializer, **_INVALID, **error_responses(*_CHANGE)})
    def post(self, request: Request) -> Response:
        return self._run(lambda: policy_promote(tenant=request.user.tenant, actor=request.user.actor))


class PolicyRollbackView(_PolicyView):
    @extend_schema(request=None, responses={200: PolicySerializer, **_INVALID, **error_responses(*_CHANGE)})
    def post(self, request: Request) -> Response:
        return self._run(lambda: policy_rollback(tenant=request.user.tenant, actor=request.user.actor))
