"""Liveness and readiness probes."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.pcs.dedup import DedupUnavailable, get_dedup_store


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def health(request: HttpRequest) -> HttpResponse:
    """Liveness as the original FLK clients poll it: 200 with the text ``OK``."""
    return HttpResponse("OK", content_type="text/plain; charset=utf-8")


def readyz(request: HttpRequest) -> JsonResponse:
    """The database and the dedup store answer; 503 names the one that does not."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError:
        checks["database"] = "unavailable"
    try:
        get_dedup_store().ping()
        checks["dedup"] = "ok"
    except DedupUnavailable:
        checks["dedup"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503
    )
