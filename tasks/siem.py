"""SIEM tasks: stream new audit entries to every active sink. Safe to run twice, or on two workers at once.

Each (sink, tenant) cursor is locked with SKIP LOCKED while a batch is shipped, so a second run finds
busy cursors and moves on; a run ends within ``SIEM_RUN_SECONDS``, and beat's message expires before
the next is due, so runs never queue up behind a slow sink.
"""

from __future__ import annotations

from typing import Any

from apps.siem.delivery import siem_stream as stream_all
from tasks.base import flk_task


@flk_task(queue="siem", name="tasks.siem.siem_stream", soft_time_limit=120)
def siem_stream() -> dict[str, Any]:
    """Deliver what every active sink has not delivered yet, within one run's time budget."""
    return stream_all()
