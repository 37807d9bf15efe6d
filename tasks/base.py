"""The project-wide task decorator: name, queue, time limits and retries in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flk_project.celery import app


def flk_task(*, queue: str, soft_time_limit: int = 300, **options: Any) -> Callable[..., Any]:
    """Register a task on ``queue`` with a soft and hard time limit."""
    return app.task(
        queue=queue,
        soft_time_limit=soft_time_limit,
        time_limit=soft_time_limit + 30,
        acks_late=True,
        **options,
    )
