"""WAL maintenance: decide requests nobody answered, then prune old done segments."""

from __future__ import annotations

from typing import Any

from apps.pcs.replay import wal_prune, wal_replay
from tasks.base import flk_task


@flk_task(queue="wal", name="tasks.wal.wal_maintain")
def wal_maintain() -> dict[str, Any]:
    """Replay undecided records older than the grace period and apply retention. Safe to run twice."""
    report = wal_replay().as_dict()
    report["pruned_segments"] = wal_prune()
    return report
