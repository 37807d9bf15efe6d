"""Streaming audit entries to a sink: read after the cursor, POST, advance only what the vendor acknowledged.

One batch is one transaction: lock the (sink, tenant) cursor with ``SKIP LOCKED`` (another worker on it
means this one moves on), read the entries after it up to the sink's event and byte limits, POST them,
and advance the cursor over the leading entries the vendor acknowledged. A worker killed after the POST
and before the commit leaves the cursor where it was, so the next run sends the same events with the
same ids (at-least-once; Elasticsearch turns the repeat into 409s, see ``apps.siem.events``).

Retryable answers (408, 429, 5xx, network errors) are retried with exponential backoff and full jitter,
honouring ``Retry-After``, a bounded number of times within a run's time budget; then the sink records
the error and waits before the next run tries. A 413 halves the batch. Any other refusal (a wrong token,
a malformed request) stops the sink with its error, counted in ``flk_siem_sink_stops``, instead of
sending the same request forever.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.audit.services import audit_append
from apps.siem import metrics
from apps.siem.events import Event, event_from_entry
from apps.siem.models import SiemCursor, SiemSink
from apps.siem.selectors import sink_lag, sink_scope
from apps.siem.vendors import DELIVERED, DUPLICATE, REFUSED, RETRY, VENDORS, TooLarge, Vendor
from apps.tenants.crypto import decrypt_secret
from apps.tenants.models import Tenant

logger = logging.getLogger("flk.siem")

SYSTEM_ACTOR = "system:siem"

# Sleep is a module attribute so a test of backoff arithmetic could observe it; production sleeps.
sleep: Callable[[float], None] = time.sleep


@dataclass
class Shipped:
    """The result of sending one batch: how many leading events were acknowledged, and what went wrong."""

    acked: int = 0
    duplicates: int = 0
    error: str = ""
    stop: bool = False
    reason: str = ""
    retry_after: float | None = None


@dataclass
class SinkReport:
    """What one run did for one sink."""

    sink: str
    delivered: int = 0
    duplicates: int = 0
    batches: int = 0
    error: str = ""
    state: str = SiemSink.STATE_ACTIVE
    skipped: str = ""
    tenants: dict[str, int] = field(default_factory=dict)


class SinkConfig:
    """A sink's vendor, options, limits and decrypted secret, resolved once per run."""

    def __init__(self, sink: SiemSink) -> None:
        self.sink = sink
        self.vendor: Vendor = VENDORS[sink.kind]
        self.options = self.vendor.options(sink.options or {})
        self.max_events = sink.max_batch_events or self.vendor.default_events
        self.max_bytes = sink.max_batch_bytes or self.vendor.default_bytes
        self.url = self.vendor.url(sink.endpoint, self.options)
        secret = decrypt_secret(sink.secret_encrypted).decode() if sink.secret_encrypted else ""
        self.headers = {
            "Content-Type": self.vendor.content_type,
            **self.vendor.auth_headers(secret, self.options),
        }


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, …): full jitter, at least what Retry-After asks."""
    ceiling = min(settings.SIEM_BACKOFF_MAX_SECONDS, settings.SIEM_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return max(random.uniform(0, ceiling), retry_after or 0.0)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def ship(
    client: httpx.Client, config: SinkConfig, events: list[Event], parts: list[bytes], deadline: float
) -> Shipped:
    """POST ``events`` (encoded as ``parts``), retrying what is retryable; report the acknowledged prefix."""
    vendor, name = config.vendor, config.sink.name
    done: set[int] = set()
    shipped = Shipped()
    # Chunks still to send, as index ranges into events: a 413 splits one, a partial failure narrows it.
    queue: deque[list[int]] = deque([list(range(len(events)))])
    attempt = 0
    while queue:
        chunk = queue.popleft()
        body = vendor.body([parts[i] for i in chunk])
        retry_after, status = None, 0
        try:
            response = client.post(config.url, content=body, headers=config.headers)
            status = response.status_code
            answer = vendor.read(response, len(chunk))
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TooLarge as exc:
            if len(chunk) == 1:
                shipped.error = f"entry seq {events[chunk[0]].seq} alone is too large: {exc}"
                shipped.stop, shipped.reason = True, "too_large"
                break
            half = len(chunk) // 2
            queue.appendleft(chunk[half:])
            queue.appendleft(chunk[:half])
            logger.info("siem.split sink=%s events=%d", name, len(chunk))
            continue
        except httpx.TransportError as exc:
            answer_outcomes, problem = [RETRY] * len(chunk), f"network error: {type(exc).__name__}: {exc}"
        else:
            answer_outcomes, problem = answer.outcomes, answer.problem
        retry = []
        for index, outcome in zip(chunk, answer_outcomes, strict=True):
            if outcome in (DELIVERED, DUPLICATE):
                done.add(index)
                shipped.duplicates += outcome == DUPLICATE
                metrics.events.labels(name, outcome).inc()
            elif outcome == RETRY:
                retry.append(index)
            elif outcome == REFUSED:
                shipped.error, shipped.stop = problem, True
                shipped.reason = f"http_{status}" if status != 200 else "item_refused"
        if shipped.stop:
            break
        if not retry:
            continue
        attempt += 1
        shipped.error = problem
        delay = backoff_delay(attempt, retry_after)
        if attempt >= settings.SIEM_MAX_ATTEMPTS or time.monotonic() + delay > deadline:
            # Give up for this run; the next one (after next_attempt_at) starts from the cursor.
            shipped.retry_after = retry_after
            metrics.events.labels(name, "failed").inc(len(retry))
            break
        logger.info(
            "siem.retry sink=%s events=%d attempt=%d delay=%.2f problem=%s",
            name,
            len(retry),
            attempt,
            delay,
            problem,
        )
        metrics.events.labels(name, "retried").inc(len(retry))
        sleep(delay)
        queue.appendleft(retry)
    else:
        shipped.error = ""
    while shipped.acked in done:
        shipped.acked += 1
    return shipped


def _batch(config: SinkConfig, tenant: Tenant, next_seq: int) -> tuple[list[Event], list[bytes], bool, str]:
    """Events after ``next_seq`` within the limits; whether more remain; a problem if one is too big."""
    # The (tenant, seq) unique index serves this range scan.
    entries = AuditEntry.objects.filter(tenant=tenant, seq__gte=next_seq).order_by("seq")[
        : config.max_events + 1
    ]
    events: list[Event] = []
    parts: list[bytes] = []
    total = 0
    vendor = config.vendor
    for entry in entries:
        if len(events) == config.max_events:
            return events, parts, True, ""
        event = event_from_entry(entry, tenant_slug=tenant.slug)
        part = vendor.encode(event, config.options)
        too_big = vendor.max_event_bytes is not None and len(part) > vendor.max_event_bytes
        if too_big or vendor.body_size(len(part), 1) > config.max_bytes:
            if events:
                return events, parts, True, ""
            return [], [], False, f"entry seq {entry.seq} is {len(part)} bytes, over the sink's batch limits"
        if vendor.body_size(total + len(part), len(parts) + 1) > config.max_bytes:
            return events, parts, True, ""
        events.append(event)
        parts.append(part)
        total += len(part)
    return events, parts, False, ""


def _cursors_ensure(sink: SiemSink, tenants: list[Tenant]) -> None:
    SiemCursor.objects.bulk_create([SiemCursor(sink=sink, tenant=t) for t in tenants], ignore_conflicts=True)


def _stop(sink: SiemSink, error: str, reason: str) -> None:
    with transaction.atomic():
        SiemSink.objects.filter(pk=sink.pk).update(
            state=SiemSink.STATE_STOPPED, last_error=error[:2000], last_error_at=timezone.now()
        )
        if sink.tenant_id is not None:
            audit_append(
                tenant_id=sink.tenant_id,
                kind="siem_sink_stopped",
                actor=SYSTEM_ACTOR,
                reason=f"sink={sink.name} {error}"[:200],
                details={"sink": sink.name, "reason": reason},
            )
    metrics.stops.labels(sink.name, reason).inc()
    logger.warning("siem.stopped sink=%s reason=%s error=%s", sink.name, reason, error)


def _failed(sink: SiemSink, error: str, retry_after: float | None) -> None:
    failures = sink.consecutive_failures + 1
    # Runs come every few seconds: a failing sink waits longer after each failed run (equal jitter, so
    # it really waits), at least what the vendor's Retry-After asked, at most SIEM_RETRY_MAX_SECONDS.
    ceiling = min(settings.SIEM_RETRY_MAX_SECONDS, settings.SIEM_BACKOFF_BASE_SECONDS * 2**failures)
    wait = max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)
    SiemSink.objects.filter(pk=sink.pk).update(
        last_error=error[:2000],
        last_error_at=timezone.now(),
        consecutive_failures=F("consecutive_failures") + 1,
        next_attempt_at=timezone.now() + timedelta(seconds=min(wait, settings.SIEM_RETRY_MAX_SECONDS)),
    )
    logger.warning("siem.failed sink=%s failures=%d error=%s", sink.name, failures, error)


def _succeeded(sink: SiemSink) -> None:
    SiemSink.objects.filter(pk=sink.pk).update(
        last_success_at=timezone.now(), consecutive_failures=0, next_attempt_at=None
    )


def sink_deliver(
    *, sink: SiemSink, deadline: float | None = None, client: httpx.Client | None = None
) -> SinkReport:
    """Stream every tenant in the sink's scope until caught up, an error, or ``deadline`` (monotonic)."""
    report = SinkReport(sink.name, state=sink.state)
    if deadline is None:
        deadline = time.monotonic() + settings.SIEM_RUN_SECONDS
    if sink.state != SiemSink.STATE_ACTIVE:
        report.skipped = sink.state
        return report
    if sink.next_attempt_at and sink.next_attempt_at > timezone.now():
        report.skipped = "backing off"
        return report
    tenants = sink_scope(sink=sink)
    _cursors_ensure(sink, tenants)
    try:
        config = SinkConfig(sink)
    except ImproperlyConfigured as exc:
        # The secret no longer decrypts (an encryption key dropped too early): no run can fix that.
        _stop(sink, f"the sink's secret cannot be read: {exc}", "secret")
        report.error, report.state = str(exc), SiemSink.STATE_STOPPED
        return report
    own_client = client is None
    client = client or httpx.Client(timeout=settings.SIEM_HTTP_TIMEOUT_SECONDS)
    try:
        for tenant in tenants:
            if not _deliver_tenant(client, config, tenant, deadline, report):
                break
    finally:
        if own_client:
            client.close()
        metrics.lag_entries.labels(sink.name).set(sink_lag(sink=sink))
    return report


def _deliver_tenant(
    client: httpx.Client, config: SinkConfig, tenant: Tenant, deadline: float, report: SinkReport
) -> bool:
    """Ship one tenant's entries in batches; False when the sink must not go on this run."""
    sink = config.sink
    while time.monotonic() < deadline:
        with transaction.atomic():
            cursor = (
                SiemCursor.objects.select_for_update(skip_locked=True)
                .filter(sink=sink, tenant=tenant)
                .first()
            )
            if cursor is None:
                return True  # another worker is shipping this tenant to this sink
            state = SiemSink.objects.filter(pk=sink.pk).values_list("state", flat=True).first()
            if state != SiemSink.STATE_ACTIVE:
                report.state = state or "deleted"
                return False
            events, parts, more, problem = _batch(config, tenant, cursor.next_seq)
            if problem:
                shipped = Shipped(error=problem, stop=True, reason="too_large")
            elif not events:
                return True
            else:
                shipped = ship(client, config, events, parts, deadline)
            if shipped.acked:
                cursor.next_seq = events[shipped.acked - 1].seq + 1
                cursor.delivered += shipped.acked
                cursor.save(update_fields=["next_seq", "delivered", "updated_at"])
        # Sink state is written after the cursor's commit: the sink row is shared by every tenant's worker.
        report.batches += 1
        report.delivered += shipped.acked
        report.duplicates += shipped.duplicates
        report.tenants[tenant.slug] = report.tenants.get(tenant.slug, 0) + shipped.acked
        metrics.lag_entries.labels(sink.name).set(sink_lag(sink=sink))
        if shipped.stop:
            _stop(sink, shipped.error, shipped.reason or "refused")
            report.error, report.state = shipped.error, SiemSink.STATE_STOPPED
            return False
        if shipped.error:
            _failed(sink, shipped.error, shipped.retry_after)
            report.error = shipped.error
            return False
        _succeeded(sink)
        if not more:
            return True
    return False


def siem_stream(*, run_seconds: float | None = None) -> dict[str, Any]:
    """One run over every active sink, within ``SIEM_RUN_SECONDS``; what each delivered."""
    deadline = time.monotonic() + (run_seconds if run_seconds is not None else settings.SIEM_RUN_SECONDS)
    reports = {}
    for sink in SiemSink.objects.filter(state=SiemSink.STATE_ACTIVE).select_related("tenant"):
        if time.monotonic() >= deadline:
            break
        reports[sink.name] = sink_deliver(sink=sink, deadline=deadline)
    return {
        "delivered": sum(r.delivered for r in reports.values()),
        "sinks": {name: r.delivered for name, r in reports.items()},
        "errors": {name: r.error for name, r in reports.items() if r.error},
    }
