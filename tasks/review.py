"""Celery tasks of the review app: keep every tenant's review queue up with new escalations."""

from __future__ import annotations

from django.db import DatabaseError

from apps.review.services import review_queue_sync_all
from tasks.base import flk_task


# On "default": a few indexed queries per tenant, and the queue every worker of `make run` consumes
# (a "review" queue would fill the broker wherever a worker is not told to read it).
@flk_task(
    queue="default",
    name="tasks.review.review_queue_sync",
    soft_time_limit=120,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=3,
)
def review_queue_sync() -> dict[str, int]:
    """Take escalated PCS decided since the last run into each tenant's queue. Safe to run twice.

    The API and the admin also sync before they list, so this keeps the queue (and whoever reads
    ``ReviewItem`` directly) current between their visits.
    """
    return review_queue_sync_all()
