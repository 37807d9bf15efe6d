"""Liveness and readiness probes."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.pcs.dedup import DedupUnavailable, get_dedup_store
from flk_project.redis_clients import hot_store_health


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def health(request: HttpRequest) -> HttpResponse:
    """Liveness as the original FLK clients poll it: 200 with the text ``OK``."""
    return HttpResponse("OK", content_type="text/plain; charset=utf-8")


def readyz(request: HttpRequest) -> JsonResponse:
    """The database and the dedup store answer; 503 names the one that does not.

    With a Redis Cluster (DEDUP_SHARDS), ``redis_cluster`` is ``ok``, ``degraded`` (some masters or slots
    are not served: their keys answer 503, every other key is served) or ``unavailable``. Degraded is
    still ready: the outage is the same for every web process, and taking them all out of the load
    balancer would refuse the keys that can be served as well.
    """
    checks: dict[str, str] = {}
    extra: dict[str, object] = {}
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
    cluster = hot_store_health()
    if cluster is not None:
        checks["redis_cluster"] = cluster.state
        extra["redis_cluster"] = cluster.as_dict()
    ready = all(v == "ok" or (name, v) == ("redis_cluster", "degraded") for name, v in checks.items())
    return JsonResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks, **extra}, status=200 if ready else 503
    )
