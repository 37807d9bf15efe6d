"""Delivering the outbox: every PCS decided once in effect, however often it has to be sent.

DESIGN §4: 200 and 202 (replayed or not) ack; 400, 401, 413 and 422 are permanent and go to the
dead-letter file with the server's reason; 408, 409, 429, 5xx and network errors are retried with
exponential backoff and full jitter, never sooner than ``Retry-After``, until the retry budget sends
the PCS to the dead-letter file too. Retries are safe because the server deduplicates on pcs_id.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from flk_agent.builder import utc_now_rfc3339
from flk_agent.client import FlkClient, SubmitResult
from flk_agent.outbox import Outbox, OutboxRecord

logger = logging.getLogger("flk_agent.delivery")

ACCEPTED = frozenset({200, 202})
PERMANENT = frozenset({400, 401, 413, 422})
RETRYABLE = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff and budget: attempt k waits uniform(0, min(cap, base * 2**k)), at least Retry-After."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    max_attempts: int = 12
    max_elapsed_seconds: float = 3600.0

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        jitter = rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * (2**attempt)))
        return max(jitter, retry_after or 0.0)


@dataclass
class DeliveryReport:
    """What one delivery pass achieved."""

    acked: int = 0
    dead: int = 0
    attempts: int = 0
    results: list[tuple[str, int | None, str]] = field(default_factory=list)  # pcs_id, status, outcome


def _is_retryable(status: int) -> bool:
    return status in RETRYABLE or status >= 500


def deliver_record(
    outbox: Outbox,
    client: FlkClient,
    record: OutboxRecord,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    report: DeliveryReport | None = None,
) -> str:
    """Send one record until it is acked or dead-lettered; return ``"acked"`` or ``"dead"``."""
    rng = rng or random.Random()
    report = report if report is not None else DeliveryReport()
    started = time.monotonic()
    attempt = record.attempts
    while True:
        # Unsigned fields say when and how often this PCS was sent; the signature does not cover them.
        pcs = dict(record.pcs, attempt=attempt + 1, sent_at=utc_now_rfc3339())
        report.attempts += 1
        try:
            result: SubmitResult | None = client.submit(pcs)
            status, error = result.status, result.error
        except httpx.TransportError as exc:
            result, status, error = None, None, f"network: {type(exc).__name__}"
        if status in ACCEPTED:
            outbox.record_attempt(record, status=status)
            outbox.ack(record, status)
            report.acked += 1
            report.results.append(
                (record.pcs_id, status, "replayed" if result and result.replayed else "acked")
            )
            return "acked"
        if status is not None and (status in PERMANENT or not (_is_retryable(status))):
            outbox.record_attempt(record, status=status, error=error)
            detail = result.body.get("detail") if result else None
            outbox.dead_letter(record, error or f"http_{status}", status=status, detail=detail)
            report.dead += 1
            report.results.append((record.pcs_id, status, "dead"))
            return "dead"
        attempt += 1
        retry_after = result.retry_after if result else None
        elapsed = time.monotonic() - started
        if attempt >= policy.max_attempts or elapsed >= policy.max_elapsed_seconds:
            outbox.record_attempt(record, status=status, error=error, retry_after=retry_after)
            outbox.dead_letter(
                record,
                "retry_budget_exhausted",
                status=status,
                detail=f"{attempt} attempts over {elapsed:.0f}s; last: {error or status}",
            )
            report.dead += 1
            report.results.append((record.pcs_id, status, "dead"))
            return "dead"
        wait = policy.backoff(attempt - 1, retry_after, rng)
        outbox.record_attempt(record, status=status, error=error, retry_after=retry_after, waited=wait)
        logger.info("delivery.retry pcs_id=%s status=%s wait=%.2fs", record.pcs_id, status, wait)
        sleep(wait)


def deliver_pending(
    outbox: Outbox,
    client: FlkClient,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[OutboxRecord, str], None] | None = None,
) -> DeliveryReport:
    """Deliver every pending record in order; return the counts."""
    report = DeliveryReport()
    rng = random.Random()
    for record in list(outbox.pending()):
        outcome = deliver_record(outbox, client, record, policy=policy, sleep=sleep, rng=rng, report=report)
        if on_progress:
            on_progress(record, outcome)
    return report
