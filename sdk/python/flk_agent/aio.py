"""An asyncio client beside ``FlkClient``: the same requests, the same typed answers, the same retries.

Nothing here decides anything of its own. Requests and answers go through ``flk_agent.client``'s
functions (headers, batch body, typed ``SubmitResult``/``BatchAnswer``), and delivery through the outbox
runs ``flk_agent.delivery.record_steps``, the very steps the synchronous agent runs: 200/202 ack, 400,
401, 413 and 422 dead-letter, 408, 409, 429, 5xx and network errors retry with full-jitter backoff,
never sooner than ``Retry-After``, within the retry budget. Failing over between endpoints (regions)
follows ``flk_agent.client.Failover``, the synchronous client's own rule. Only the I/O is awaited.

    async with AsyncFlkClient("https://eu.example,https://us.example") as client:
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
    FailingOverClient,
    Failover,
    Outcome,
    SubmitResult,
    batch_answer,
    batch_body,
    encode_pcs,
    endpoints_of,
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


class AsyncFlkClient(FailingOverClient):
    """Submit PCS to FLK with ``httpx.AsyncClient``, failing over between endpoints as ``FlkClient`` does.

    ``url`` is one base URL, a comma-separated list of them, or a sequence. Each call goes to the
    current endpoint; a connection failure or a 503 moves it to the next with the same bytes, each
    endpoint at most once per call, and the one that answered stays current. When every endpoint
    failed, the last 503 is returned or the last network error raised (``Failover``). Use
    ``async with`` to close the connection pools.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        tenant: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoints = endpoints_of(url)
        self._failover = Failover(self.endpoints)
        self._clients = [
            httpx.AsyncClient(
                base_url=endpoint, headers=request_headers(tenant), timeout=timeout, transport=transport
            )
            for endpoint in self.endpoints
        ]

    async def _post(self, path: str, content: bytes) -> httpx.Response:
        tries = self._failover.tries()
        index = next(tries)
        while True:
            outcome: Outcome
            try:
                outcome = await self._clients[index].post(path, content=content)
            except httpx.TransportError as exc:
                outcome = exc
            try:
                index = tries.send(outcome)
            except StopIteration as stop:
                return stop.value

    async def submit(self, pcs: dict[str, Any] | bytes) -> SubmitResult:
        """POST one PCS to /v1/pcs/submit; every HTTP answer is returned typed, network errors raise
        (once every endpoint failed)."""
        return submit_answer(await self._post(SUBMIT_PATH, encode_pcs(pcs)))

    async def submit_batch(self, pcs_list: Sequence[dict[str, Any] | bytes]) -> BatchAnswer:
        """POST many PCS in one request to /v1/pcs/submit:batch, typed as ``FlkClient.submit_batch``."""
        body = batch_body(pcs_list)
        return batch_answer(await self._post(BATCH_PATH, body), len(pcs_list))

    async def aclose(self) -> None:
        """Close pooled connections."""
        for client in self._clients:
            await client.aclose()

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
