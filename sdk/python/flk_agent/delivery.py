"""Delivering the outbox: every PCS decided once in effect, however often it has to be sent.

DESIGN §4: 200 and 202 (replayed or not) ack; 400, 401, 413 and 422 are permanent and go to the
dead-letter file with the server's reason; 408, 409, 429, 5xx and network errors are retried with
exponential backoff and full jitter, never sooner than ``Retry-After``, until the retry budget sends
the PCS to the dead-letter file too. Retries are safe because the server deduplicates on pcs_id.

Batches (``deliver_pending(batch_size=N)``, ``POST /v1/pcs/submit:batch``) keep those rules per item:
each item of a 200 answer is acked, dead-lettered or retried by its own status, honouring its own
``retry_after``. A refusal of the whole batch is handled for every item in it: a transient one (network,
408, 429, 5xx, an unreadable answer) resends the whole batch with the same backoff and budget; 401
(unknown tenant) and other refusals dead-letter every item with the reason; 413 (too many items or
bytes) and 400 (a body the server could not read as a batch, which one bad item can cause) split the
batch in halves, and an item that is refused even alone is sent as a single submission, whose answer
decides its fate by the rules above. A server without the batch endpoint (404, 405) gets single
submissions.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from flk_agent.builder import utc_now_rfc3339
from flk_agent.client import (
    BATCH_ENVELOPE_BYTES,
    BatchAnswer,
    BatchAnswerError,
    FlkClient,
    SubmitResult,
    encode_pcs,
)
from flk_agent.outbox import DeadLetter, Outbox, OutboxRecord

logger = logging.getLogger("flk_agent.delivery")

ACCEPTED = frozenset({200, 202})
PERMANENT = frozenset({400, 401, 413, 422})
RETRYABLE = frozenset({408, 409, 429})
# Batch-level answers that mean "smaller, please": split the batch, down to single items.
SPLIT = frozenset({400, 413})
# Batch-level answers that mean "no batch endpoint here": send the items one by one.
NO_BATCH_ENDPOINT = frozenset({404, 405})

# The server's default BATCH_MAX_BODY_BYTES (8 MiB); a smaller server limit is found through 413.
DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024
# Room per item for the unsigned fields rewritten at each send (``attempt`` grows by a digit or two).
_ITEM_SLACK_BYTES = 16


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
    attempts: int = 0  # sends of one PCS; a batch of n counts n
    requests: int = 0  # HTTP requests; a batch of n counts 1
    results: list[tuple[str, int | None, str]] = field(default_factory=list)  # pcs_id, status, outcome


def _is_retryable(status: int) -> bool:
    return status in RETRYABLE or status >= 500


def describe_transport_error(exc: httpx.TransportError) -> str:
    """A network failure for people: its kind, the system's message and the URL it concerned."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        return f"{text} ({exc.request.url})"
    except RuntimeError:  # raised by httpx when the error carries no request
        return text


@dataclass(frozen=True)
class RetryNotice:
    """A transient failure and the wait before the next send: what the agent is waiting for.

    ``attempt`` is the attempt about to be made (1-based) out of ``max_attempts``; ``next_at`` is the
    Unix time it goes out; ``status`` and ``error`` say what the last send got (no status: a network
    error, described in ``error``); ``retry_after`` is what the server asked for, if anything.
    """

    pcs_ids: tuple[str, ...]
    attempt: int
    max_attempts: int
    wait: float
    next_at: float
    status: int | None
    error: str | None
    retry_after: float | None = None

    def describe(self) -> str:
        """One line: which PCS, which attempt comes when, and the last error."""
        what = self.pcs_ids[0][:16] + "…" if len(self.pcs_ids) == 1 else f"{len(self.pcs_ids)} PCS"
        at = datetime.fromtimestamp(self.next_at, UTC).astimezone().strftime("%H:%M:%S")
        last = f"{self.status} {self.error or ''}".strip() if self.status is not None else self.error
        asked = f", Retry-After {self.retry_after:g} s" if self.retry_after is not None else ""
        return (
            f"waiting {self.wait:.1f} s: attempt {self.attempt}/{self.max_attempts} of {what} at {at}"
            f"; last error: {last or 'unknown'}{asked}"
        )


@dataclass(frozen=True)
class Send:
    """A step of a delivery: send this PCS once and hand back the answer (or the network error)."""

    pcs: dict[str, Any]


@dataclass(frozen=True)
class Sleep:
    """A step of a delivery: wait this many seconds, then continue."""

    seconds: float


# What a delivery's step generator is handed back after a ``Send``: the answer or the network error.
Answer = SubmitResult | httpx.TransportError | None
Steps = Generator[Send | Sleep, Answer, str]


def run_steps(steps: Steps, client: FlkClient, sleep: Callable[[float], None] = time.sleep) -> str:
    """Drive a delivery's steps with a blocking client; return its outcome (``"acked"``/``"dead"``).

    The decisions (ack, dead-letter, retry, how long to wait) are all in the steps, shared with the
    asyncio driver of ``flk_agent.aio``; a driver only performs the I/O each step asks for.
    """
    answer: Answer = None
    try:
        while True:
            step = steps.send(answer)
            if isinstance(step, Send):
                try:
                    answer = client.submit(step.pcs)
                except httpx.TransportError as exc:
                    answer = exc
            else:
                sleep(step.seconds)
                answer = None
    except StopIteration as stop:
        return stop.value


def deliver_record(
    outbox: Outbox,
    client: FlkClient,
    record: OutboxRecord,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    report: DeliveryReport | None = None,
    on_wait: Callable[[RetryNotice], None] | None = None,
) -> str:
    """Send one record until it is acked or dead-lettered; return ``"acked"`` or ``"dead"``.

    ``on_wait`` hears each transient failure before the wait that follows it (attempt, when the next
    send goes out, the last error).
    """
    steps = record_steps(outbox, record, policy=policy, rng=rng, report=report, on_wait=on_wait)
    return run_steps(steps, client, sleep)


def record_steps(
    outbox: Outbox,
    record: OutboxRecord,
    *,
    policy: RetryPolicy = RetryPolicy(),
    rng: random.Random | None = None,
    report: DeliveryReport | None = None,
    on_wait: Callable[[RetryNotice], None] | None = None,
) -> Steps:
    """The delivery of one record as steps (``Send``, ``Sleep``), without I/O of its own but the outbox's.

    A driver (``run_steps``, or ``flk_agent.aio``'s) performs each step and sends back the answer; the
    generator returns ``"acked"`` or ``"dead"``.
    """
    rng = rng or random.Random()
    report = report if report is not None else DeliveryReport()
    started = time.monotonic()
    attempt = record.attempts
    while True:
        # Unsigned fields say when and how often this PCS was sent; the signature does not cover them.
        pcs = dict(record.pcs, attempt=attempt + 1, sent_at=utc_now_rfc3339())
        report.attempts += 1
        report.requests += 1
        answer = yield Send(pcs)
        if isinstance(answer, httpx.TransportError):
            result, status, error = None, None, f"network: {type(answer).__name__}"
            explained = describe_transport_error(answer)
        else:
            result = answer
            assert result is not None, "a Send step is answered with a result or a network error"
            status, error = result.status, result.error
            explained = error
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
                detail=f"{attempt} attempts over {elapsed:.0f}s; last: {explained or status}",
            )
            report.dead += 1
            report.results.append((record.pcs_id, status, "dead"))
            return "dead"
        wait = policy.backoff(attempt - 1, retry_after, rng)
        outbox.record_attempt(record, status=status, error=error, retry_after=retry_after, waited=wait)
        logger.info("delivery.retry pcs_id=%s status=%s wait=%.2fs", record.pcs_id, status, wait)
        if on_wait:
            on_wait(
                RetryNotice(
                    (record.pcs_id,),
                    attempt + 1,
                    policy.max_attempts,
                    wait,
                    time.time() + wait,
                    status,
                    explained,
                    retry_after,
                )
            )
        yield Sleep(wait)


def deliver_pending(
    outbox: Outbox,
    client: FlkClient,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[OutboxRecord, str], None] | None = None,
    batch_size: int = 1,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    on_wait: Callable[[RetryNotice], None] | None = None,
) -> DeliveryReport:
    """Deliver every pending record in order; return the counts.

    ``batch_size`` 1 sends one PCS per request; more sends up to that many per batch request (and up
    to ``max_batch_bytes`` per body), each item with the single-submission rules. ``on_wait`` hears
    every wait after a transient failure (see ``RetryNotice``).
    """
    if batch_size < 1:
        raise ValueError("batch_size is at least 1")
    report = DeliveryReport()
    rng = random.Random()
    records = list(outbox.pending())
    if batch_size == 1:
        for record in records:
            outcome = deliver_record(
                outbox, client, record, policy=policy, sleep=sleep, rng=rng, report=report, on_wait=on_wait
            )
            if on_progress:
                on_progress(record, outcome)
        return report
    sender = _BatchSender(
        outbox,
        client,
        policy=policy,
        sleep=sleep,
        rng=rng,
        report=report,
        on_progress=on_progress,
        max_items=batch_size,
        max_bytes=max_batch_bytes,
        on_wait=on_wait,
    )
    sender.deliver(records)
    return report


@dataclass
class _Item:
    """A record being delivered in a batch, and the transient failures charged to its retry budget."""

    record: OutboxRecord
    failures: int
    retry_after: float | None = None


class _BatchSender:
    """Delivers records in batches, each item with the single-submission rules (see the module doc).

    ``max_items`` starts at the batch size asked for and only shrinks: a 413 halves it for the rest of
    the pass, so a server with a smaller limit costs one split, not one per batch; a server without
    the batch endpoint sets it to 1 (single submissions).
    """

    def __init__(
        self,
        outbox: Outbox,
        client: FlkClient,
        *,
        policy: RetryPolicy,
        sleep: Callable[[float], None],
        rng: random.Random,
        report: DeliveryReport,
        on_progress: Callable[[OutboxRecord, str], None] | None,
        max_items: int,
        max_bytes: int,
        on_wait: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self.outbox, self.client, self.policy = outbox, client, policy
        self.sleep, self.rng, self.report, self.on_progress = sleep, rng, report, on_progress
        self.max_items, self.max_bytes = max_items, max_bytes
        self.on_wait = on_wait
        self._explained: str | None = None  # the last network error, described

    def deliver(self, records: list[OutboxRecord]) -> None:
        """Deliver ``records`` in order, in batches as large as the limits allow."""
        position = 0
        while position < len(records):
            if self.max_items == 1:
                self._single(records[position])
                position += 1
                continue
            chunk = self._chunk(records, position)
            # Records sent before (an earlier pass, a crash) have used part of their budget already,
            # as in deliver_record.
            self._send([_Item(record, failures=record.attempts) for record in chunk], time.monotonic())
            position += len(chunk)

    def _chunk(self, records: list[OutboxRecord], position: int) -> list[OutboxRecord]:
        """The next records that fit one batch: at most ``max_items``, and ``max_bytes`` when encoded."""
        size, chunk = BATCH_ENVELOPE_BYTES, []
        for record in records[position : position + self.max_items]:
            item_bytes = len(encode_pcs(record.pcs)) + _ITEM_SLACK_BYTES + 1  # the comma
            if chunk and size + item_bytes > self.max_bytes:
                break
            chunk.append(record)
            size += item_bytes
        return chunk

    def _send(self, items: list[_Item], started: float) -> None:
        """Send ``items`` as one batch until each is acked or dead-lettered."""
        while items:
            if self.max_items == 1:
                for item in items:
                    self._single(item.record)
                return
            if len(items) > self.max_items:  # a 413 elsewhere taught a smaller limit
                for start in range(0, len(items), self.max_items):
                    self._send(items[start : start + self.max_items], started)
                return
            sent_at = utc_now_rfc3339()
            # Unsigned fields say when and how often each PCS was sent; the signature does not cover them.
            bodies = [dict(i.record.pcs, attempt=i.record.attempts + 1, sent_at=sent_at) for i in items]
            self.report.requests += 1
            self.report.attempts += len(items)
            try:
                answer: BatchAnswer | None = self.client.submit_batch(bodies)
            except httpx.TransportError as exc:
                answer, error = None, f"network: {type(exc).__name__}"
                self._explained = describe_transport_error(exc)
            except BatchAnswerError as exc:
                logger.warning("delivery.bad_batch_answer items=%d detail=%s", len(items), exc)
                answer, error = None, "bad_batch_answer"
            if answer is None or (not answer.ok and _is_retryable(answer.status)):
                status = answer.status if answer else None
                error = answer.error if answer else error
                retry_after = answer.retry_after if answer else None
                for item in items:
                    item.retry_after = retry_after
                items = self._retry(items, status=status, error=error, batch=len(items), started=started)
                continue
            if not answer.ok:
                self._refused(items, answer, started)
                return
            items = self._settle(items, answer.results, started)

    def _refused(self, items: list[_Item], answer: BatchAnswer, started: float) -> None:
        """A permanent refusal of the whole batch: split, fall back to single submissions, or dead-letter."""
        for item in items:
            self.outbox.record_attempt(
                item.record, status=answer.status, error=answer.error, batch=len(items)
            )
        if answer.status in NO_BATCH_ENDPOINT:
            logger.warning("delivery.no_batch_endpoint status=%s: single submissions", answer.status)
            self.max_items = 1
            for item in items:
                self._single(item.record)
            return
        if answer.status in SPLIT:
            if len(items) == 1:
                # Refused even alone: the single-submission endpoint's answer decides this PCS.
                self._single(items[0].record)
                return
            half = len(items) // 2
            if answer.status == 413:
                self.max_items = min(self.max_items, max(half, 1))
            logger.info("delivery.batch_split status=%s items=%d", answer.status, len(items))
            self._send(items[:half], started)
            self._send(items[half:], started)
            return
        # 401 unknown tenant, or another refusal a single submission would also get for each item.
        reason = answer.error or f"http_{answer.status}"
        detail = answer.answer.body.get("detail")
        self._dead([DeadLetter(item.record, reason, answer.status, detail) for item in items])

    def _settle(self, items: list[_Item], results: tuple[SubmitResult, ...], started: float) -> list[_Item]:
        """Apply each item's own answer; return the items to resend."""
        acks: list[tuple[OutboxRecord, int]] = []
        dead: list[DeadLetter] = []
        retry: list[_Item] = []
        own: dict[int, SubmitResult] = {}  # the retried items' own answers, by outbox seq
        outcomes: list[tuple[_Item, SubmitResult]] = []
        for item, result in zip(items, results, strict=True):
            if result.status in ACCEPTED:
                self.outbox.record_attempt(item.record, status=result.status, batch=len(items))
                acks.append((item.record, result.status))
                outcomes.append((item, result))
            elif result.status in PERMANENT or not _is_retryable(result.status):
                self.outbox.record_attempt(
                    item.record, status=result.status, error=result.error, batch=len(items)
                )
                reason = result.error or f"http_{result.status}"
                dead.append(DeadLetter(item.record, reason, result.status, result.body.get("detail")))
            else:
                item.retry_after = result.retry_after
                own[item.record.seq] = result
                retry.append(item)
        self.outbox.ack_many(acks)
        for item, result in outcomes:
            self.report.acked += 1
            outcome = "replayed" if result.replayed else "acked"
            self.report.results.append((item.record.pcs_id, result.status, outcome))
            if self.on_progress:
                self.on_progress(item.record, "acked")
        self._dead(dead)
        if not retry:
            return []
        # Retried items go out again together; each one's attempt entry keeps its own status.
        return self._retry(retry, status=None, error=None, batch=len(items), started=started, own=own)

    def _retry(
        self,
        items: list[_Item],
        *,
        status: int | None,
        error: str | None,
        batch: int,
        started: float,
        own: dict[int, SubmitResult] | None = None,
    ) -> list[_Item]:
        """Charge a transient failure to each item; dead-letter those out of budget, wait, return the rest.

        One wait for the items resent together: full jitter on the largest failure count among them,
        and never sooner than the largest ``retry_after`` any of them was given.
        """
        elapsed = time.monotonic() - started
        keep: list[_Item] = []
        dead: list[DeadLetter] = []
        for item in items:
            item.failures += 1
            if item.failures >= self.policy.max_attempts or elapsed >= self.policy.max_elapsed_seconds:
                item_status, item_error = _status_of(item, status, error, own)
                self.outbox.record_attempt(
                    item.record,
                    status=item_status,
                    error=item_error,
                    retry_after=item.retry_after,
                    batch=batch,
                )
                dead.append(
                    DeadLetter(
                        item.record,
                        "retry_budget_exhausted",
                        item_status,
                        f"{item.failures} attempts over {elapsed:.0f}s; last: {item_error or item_status}",
                    )
                )
            else:
                keep.append(item)
        self._dead(dead)
        if not keep:
            return []
        retry_after = max((i.retry_after for i in keep if i.retry_after is not None), default=None)
        wait = self.policy.backoff(max(i.failures for i in keep) - 1, retry_after, self.rng)
        for item in keep:
            item_status, item_error = _status_of(item, status, error, own)
            self.outbox.record_attempt(
                item.record,
                status=item_status,
                error=item_error,
                retry_after=item.retry_after,
                waited=wait,
                batch=batch,
            )
        logger.info(
            "delivery.batch_retry items=%d status=%s wait=%.2fs", len(keep), status or "per item", wait
        )
        if self.on_wait:
            first = _status_of(keep[0], status, error, own)
            explained = self._explained if first[0] is None else first[1]
            self.on_wait(
                RetryNotice(
                    tuple(i.record.pcs_id for i in keep),
                    max(i.failures for i in keep) + 1,
                    self.policy.max_attempts,
                    wait,
                    time.time() + wait,
                    first[0],
                    explained,
                    retry_after,
                )
            )
        self.sleep(wait)
        return keep

    def _dead(self, letters: list[DeadLetter]) -> None:
        self.outbox.dead_letter_many(letters)
        for letter in letters:
            self.report.dead += 1
            self.report.results.append((letter.record.pcs_id, letter.status, "dead"))
            if self.on_progress:
                self.on_progress(letter.record, "dead")

    def _single(self, record: OutboxRecord) -> None:
        outcome = deliver_record(
            self.outbox,
            self.client,
            record,
            policy=self.policy,
            sleep=self.sleep,
            rng=self.rng,
            report=self.report,
            on_wait=self.on_wait,
        )
        if self.on_progress:
            self.on_progress(record, outcome)


def _status_of(
    item: _Item, status: int | None, error: str | None, own: dict[int, SubmitResult] | None
) -> tuple[int | None, str | None]:
    """The status and error an item's attempt is noted with: its own result's, else the batch's."""
    if own is not None:
        result = own[item.record.seq]
        return result.status, result.error
    return status, error
