"""The whole beat schedule."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab
from django.conf import settings

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "wal-maintain": {"task": "tasks.wal.wal_maintain", "schedule": 60.0},
    "seal-checkpoints": {"task": "tasks.audit.seal_checkpoints", "schedule": 60.0},
    "anchor-checkpoints": {"task": "tasks.audit.anchor_checkpoints", "schedule": 60.0},
    "async-audit": {"task": "tasks.audit.async_audit", "schedule": 60.0},
    # Webhooks: new escalations and review outcomes reach receivers within seconds; runs that pile up
    # while the worker is away expire, since one run catches up on everything.
    "webhooks-dispatch": {"task": "tasks.webhooks.dispatch", "schedule": 5.0, "options": {"expires": 5.0}},
    # SIEM streaming every 5 s; a message not picked up within 5 s is dropped, as the next one is due.
    "siem-stream": {"task": "tasks.siem.siem_stream", "schedule": 5.0, "options": {"expires": 5.0}},
    # Review queue: new escalations become queue items (the API and admin also sync before listing).
    "review-queue-sync": {
        "task": "tasks.review.review_queue_sync",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    # Compliance reports: daily, request last month's reports still missing (the month's first run
    # makes them, later days catch up after downtime); failed-auth counts move from Redis every minute.
    "reports-monthly": {
        "task": "tasks.reports.request_monthly_reports",
        "schedule": crontab(minute=30, hour=1),
        "options": {"expires": 3600.0},
    },
    "reports-auth-failures-flush": {
        "task": "tasks.reports.flush_auth_failures",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Tiering: demote warm records past TIER_WARM_TTL in bounded batches; a run resumes what a crash left.
    "tier-demote": {
        "task": "tasks.tiering.tier_demote",
        "schedule": settings.TIER_DEMOTE_INTERVAL_SECONDS,
        "options": {"expires": settings.TIER_DEMOTE_INTERVAL_SECONDS},
    },
    # Regions (apps.regions, docs/regions.md): ship and pull every CRR_SHIP_INTERVAL_SECONDS, compare the
    # decided sets every CRR_DIFF_INTERVAL_SECONDS; no-ops unless WAL_REPLICATION_ENABLED.
    "crr-ship": {
        "task": "tasks.regions.crr_ship",
        "schedule": settings.CRR_SHIP_INTERVAL_SECONDS,
        "options": {"expires": settings.CRR_SHIP_INTERVAL_SECONDS},
    },
    "crr-pull": {
        "task": "tasks.regions.crr_pull",
        "schedule": settings.CRR_SHIP_INTERVAL_SECONDS,
        "options": {"expires": settings.CRR_SHIP_INTERVAL_SECONDS},
    },
    "crr-diff": {
        "task": "tasks.regions.crr_diff",
        "schedule": settings.CRR_DIFF_INTERVAL_SECONDS,
        "options": {"expires": settings.CRR_DIFF_INTERVAL_SECONDS},
    },
}
