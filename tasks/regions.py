"""Region replication tasks (queue ``crr``): ship, pull, diff. Each is a no-op unless
``WAL_REPLICATION_ENABLED``; each is safe to run twice (runs exclude each other through advisory locks)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.regions.divergence import crr_diff
from apps.regions.reader import crr_pull
from apps.regions.shipping import crr_ship
from tasks.base import flk_task


@flk_task(queue="crr", name="tasks.regions.crr_ship")
def crr_ship_task() -> dict[str, Any]:
    """Publish the control plane and ship the WAL written since the last run to the remote buckets."""
    if not settings.WAL_REPLICATION_ENABLED:
        return {"enabled": False}
    return crr_ship().as_dict()


@flk_task(queue="crr", name="tasks.regions.crr_pull")
def crr_pull_task() -> dict[str, Any]:
    """Apply the other regions' control-plane snapshots and replay their new chunks."""
    if not settings.WAL_REPLICATION_ENABLED:
        return {"enabled": False}
    return crr_pull().as_dict()


@flk_task(queue="crr", name="tasks.regions.crr_diff")
def crr_diff_task() -> dict[str, Any]:
    """Compare decided sets with the other regions, drill down and reconcile."""
    if not settings.WAL_REPLICATION_ENABLED:
        return {"enabled": False}
    return {"peers": [report.as_dict() for report in crr_diff()]}
