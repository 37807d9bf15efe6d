"""The reports API: request a compliance report, follow its build, download its bundle.

Every view needs a tenant token of scope ``reports`` (401 without a token, 403 with another scope) and
sees its own tenant's reports only: another tenant's report answers 404, exactly like one that does
not exist. A bad framework or period is a 400 naming the field; a bundle not built yet is a 409.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.reports.bundle import bundle_chunks
from apps.reports.frameworks import FRAMEWORKS
from apps.reports.models import ReportRun
from apps.reports.selectors import report_runs_for
from apps.reports.services import ReportError, report_request
from apps.tenants.auth import CanBuildReports, TenantTokenAuthentication
from flk_project.api_errors import ApiError, StrictJSONParser, error_responses, invalid_parameter, not_found
from flk_project.api_negotiation import FirstRendererNegotiation
from flk_project.api_params import BIGINT_MAX, datetime_param

LIST_LIMIT = 100  # newest runs listed; older ones stay reachable by id
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])", re.ASCII)


class ReportRunSerializer(serializers.ModelSerializer):
    """A report run as the API shows it."""

    tenant = serializers.CharField(source="tenant.slug")
    bundle_url = serializers.SerializerMethodField()
    checkpoint_tree_size = serializers.SerializerMethodField()
    previous_checkpoint_tree_size = serializers.SerializerMethodField()

    class Meta:
        model = ReportRun
        fields = [
            "id",
            "tenant",
            "framework",
            "period_start",
            "period_end",
            "state",
            "progress",
            "phase",
            "error",
            "sha256",
            "size",
            "checkpoint_tree_size",
            "previous_checkpoint_tree_size",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "bundle_url",
        ]

    def get_bundle_url(self, run: ReportRun) -> str | None:
        return f"/v1/reports/{run.pk}/bundle" if run.state == ReportRun.DONE else None

    def get_checkpoint_tree_size(self, run: ReportRun) -> int | None:
        return run.checkpoint.tree_size if run.checkpoint_id else None

    def get_previous_checkpoint_tree_size(self, run: ReportRun) -> int | None:
        return run.previous_checkpoint.tree_size if run.previous_checkpoint_id else None


class ReportRequestSerializer(serializers.Serializer):
    """``framework`` and either ``period`` (a month, ``YYYY-MM``) or ``period_start`` and ``period_end``."""

    framework = serializers.ChoiceField(choices=list(FRAMEWORKS))
    period = serializers.CharField(required=False, help_text="a calendar month in UTC, e.g. 2026-10")
    period_start = serializers.DateTimeField(required=False, help_text="ISO 8601 with a zone (inclusive)")
    period_end = serializers.DateTimeField(required=False, help_text="ISO 8601 with a zone (exclusive)")


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid_parameter(name, "must be a string")
    return value


def _period(body: dict[str, Any]) -> tuple[datetime, datetime]:
    month = _text(body, "period")
    if month is not None:
        match = _MONTH.fullmatch(month)
        if match is None:
            raise invalid_parameter("period", "a calendar month, YYYY-MM (e.g. 2026-10)")
        year, number = int(match.group(1)), int(match.group(2))
        if year < 2000:
            raise invalid_parameter("period", "no month before 2000")
        last = calendar.monthrange(year, number)[1]
        start = datetime(year, number, 1, tzinfo=UTC)
        end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=UTC)
        assert (end - start).days == last
        return start, end
    texts = {name: _text(body, name) for name in ("period_start", "period_end")}
    start = datetime_param(texts, "period_start")  # type: ignore[arg-type]
    end = datetime_param(texts, "period_end")  # type: ignore[arg-type]
    if start is None or end is None:
        raise invalid_parameter("period", "give period (YYYY-MM) or both period_start and period_end")
    return start, end


class _ReportsView(APIView):
    authentication_classes = [TenantTokenAuthentication]
    permission_classes = [CanBuildReports]
    parser_classes = [StrictJSONParser]

    def run(self, request: Request, run_id: int) -> ReportRun:
        # An id past bigint cannot exist (and would make PostgreSQL raise rather than find nothing).
        run = (
            None
            if run_id > BIGINT_MAX
            else report_runs_for(tenant=request.user.tenant).filter(pk=run_id).first()
        )
        if run is None:
            raise not_found("no report with this id for this tenant", field="id")
        return run


_ERRORS = (401, 403, 406, 503)


class ReportListView(_ReportsView):
    @extend_schema(responses={200: ReportRunSerializer(many=True), **error_responses(*_ERRORS)})
    def get(self, request: Request) -> Response:
        runs = report_runs_for(tenant=request.user.tenant).select_related("checkpoint", "previous_checkpoint")
        return Response(ReportRunSerializer(runs[:LIST_LIMIT], many=True).data)

    @extend_schema(
        request=ReportRequestSerializer,
        responses={202: ReportRunSerializer, **error_responses(400, *_ERRORS, 415)},
    )
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else None
        if body is None:
            raise ApiError(400, "invalid_request", "the body is a JSON object", field="")
        framework = _text(body, "framework")
        if framework not in FRAMEWORKS:
            raise invalid_parameter("framework", f"one of {', '.join(FRAMEWORKS)}")
        start, end = _period(body)
        try:
            run = report_request(
                tenant=request.user.tenant,
                framework=framework,
                period_start=start,
                period_end=end,
                created_by=request.user.actor,
            )
        except ReportError as exc:
            raise invalid_parameter(exc.field, str(exc)) from exc
        return Response(
            ReportRunSerializer(run).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/v1/reports/{run.pk}"},
        )


class ReportDetailView(_ReportsView):
    @extend_schema(responses={200: ReportRunSerializer, **error_responses(*_ERRORS, 404)})
    def get(self, request: Request, run_id: int) -> Response:
        return Response(ReportRunSerializer(self.run(request, run_id)).data)


class ReportBundleView(_ReportsView):
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="the bundle (zip)"),
            **error_responses(*_ERRORS, 404, 409),
        }
    )
    def get(self, request: Request, run_id: int) -> Any:
        run = self.run(request, run_id)
        if run.state != ReportRun.DONE:
            raise ApiError(409, "report_not_ready", f"the report is {run.state} ({run.progress}%)")
        chunks = bundle_chunks(run.bundle_location)
        try:
            first = next(chunks)
        except (OSError, StopIteration) as exc:
            raise ApiError(503, "store_unavailable", "the report's bundle cannot be read now") from exc
        response = StreamingHttpResponse(_prepend(first, chunks), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{run.filename}"'
        response["Content-Length"] = str(run.size)
        response["Digest"] = f"sha-256={run.sha256}"
        return response


def _prepend(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest
