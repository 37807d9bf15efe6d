"""The asyncio client against a real gunicorn: typed answers, network errors, and delivery through the
outbox with the synchronous agent's own retry steps (Retry-After honoured, the budget, dead letters)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apps.tenants.services import tenant_set_limits
from flk_agent.aio import AsyncFlkClient, deliver_pending_async
from flk_agent.delivery import RetryNotice, RetryPolicy
from flk_agent.outbox import ACKED, DEAD, Outbox
from tests.support.servers import free_port, gunicorn

pytestmark = pytest.mark.slow


def test_answers_are_typed_and_network_errors_raise(transactional_db, tenant, pcs_factory):
    pcs = pcs_factory(epoch=1)
    tampered = dict(pcs_factory(epoch=2), D_hat=0.5)

    async def scenario(url: str) -> tuple:
        async with AsyncFlkClient(url) as client:
            first = await client.submit(pcs)
            again = await client.submit(pcs)
            refused = await client.submit(tampered)
            batch = await client.submit_batch([pcs, pcs_factory(epoch=3)])
            return first, again, refused, batch

    with gunicorn(workers=1) as server:
        first, again, refused, batch = asyncio.run(scenario(server.url))
    assert (first.status, first.accepted, first.replayed) == (200, True, False)
    assert first.body["accepted"] is True and "recomputed_D_hat" in first.body
    assert (again.status, again.replayed) == (200, True)
    assert (refused.status, refused.error) == (401, "invalid_signature")
    assert batch.ok and [r.status for r in batch.results] == [200, 200]
    assert batch.results[0].replayed and not batch.results[1].replayed

    async def down() -> None:
        async with AsyncFlkClient(f"http://127.0.0.1:{free_port()}") as client:
            await client.submit(pcs)

    with pytest.raises(httpx.ConnectError):
        asyncio.run(down())


def test_outbox_delivery_waits_for_retry_after_then_everything_is_acked(
    transactional_db, tenant, pcs_factory, tmp_path
):
    tenant_set_limits(tenant=tenant, actor="test", rate_per_second=2.0, burst=1)  # 429 after each one
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    async def deliver(url: str, outbox: Outbox):
        async with AsyncFlkClient(url) as client:
            return await deliver_pending_async(outbox, client, sleep=sleep)

    with Outbox(tmp_path / "outbox") as outbox, gunicorn(workers=1) as server:
        outbox.put_many([pcs_factory(epoch=e) for e in (1, 2, 3)])
        report = asyncio.run(deliver(server.url, outbox))
        records = sorted(outbox.records.values(), key=lambda r: r.seq)
    assert (report.acked, report.dead) == (3, 0)
    assert all(r.state == ACKED and r.last_status == 200 for r in records)
    throttled = [a for r in records for a in r.history if a["status"] == 429]
    assert throttled, "the rate limit answered 429 at least once"
    for attempt in throttled:
        # Never sooner than the server asked: the wait that followed each 429 is at least its Retry-After.
        assert attempt["retry_after"] >= 1 and attempt["waited"] >= attempt["retry_after"]
    assert len(waits) == len(throttled)


def test_a_server_that_stays_down_exhausts_the_budget_into_the_dead_letter_file(pcs_factory, tmp_path):
    notices: list[RetryNotice] = []

    async def deliver(outbox: Outbox):
        async with AsyncFlkClient(f"http://127.0.0.1:{free_port()}") as client:
            return await deliver_pending_async(
                outbox, client, policy=RetryPolicy(max_attempts=3, cap_seconds=0.05), on_wait=notices.append
            )

    with Outbox(tmp_path / "outbox") as outbox:
        (record,) = outbox.put_many([pcs_factory(epoch=1)])
        report = asyncio.run(deliver(outbox))
    assert (report.acked, report.dead, report.attempts) == (0, 1, 3)
    assert record.state == DEAD and record.dead_reason == "retry_budget_exhausted"
    assert "ConnectError" in (record.dead_detail or "")
    assert [n.attempt for n in notices] == [2, 3] and all(n.status is None for n in notices)
