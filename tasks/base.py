"""The project-wide task decorator: name, queue, time limits and retries in one place.

Queues are separate per concern (``wal``, later ``anchoring``, ``audits``, ``tiering``, ``reports``)
so a long report never delays WAL work. The queue is routed by task name through ``route_task``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flk_project.celery import app

TASK_QUEUES: dict[str, str] = {}


def flk_task(*, name: str, queue: str, soft_time_limit: int = 300, **options: Any) -> Callable[..., Any]:
    """Register a task under ``name`` on ``queue`` with a soft and a hard time limit."""
    TASK_QUEUES[name] = queue
    return app.task(
        name=name,
        soft_time_limit=soft_time_limit,
        time_limit=soft_time_limit + 30,
        acks_late=True,
        **options,
    )


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict | None:
    """Celery router: the queue a task was declared with."""
    queue = TASK_QUEUES.get(name)
    return {"queue": queue} if queue else None
