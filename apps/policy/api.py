"""The policy API: a tenant's policies, and the lifecycle changes a ``policy``-scope token may make.

``GET /v1/policies``, ``POST /v1/policies``, ``GET|PUT /v1/policies/{version}``,
``POST /v1/policies/{version}/activate``, ``POST /v1/policies/{version}/canary`` (``{"share": 0.1}``),
``POST /v1/policies/canary/promote``, ``POST /v1/policies/canary/rollback``.
Invalid policies are answered 400 ``policy_invalid`` with one problem per broken bound; a change that
does not fit the policy's status is 409 ``policy_state``.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
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
from apps.tenants.auth import CanManagePolicy, TenantTokenAuthentication


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = Policy
        fields = ["name", "version", "status", "params", "rules", "canary_share", "created_by", "created_at"]
        read_only_fields = ["status", "canary_share", "created_by", "created_at"]


class CanarySerializer(serializers.Serializer):
    share = serializers.FloatField(help_text="share of the tenant's traffic, in (0, 1)")


def _invalid(exc: PolicyInvalid) -> Response:
    problems = [{"field": p.field, "message": p.message} for p in exc.problems]
    return Response(
        {"error": "policy_invalid", "detail": str(exc), "problems": problems},
        status=status.HTTP_400_BAD_REQUEST,
    )


def _state(exc: PolicyStateError) -> Response:
    return Response({"error": "policy_state", "detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class _PolicyView(APIView):
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [CanManagePolicy]

    def _policy(self, request: Request, version: str) -> Policy:
        policy = Policy.objects.filter(tenant=request.user.tenant, version=version).first()
        if policy is None:
            raise Http404
        return policy

    def _run(self, change: Any) -> Response:
        try:
            policy = change()
        except PolicyInvalid as exc:
            return _invalid(exc)
        except PolicyStateError as exc:
            return _state(exc)
        return Response(PolicySerializer(policy).data)


class PolicyListView(_PolicyView):
    @extend_schema(responses={200: PolicySerializer(many=True)})
    def get(self, request: Request) -> Response:
        policies = Policy.objects.filter(tenant=request.user.tenant)
        return Response(PolicySerializer(policies, many=True).data)

    @extend_schema(request=PolicySerializer, responses={201: PolicySerializer})
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        try:
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
    @extend_schema(responses={200: PolicySerializer})
    def get(self, request: Request, version: str) -> Response:
        return Response(PolicySerializer(self._policy(request, version)).data)

    @extend_schema(request=PolicySerializer, responses={200: PolicySerializer})
    def put(self, request: Request, version: str) -> Response:
        policy = self._policy(request, version)
        data = request.data if isinstance(request.data, dict) else {}
        return self._run(
            lambda: policy_update(
                policy=policy,
                name=str(data.get("name", policy.name)),
                params=data.get("params", policy.params),
                rules=data.get("rules", policy.rules),
                actor=request.user.actor,
            )
        )


class PolicyActivateView(_PolicyView):
    @extend_schema(request=None, responses={200: PolicySerializer})
    def post(self, request: Request, version: str) -> Response:
        policy = self._policy(request, version)
        return self._run(lambda: policy_activate(policy=policy, actor=request.user.actor))


class PolicyCanaryView(_PolicyView):
    @extend_schema(request=CanarySerializer, responses={200: PolicySerializer})
    def post(self, request: Request, version: str) -> Response:
        policy = self._policy(request, version)
        body = CanarySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        share = body.validated_data["share"]
        return self._run(lambda: policy_start_canary(policy=policy, share=share, actor=request.user.actor))


class PolicyPromoteView(_PolicyView):
    @extend_schema(request=None, responses={200: PolicySerializer})
    def post(self, request: Request) -> Response:
        return self._run(lambda: policy_promote(tenant=request.user.tenant, actor=request.user.actor))


class PolicyRollbackView(_PolicyView):
    @extend_schema(request=None, responses={200: PolicySerializer})
    def post(self, request: Request) -> Response:
        return self._run(lambda: policy_rollback(tenant=request.user.tenant, actor=request.user.actor))
