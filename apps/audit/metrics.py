"""Audit gauges, read from the database when Prometheus scrapes.

The backlog lives in the database (log heads against audit cursors), so computing it at scrape time is
exact whichever process audited last, and needs no multiprocess gauge files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.audit.models import AuditDeadLetter
from apps.audit.reverify import audit_backlog

logger = logging.getLogger("flk.audit")


class AuditCollector(Collector):
    """``flk_audit_backlog{tenant_id}`` and ``flk_audit_dead_letters_open{tenant_id}``."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges; nothing (and a log line) when the database cannot answer."""
        try:
            backlog = audit_backlog()
            open_letters: dict[str, int] = {}
            for slug in AuditDeadLetter.objects.filter(resolved_at__isnull=True).values_list(
                "tenant__slug", flat=True
            ):
                open_letters[slug] = open_letters.get(slug, 0) + 1
        except DatabaseError as exc:
            logger.warning("metrics.audit_unavailable error=%s", exc)
            return
        gauge = GaugeMetricFamily(
            "flk_audit_backlog", "Audit entries not yet re-verified by async_audit", labels=["tenant_id"]
        )
        for slug, count in sorted(backlog.items()):
            gauge.add_metric([slug], count)
        yield gauge
        letters = GaugeMetricFamily(
            "flk_audit_dead_letters_open", "Audit findings waiting for an operator", labels=["tenant_id"]
        )
        for slug in sorted(backlog):
            letters.add_metric([slug], open_letters.get(slug, 0))
        yield letters
