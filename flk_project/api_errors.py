"""One error body across the /v1/ API: ``{"error": code, "detail": text, "field": name}``.

Ingest builds its refusals itself (``apps.pcs.errors``). The read, audit and policy APIs raise
``ApiError`` or let DRF raise its own exceptions (authentication, permission, not found, method,
content negotiation, throttling, parsing, serializer validation); ``api_exception_handler``, the
``EXCEPTION_HANDLER`` of ``REST_FRAMEWORK``, gives every one of them that body, so a client reads a
refusal of any endpoint the same way. ``field`` is present on every 400 (``""`` when the body as a
whole is at fault) and names the parameter or body field otherwise. A store that cannot be reached
(PostgreSQL, Redis) is a 503 ``store_unavailable`` with ``Retry-After``, as ingest answers it, never
a 500.

``page_not_found`` and ``server_error`` give the same body to URLs under ``/v1/`` that reach no view
(``handler404`` / ``handler500`` of the root URLconf); other URLs keep Django's pages.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db import InterfaceError, InternalError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from apps.pcs.serializers import ErrorSerializer

logger = logging.getLogger(__name__)

# A store the request needs is down or unreachable: the same errors ingest answers 503 for (Redis
# errors include a cluster that is down or loading). Integrity and data errors are not among them:
# those are defects, and stay visible as 500s.
STORE_DOWN = (OperationalError, InterfaceError, InternalError, redis.RedisError)

API_PREFIX = "/v1/"


class ApiError(exceptions.APIException):
    """A refusal of the read, audit or policy API: HTTP status, error code, text, parameter at fault."""

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.field = field


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with ingest's ``malformed_json`` refusal, and a 400 (no 500) on deep nesting."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except exceptions.ParseError as exc:
            raise ApiError(400, "malformed_json", str(exc.detail), field="") from exc
        except RecursionError as exc:
            raise ApiError(400, "malformed_json", "JSON nested too deeply", field="") from exc


def invalid_parameter(field: str, detail: str) -> ApiError:
    """The 400 for a query parameter whose value is refused."""
    return ApiError(400, "invalid_parameter", detail, field=field)


def not_found(detail: str, *, field: str | None = None) -> ApiError:
    """The 404 for a resource that does not exist for the caller (or cannot exist at all)."""
    return ApiError(404, "not_found", detail, field=field)


def _first_problem(detail: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of a serializer's nested error detail."""
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        name = "" if key in ("non_field_errors", "detail") else str(key)
        return _first_problem(value, f"{path}.{name}" if path and name else path or name)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, dict | list):
            return _first_problem(first, f"{path}[0]")
        return path, str(first)
    return path, str(detail)


def error_body(exc: exceptions.APIException) -> dict[str, str]:
    """The JSON body of a refusal raised as a DRF exception."""
    if isinstance(exc, ApiError):
        body = {"error": exc.detail.code, "detail": str(exc.detail)}
        if exc.field is not None:
            body["field"] = exc.field
        elif exc.status_code == 400:
            body["field"] = ""
        return body
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_problem(exc.detail)
        return {"error": "invalid_request", "detail": message, "field": field}
    if isinstance(exc, exceptions.Throttled):
        # The name ingest uses for the same refusal.
        return {"error": "rate_limited", "detail": str(exc.detail)}
    code = getattr(exc.detail, "code", None) or exc.default_code
    body = {"error": str(code), "detail": str(exc.detail)}
    if exc.status_code == 400:
        body["field"] = ""
    return body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (status, ``WWW-Authenticate``, ``Retry-After``, rollback) with the project's body.

    Anything that is neither a refusal nor a store outage is left to Django (a logged 500).
    """
    if isinstance(exc, STORE_DOWN):
        view = type(context.get("view")).__name__
        logger.error("api.store_unavailable view=%s error=%s", view, type(exc).__name__)
        set_rollback()
        store = "the Redis store" if isinstance(exc, redis.RedisError) else "the database"
        return Response(
            {"error": "store_unavailable", "detail": f"{store} is unavailable"},
            status=503,
            headers={"Retry-After": str(settings.RETRY_AFTER_SECONDS)},  # as ingest's 503
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        return None
    response.data = error_body(exc)
    return response


def _wants_api_body(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: a URL under /v1/ that names no endpoint answers the JSON body."""
    if _wants_api_body(request):
        return JsonResponse({"error": "not_found", "detail": "no such endpoint"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: a request Django refuses before any view (a Host not allowed, say)."""
    if _wants_api_body(request):
        return JsonResponse({"error": "bad_request", "detail": "the request was refused"}, status=400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: an unexpected failure under /v1/ still answers the JSON body (no traceback)."""
    if _wants_api_body(request):
        return JsonResponse(
            {"error": "internal_error", "detail": "the server failed; it is logged"}, status=500
        )
    return defaults.server_error(request)


# -- OpenAPI -----------------------------------------------------------------------------------

_WHEN = {
    400: 'A parameter or body field is refused; `field` names it (`""` for the body as a whole).',
    401: "No token, or a token that is unknown, revoked or of an inactive tenant (`WWW-Authenticate`).",
    403: "The token may not do this (changing policies needs a token of scope `policy`).",
    404: "Nothing with this id exists for this token's tenant; ids that cannot exist answer the same.",
    406: "The `Accept` header excludes `application/json`.",
    409: "The change does not fit the current state.",
    415: "The body's media type is not JSON, form or multipart.",
    429: "Rate limited; retry after `Retry-After` seconds.",
    503: "A store this request needs (PostgreSQL, Redis) is unavailable; retry after `Retry-After` seconds.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for ``statuses``, each with the project's error body."""
    return {status: OpenApiResponse(ErrorSerializer, description=_WHEN[status]) for status in statuses}
