"""The whole beat schedule."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "wal-maintain": {"task": "tasks.wal.wal_maintain", "schedule": 60.0},
    "seal-checkpoints": {"task": "tasks.audit.seal_checkpoints", "schedule": 60.0},
    "anchor-checkpoints": {"task": "tasks.audit.anchor_checkpoints", "schedule": 60.0},
    "async-audit": {"task": "tasks.audit.async_audit", "schedule": 60.0},
    # SIEM streaming every 5 s; a message not picked up within 5 s is dropped, as the next one is due.
    "siem-stream": {"task": "tasks.siem.siem_stream", "schedule": 5.0, "options": {"expires": 5.0}},
}
