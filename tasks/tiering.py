"""Celery task of the tiering app: demote old warm records to the cold tier (queue ``tiering``)."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError

from apps.pcs.tiers import TierUnavailable
from apps.tiering.services import tier_demote
from tasks.base import flk_task


# Retried with backoff when the cold store or the database is unavailable: nothing was deleted, and the
# retry resumes the batch from its recorded state. Beat starts a fresh run every interval anyway.
@flk_task(
    queue="tiering",
    name="tasks.tiering.tier_demote",
    soft_time_limit=900,
    autoretry_for=(TierUnavailable, DatabaseError),
    retry_backoff=settings.TIER_DEMOTE_RETRY_BACKOFF_SECONDS,
    retry_backoff_max=600,
    max_retries=8,
)
def tier_demote_task() -> dict[str, object]:
    """One bounded demotion run (``apps.tiering.services.tier_demote``). Safe to run twice."""
    return tier_demote().as_dict()
