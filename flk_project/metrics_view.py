"""``/metrics`` behind HTTP Basic Auth, merged across processes in multiprocess mode."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# Collectors that read the database at each scrape (exact whichever process last changed what they
# count): apps add theirs in their AppConfig.ready, so this module imports none of them.
_SCRAPE_COLLECTORS: list[Callable[[], Collector]] = []


def scrape_collector_register(factory: Callable[[], Collector]) -> None:
    """Have every scrape include the collector ``factory`` makes (once per factory)."""
    if factory not in _SCRAPE_COLLECTORS:
        _SCRAPE_COLLECTORS.append(factory)


class _ProcessCollector(Collector):
    """This process's own metrics, when they are not merged from multiprocess files."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def _authorized(request: HttpRequest) -> bool:
    if not settings.METRICS_PASS:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = hmac.compare_digest(user.encode(), settings.METRICS_USER.encode())
    pass_ok = hmac.compare_digest(password.encode(), settings.METRICS_PASS.encode())
    return user_ok and pass_ok


def metrics(request: HttpRequest) -> HttpResponse:
    """Serve Prometheus metrics to a scraper that presents METRICS_USER/METRICS_PASS."""
    if not _authorized(request):
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Basic realm="flk-metrics"'
        return response
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    for factory in _SCRAPE_COLLECTORS:
        registry.register(factory())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
