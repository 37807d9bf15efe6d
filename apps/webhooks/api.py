"""The webhooks API: a tenant's endpoints for escalations and review outcomes, and their delivery log.

``GET|POST /v1/webhooks``, ``GET|DELETE /v1/webhooks/{id}``, ``POST /v1/webhooks/{id}/rotate-secret``
(``{"grace_hours": 24}``), ``POST /v1/webhooks/{id}/ping``, ``GET /v1/webhooks/{id}/deliveries``.
Any tenant token reads; changes need a token of scope ``policy`` (they change the tenant's
configuration, and are audited). The secret is in the answer of the creation and of a rotation only.
A URL that is not https:// or resolves to a non-public address is 400 (``https_required``,
``target_not_public``, ``target_unresolvable``, ``invalid_url``); see docs/webhooks.md.
"""

from __future__ import annotations

import re
from datetime import timedelta

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.tenants.auth import TenantPrincipal, TenantTokenAuthentication
from apps.tenants.models import ApiToken
from apps.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from apps.webhooks.selectors import delivery_list, endpoint_get, endpoint_list
from apps.webhooks.services import (
    DESCRIPTION_MAX,
    WebhookError,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_ping,
    webhook_secret_rotate,
)
from apps.webhooks.targets import URL_MAX
from flk_project.api_errors import ApiError, StrictJSONParser, error_responses, invalid_parameter, not_found

DELIVERIES_DEFAULT, DELIVERIES_MAX = 50, 200
PUBLIC_ID = re.compile(r"we_[0-9a-f]{24}")

_ID = OpenApiParameter(
    "endpoint_id",
    {"type": "string", "pattern": "^we_[0-9a-f]{24}$"},
    OpenApiParameter.PATH,
    description="the endpoint's id, `we_…`",
)


class CanManageWebhooks(BasePermission):
    """Reads for any tenant token; registering, deleting, rotating and pinging need scope ``policy``."""

    message = "this token may read webhooks; changing them needs a token of scope 'policy'"

    def has_permission(self, request: Request, view: object) -> bool:
        if not isinstance(request.user, TenantPrincipal):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or request.user.scope == ApiToken.SCOPE_POLICY


def _storable(value: str) -> str:
    # A lone surrogate parses from JSON but PostgreSQL cannot store it: a 400, not a 500.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise serializers.ValidationError("contains a lone surrogate") from exc
    return value


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=URL_MAX, validators=[_storable], help_text="https:// only")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False, max_length=len(EVENT_TYPES) * 2
    )
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX, required=False, allow_blank=True, default="", validators=[_storable]
    )


class EndpointSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")
    events = serializers.ListField(source="event_types", child=serializers.CharField())
    previous_secret_valid_until = serializers.DateTimeField(
        source="previous_secret_expires_at", allow_null=True
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "description", "active", "created_at", "previous_secret_valid_until"]


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="whsec_…: shown in this answer only; FLK signs with it")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class RotateSerializer(serializers.Serializer):
    grace_hours = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=720,
        help_text="hours the old secret keeps signing beside the new (default WEBHOOK_SECRET_GRACE_HOURS)",
    )


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    succeeded = serializers.BooleanField()


class DeliverySerializer(serializers.ModelSerializer):
    attempt_log = AttemptSerializer(many=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "event_id",
            "event_type",
            "audit_seq",
            "state",
            "attempts",
            "created_at",
            "next_attempt_at",
            "delivered_at",
            "last_status_code",
            "last_error",
            "attempt_log",
        ]


class PingSerializer(serializers.Serializer):
    event_id = serializers.CharField()
    state = serializers.CharField()


def _refused(exc: WebhookError) -> ApiError:
    status_code = 409 if exc.code in ("too_many_endpoints", "endpoint_deleted", "in_flight") else 400
    return ApiError(status_code, exc.code, str(exc), field=exc.field if status_code == 400 else None)


class _WebhookView(APIView):
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [CanManageWebhooks]
    parser_classes = [StrictJSONParser]

    def _endpoint(self, request: Request, endpoint_id: str) -> WebhookEndpoint:
        # An id that no endpoint can have (a NUL byte would make PostgreSQL raise) is simply unknown.
        endpoint = None
        if PUBLIC_ID.fullmatch(endpoint_id):
            endpoint = endpoint_get(tenant=request.user.tenant, public_id=endpoint_id)
        if endpoint is None:
            raise not_found("no webhook endpoint with this id for this tenant", field="endpoint_id")
        return endpoint


class WebhookListView(_WebhookView):
    @extend_schema(responses={200: EndpointSerializer(many=True), **error_responses(401, 406, 503)})
    def get(self, request: Request) -> Response:
        return Response(EndpointSerializer(endpoint_list(tenant=request.user.tenant), many=True).data)

    @extend_schema(
        request=EndpointCreateSerializer,
        responses={201: EndpointWithSecretSerializer, **error_responses(400, 401, 403, 406, 409, 415, 503)},
    )
    def post(self, request: Request) -> Response:
        body = EndpointCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            new = webhook_endpoint_create(
                tenant=request.user.tenant,
                url=body.validated_data["url"],
                event_types=body.validated_data["events"],
                description=body.validated_data["description"],
                actor=request.user.actor,
            )
        except WebhookError as exc:
            raise _refused(exc) from exc
        data = {**EndpointSerializer(new.endpoint).data, "secret": new.secret}
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class WebhookDetailView(_WebhookView):
    @extend_schema(
        parameters=[_ID], responses={200: EndpointSerializer, **error_responses(401, 404, 406, 503)}
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(EndpointSerializer(self._endpoint(request, endpoint_id)).data)

    @extend_schema(parameters=[_ID], responses={204: None, **error_responses(401, 403, 404, 406, 503)})
    def delete(self, request: Request, endpoint_id: str) -> Response:
        webhook_endpoint_delete(endpoint=self._endpoint(request, endpoint_id), actor=request.user.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateView(_WebhookView):
    @extend_schema(
        parameters=[_ID],
        request=RotateSerializer,
        responses={
            200: EndpointWithSecretSerializer,
            **error_responses(400, 401, 403, 404, 406, 409, 415, 503),
        },
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = self._endpoint(request, endpoint_id)
        body = RotateSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        hours = body.validated_data.get("grace_hours")
        try:
            new = webhook_secret_rotate(
                endpoint=endpoint,
                actor=request.user.actor,
                grace=None if hours is None else timedelta(hours=hours),
            )
        except WebhookError as exc:
            raise _refused(exc) from exc
        data = {**EndpointSerializer(new.endpoint).data, "secret": new.secret}
        return Response(data, headers={"Cache-Control": "no-store"})


class WebhookPingView(_WebhookView):
    @extend_schema(
        parameters=[_ID],
        request=None,
        responses={202: PingSerializer, **error_responses(401, 403, 404, 406, 503)},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        delivery = webhook_ping(endpoint=self._endpoint(request, endpoint_id), actor=request.user.actor)
        return Response(
            {"event_id": delivery.event_id, "state": delivery.state}, status=status.HTTP_202_ACCEPTED
        )


class WebhookDeliveriesView(_WebhookView):
    @extend_schema(
        parameters=[
            _ID,
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": DELIVERIES_MAX},
                description=f"how many of the latest deliveries (default {DELIVERIES_DEFAULT})",
            ),
        ],
        responses={200: DeliverySerializer(many=True), **error_responses(400, 401, 404, 406, 503)},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = self._endpoint(request, endpoint_id)
        raw = request.query_params.get("limit", str(DELIVERIES_DEFAULT))
        if not raw.isdigit() or not 1 <= int(raw) <= DELIVERIES_MAX:
            raise invalid_parameter("limit", f"an integer from 1 to {DELIVERIES_MAX}")
        deliveries = delivery_list(tenant=request.user.tenant, endpoint=endpoint, limit=int(raw))
        return Response(DeliverySerializer(deliveries, many=True).data)
