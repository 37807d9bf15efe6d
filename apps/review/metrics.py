"""Review metrics: the backlog per tenant, and how long escalated PCS wait for a decision.

``flk_review_backlog{tenant_id}`` is read from the database when Prometheus scrapes, like the audit
backlog, so it is exact whichever process took items in or decided them. ``/metrics``
(``flk_project.metrics_view``) builds its own registry per scrape and registers only the collectors
it knows, so this app refreshes a gauge when a scrape starts instead (``refresh_on_scrape``, connected
to ``request_started`` in ``ReviewConfig.ready``). The gauge's multiprocess mode is ``mostrecent``: of
the values gunicorn's workers wrote, the scrape reports the one this request just set.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.handlers.wsgi import WSGIRequest
from django.db import DatabaseError
from prometheus_client import Gauge, Histogram

from flk_project import metrics_view

logger = logging.getLogger("flk.review")

METRICS_PATH = "/metrics"

backlog = Gauge(
    "flk_review_backlog",
    "Escalated PCS not yet accepted or rejected by a reviewer (pending or claimed)",
    ["tenant_id"],
    multiprocess_mode="mostrecent",
)
time_to_decision = Histogram(
    "flk_review_time_to_decision_seconds",
    "Time from a PCS's escalation to its review decision",
    ["outcome"],
    # Reviews take minutes to days, not milliseconds.
    buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400),
)


def backlog_refresh() -> None:
    """Take new escalations into every tenant's queue and set the backlog gauge from the database."""
    from apps.review.selectors import review_backlog
    from apps.review.services import review_queue_sync_all

    review_queue_sync_all()
    for slug, count in review_backlog().items():
        backlog.labels(slug).set(count)


def refresh_on_scrape(sender: object, environ: dict[str, Any] | None = None, **_: object) -> None:
    """``request_started`` receiver: refresh the backlog before ``/metrics`` collects.

    Every other request returns at the path comparison, and a scrape without the metrics
    credentials (which the view refuses) does not reach the database. A database that cannot answer
    leaves the last values and a log line; the scrape itself still succeeds.
    """
    if not environ or environ.get("PATH_INFO") != METRICS_PATH:
        return
    if not metrics_view._authorized(WSGIRequest(environ)):  # the view's own check, not a copy of it
        return
    try:
        backlog_refresh()
    except DatabaseError as exc:
        logger.warning("metrics.review_unavailable error=%s", exc)
