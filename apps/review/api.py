"""The review API: a ``review``-scope token lists its tenant's queue, claims items and decides them.

``GET /v1/review/items?state=open|pending|claimed|accepted|rejected|decided|all`` (oldest first,
cursor-paginated), ``GET /v1/review/items/{pcs_id}``, ``POST /v1/review/items/{pcs_id}/claim``,
``POST /v1/review/items/{pcs_id}/release``, ``POST /v1/review/items/{pcs_id}/decision``
(``{"outcome": "accept"|"reject", "reason": "…"}``) and ``POST /v1/review/decisions`` (the same for
``"pcs_ids": […]``, one result each). Another tenant's PCS, or one that was not escalated, is 404; a
decided item or one claimed by another reviewer is 409; a missing outcome or reason is 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.pcs.read_api import DecidedFirstPagination
from apps.pcs.selectors import PCS_ID
from apps.review.errors import ReviewError, ReviewInvalid, ReviewNotFound
from apps.review.models import ReviewItem
from apps.review.selectors import STATE_FILTERS, review_item_get, review_items, review_view
from apps.review.serializers import (
    BulkDecisionRequestSerializer,
    BulkResultsSerializer,
    DecisionRequestSerializer,
    ReviewItemSerializer,
    ReviewViewSerializer,
)
from apps.review.services import (
    review_claim,
    review_decide,
    review_decide_many,
    review_queue_sync,
    review_release,
)
from apps.tenants.auth import CanReview, TenantTokenAuthentication
from flk_project.api_errors import ApiError, StrictJSONParser, error_responses, not_found
from flk_project.api_params import choice_param

_PCS_ID_PARAM = OpenApiParameter(
    "pcs_id",
    {"type": "string", "pattern": f"^{PCS_ID.pattern}$"},
    OpenApiParameter.PATH,
    description="lowercase hex SHA-256 (64 digits) of an escalated PCS",
)
_READ = (401, 403, 404, 406, 503)
_CHANGE = (400, 401, 403, 404, 406, 409, 415, 503)


def api_error(exc: ReviewError) -> ApiError:
    """The HTTP refusal of a review error: 404 unknown, 409 state, 400 request."""
    if isinstance(exc, ReviewNotFound):
        return not_found(exc.detail, field=exc.field or "pcs_id")
    if isinstance(exc, ReviewInvalid):
        return ApiError(400, exc.code, exc.detail, field=exc.field or "")
    return ApiError(409, exc.code, exc.detail, field=exc.field)


def status_of(exc: ReviewError) -> int:
    """The status ``api_error`` gives ``exc``."""
    if isinstance(exc, ReviewNotFound):
        return 404
    if isinstance(exc, ReviewInvalid):
        return 400
    return 409


class _ReviewScoped:
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [CanReview]
    parser_classes = [StrictJSONParser]


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object", field="")
    return request.data


class QueuePagination(DecidedFirstPagination):
    """The read API's strict cursor pagination, oldest escalation first: a queue is worked FIFO."""

    ordering = "id"


class ReviewItemListView(_ReviewScoped, ListAPIView):
    """``GET /v1/review/items``: the tenant's queue (``state=open`` by default), oldest first."""

    serializer_class = ReviewItemSerializer
    pagination_class = QueuePagination

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=list(STATE_FILTERS), description="default: open")],
        responses={200: ReviewItemSerializer(many=True), **error_responses(400, 401, 403, 406, 503)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # noqa: ANN201
        state = choice_param(self.request.query_params, "state", STATE_FILTERS) or "open"
        tenant = self.request.user.tenant
        # Decisions escalated since the last sync join the queue before it is listed.
        review_queue_sync(tenant=tenant)
        return review_items(tenant=tenant, state=state).select_related("tenant")


class ReviewItemDetailView(_ReviewScoped, APIView):
    """``GET /v1/review/items/{pcs_id}``: the PCS, its recomputed values, checks and audit history."""

    @extend_schema(
        parameters=[_PCS_ID_PARAM], responses={200: ReviewViewSerializer, **error_responses(*_READ)}
    )
    def get(self, request: Request, pcs_id: str) -> Response:
        tenant = request.user.tenant
        item = review_item_get(tenant=tenant, pcs_id=pcs_id)
        if item is None and PCS_ID.fullmatch(pcs_id):
            review_queue_sync(tenant=tenant)
            item = review_item_get(tenant=tenant, pcs_id=pcs_id)
        if item is None:
            raise not_found("no escalated PCS with this id for this tenant", field="pcs_id")
        return Response(ReviewViewSerializer(review_view(item=item)).data)


class _ItemHoldView(_ReviewScoped, APIView):
    """A claim or its release: the service ``hold`` on one item, answered with the item."""

    hold: Callable[..., ReviewItem]

    @extend_schema(
        parameters=[_PCS_ID_PARAM],
        request=None,
        responses={200: ReviewItemSerializer, **error_responses(*_CHANGE)},
    )
    def post(self, request: Request, pcs_id: str) -> Response:
        try:
            item = self.hold(tenant=request.user.tenant, pcs_id=pcs_id, actor=request.user.actor)
        except ReviewError as exc:
            raise api_error(exc) from exc
        return Response(ReviewItemSerializer(item).data)


class ReviewClaimView(_ItemHoldView):
    """``POST /v1/review/items/{pcs_id}/claim``: hold the item for ``REVIEW_CLAIM_SECONDS``."""

    hold = staticmethod(review_claim)


class ReviewReleaseView(_ItemHoldView):
    """``POST /v1/review/items/{pcs_id}/release``: give a claim back to the queue."""

    hold = staticmethod(review_release)


class ReviewDecisionView(_ReviewScoped, APIView):
    """``POST /v1/review/items/{pcs_id}/decision``: accept or reject, with a reason."""

    @extend_schema(
        parameters=[_PCS_ID_PARAM],
        request=DecisionRequestSerializer,
        responses={200: ReviewItemSerializer, **error_responses(*_CHANGE)},
    )
    def post(self, request: Request, pcs_id: str) -> Response:
        body = _body(request)
        try:
            item = review_decide(
                tenant=request.user.tenant,
                pcs_id=pcs_id,
                outcome=body.get("outcome"),
                reason=body.get("reason"),
                actor=request.user.actor,
            )
        except ReviewError as exc:
            raise api_error(exc) from exc
        return Response(ReviewItemSerializer(item).data)


class ReviewBulkDecisionView(_ReviewScoped, APIView):
    """``POST /v1/review/decisions``: one outcome and reason for many PCS, a result for each.

    The answer is 200 with one result per pcs_id in order, each with the status the single endpoint
    would have given; only a body that is wrong as a whole (no list, bad outcome or reason, too many
    ids) is refused for all of it, before anything changes.
    """

    @extend_schema(
        request=BulkDecisionRequestSerializer,
        responses={200: BulkResultsSerializer, **error_responses(400, 401, 403, 406, 415, 503)},
    )
    def post(self, request: Request) -> Response:
        body = _body(request)
        pcs_ids = body.get("pcs_ids")
        if not isinstance(pcs_ids, list) or not pcs_ids or not all(isinstance(p, str) for p in pcs_ids):
            raise ApiError(
                400, "invalid_request", "pcs_ids must be a non-empty list of strings", field="pcs_ids"
            )
        try:
            results = review_decide_many(
                tenant=request.user.tenant,
                pcs_ids=pcs_ids,
                outcome=body.get("outcome"),
                reason=body.get("reason"),
                actor=request.user.actor,
            )
        except ReviewInvalid as exc:
            raise api_error(exc) from exc
        answer = []
        for result in results:
            if result.item is not None:
                answer.append(
                    {"pcs_id": result.pcs_id, "status": 200, "item": ReviewItemSerializer(result.item).data}
                )
            elif result.error is not None:
                # An id that cannot exist is echoed escaped: a lone surrogate could not be encoded.
                echoed = result.pcs_id.encode("utf-8", "backslashreplace").decode()
                answer.append(
                    {
                        "pcs_id": echoed,
                        "status": status_of(result.error),
                        "error": result.error.code,
                        "detail": result.error.detail,
                    }
                )
        return Response({"results": answer})
