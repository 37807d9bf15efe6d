"""Review metrics: the backlog per tenant, and how long escalated PCS wait for a decision.

``flk_review_backlog{tenant_id}`` is read from the database when Prometheus scrapes (``ReviewCollector``,
registered with ``flk_project.metrics_view`` like the audit backlog), so it is exact whichever process
took items in or decided them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger("flk.review")

time_to_decision = Histogram(
    "flk_review_time_to_decision_seconds",
    "Time from a PCS's escalation to its review decision",
    ["outcome"],
    # Reviews take minutes to days, not milliseconds.
    buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400),
)


class ReviewCollector(Collector):
    """``flk_review_backlog{tenant_id}``: escalated PCS not yet accepted or rejected, per tenant."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Take new escalations into the queues, then yield the gauge; nothing when the database is down."""
        # Imported here: the services import this module for the histogram.
        from apps.review.selectors import review_backlog
        from apps.review.services import review_queue_sync_all

        try:
            review_queue_sync_all()
            counts = review_backlog()
        except DatabaseError as exc:
            logger.warning("metrics.review_unavailable error=%s", exc)
            return
        gauge = GaugeMetricFamily(
            "flk_review_backlog",
            "Escalated PCS not yet accepted or rejected by a reviewer (pending or claimed)",
            labels=["tenant_id"],
        )
        for slug, count in sorted(counts.items()):
            gauge.add_metric([slug], count)
        yield gauge
