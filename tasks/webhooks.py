"""Webhook tasks on the ``webhooks`` queue: the dispatcher (beat) and one delivery attempt.

Both are safe to run twice: the dispatcher holds each tenant's cursor row while it writes that
tenant's deliveries, and an attempt first claims its delivery with a conditional UPDATE, so a repeated
message finds nothing due and sends nothing. Retries are not Celery retries: a failed attempt records
its row and queues the next one itself, with the backoff the delivery row keeps.
"""

from __future__ import annotations

from apps.webhooks.services import webhook_delivery_attempt, webhook_dispatch
from tasks.base import flk_task


@flk_task(queue="webhooks", name="tasks.webhooks.dispatch", soft_time_limit=120)
def dispatch() -> dict[str, int]:
    """Make deliveries of new escalations and review outcomes; queue again what was lost."""
    return webhook_dispatch()


@flk_task(queue="webhooks", name="tasks.webhooks.deliver", soft_time_limit=120)
def deliver(delivery_id: int) -> str:
    """Attempt one delivery if it is due: ``delivered``, ``retry``, ``failed`` or ``skipped``."""
    return webhook_delivery_attempt(delivery_id=delivery_id)
