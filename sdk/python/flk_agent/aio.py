"""An asyncio client beside ``FlkClient``: the same requests, the same typed answers, the same retries.

Nothing here decides anything of its own. Requests and answers go through ``flk_agent.client``'s
functions (headers, batch body, typed ``SubmitResult``/``BatchAnswer``), and delivery through the outbox
runs ``flk_agent.delivery.record_steps``, the very steps the synchronous agent runs: 200/202 ack, 400,
401, 413 and 422 dead-letter, 408, 409, 429, 5xx and network errors retry with full-jitter backoff,
never sooner than ``Retry-After``, within the retry budget. Only the I/O is awaited.

    async with AsyncFlkClient("http://127.0.0.1:8000") as client:
        result = await client.submit(pcs)          # SubmitResult: status, body, replayed, retry_after
        with Outbox("flk-outbox") as outbox:
            outbox.put(pcs)
            report = await deliver_pending_async(outbox, client)

Network failures raise ``httpx.TransportError`` from ``submit`` and ``submit_batch``, as in the
synchronous client. Delivery through the outbox sends one PCS per request; batches are sent by
``submit_batch`` or by the synchronous ``deliver_pending(batch_size=N)``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from flk_agent.client import (
    BATCH_PATH,
    DEFAULT_TIMEOUT,
    SUBMIT_PATH,
    BatchAnswer,
    SubmitResult,
    batch_answer,
    batch_body,
    encode_pcs,
    request_headers,
    submit_answer,
)
from flk_agent.delivery import (
    Answer,
    DeliveryReport,
    RetryNotice,
    RetryPolicy,
    Send,
    Steps,
    record_steps,
)
from flk_agent.outbox import Outbox, OutboxRecord

DEFAULT_POLICY = RetryPolicy()

__all__ = ["AsyncFlkClient", "deliver_pending_async", "deliver_record_async", "run_steps_async"]


class AsyncFlkClient:
    """Submit PCS to one FLK server with ``httpx.AsyncClient``; use ``async with`` to close the pool."""

    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=request_headers(tenant), timeout=timeout, transport=transport
        )

    async def submit(self, pcs: dict[str, Any] | bytes) -> SubmitResult:
        """POST one PCS to /v1/pcs/submit; every HTTP answer is returned typed, network errors raise."""
        return submit_answer(await self._http.post(SUBMIT_PATH, content=encode_pcs(pcs)))

    async def submit_batch(self, pcs_list: Sequence[dict[str, Any] | bytes]) -> BatchAnswer:
        """POST many PCS in one request to /v1/pcs/submit:batch, typed as ``FlkClient.submit_batch``."""
        body = batch_body(pcs_list)
        return batch_answer(await self._http.post(BATCH_PATH, content=body), len(pcs_list))

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFlkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def run_steps_async(
    steps: Steps, client: AsyncFlkClient, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> str:
    """Drive a delivery's steps (``flk_agent.delivery.record_steps``) with the asyncio client."""
    answer: Answer = None
    try:
        while True:
            step = steps.send(answer)
            if isinstance(step, Send):
                try:
                    answer = await client.submit(step.pcs)
                except httpx.TransportError as exc:
                    answer = exc
            else:
                await sleep(step.seconds)
                answer = None
    except StopIteration as stop:
        return stop.value


async def deliver_record_async(
    outbox: Outbox,
    client: AsyncFlkClient,
    record: OutboxRecord,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    report: DeliveryReport | None = None,
    on_wait: Callable[[RetryNotice], None] | None = None,
) -> str:
    """Send one record until it is acked or dead-lettered, as ``deliver_record`` does; await it."""
    steps = record_steps(outbox, record, policy=policy, rng=rng, report=report, on_wait=on_wait)
    return await run_steps_async(steps, client, sleep)


async def deliver_pending_async(
    outbox: Outbox,
    client: AsyncFlkClient,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_progress: Callable[[OutboxRecord, str], None] | None = None,
    on_wait: Callable[[RetryNotice], None] | None = None,
) -> DeliveryReport:
    """Deliver every pending record in order, one per request; return the counts.

    The outbox's own writes (fsyncs) are brief blocking calls, as in the synchronous agent.
    """
    report = DeliveryReport()
    rng = random.Random()
    for record in list(outbox.pending()):
        outcome = await deliver_record_async(
            outbox, client, record, policy=policy, sleep=sleep, rng=rng, report=report, on_wait=on_wait
        )
        if on_progress:
            on_progress(record, outcome)
    return report
