"""The asyncio client fails over between regions as the synchronous one does (``Failover``, one rule
for both): the next endpoint on a refused connection or a 503, staying there, and through the outbox
every PCS decided once in effect. The real FLK is the live server; the 503 region is a stand-in
(tests/sdk/failing_regions.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apps.pcs.models import PcsRecord
from flk_agent.aio import AsyncFlkClient, deliver_pending_async
from flk_agent.client import Failover, Outcome
from flk_agent.outbox import ACKED, Outbox
from tests.sdk.failing_regions import DEAD_ENDPOINT

REFUSED = httpx.ConnectError("refused")


def _answer(status: int) -> httpx.Response:
    return httpx.Response(status, json={})


def _drive(failover: Failover, outcomes: list[Outcome]) -> tuple[list[int], Outcome]:
    """Run one call of ``failover`` with scripted outcomes: the endpoints tried, and what the call gave."""
    tries = failover.tries()
    tried = [next(tries)]
    script = iter(outcomes)
    while True:
        try:
            tried.append(tries.send(next(script)))
        except StopIteration as stop:
            return tried, stop.value
        except httpx.TransportError as exc:
            return tried, exc


def _drive_rest(tries, outcomes: list[Outcome]) -> tuple[list[int], Outcome]:
    """Go on with a call already started: the endpoints it tried next, and what it gave."""
    tried: list[int] = []
    for outcome in outcomes:
        try:
            tried.append(tries.send(outcome))
        except StopIteration as stop:
            return tried, stop.value
    raise AssertionError("the call did not end")


@pytest.mark.parametrize(
    ("endpoints", "outcomes", "tried", "status", "current"),
    [
        (1, [503], [0], 503, 0),  # one endpoint: a 503 is the caller's to back off from
        (2, [200], [0], 200, 0),
        (2, [REFUSED, 200], [0, 1], 200, 1),
        (3, [503, 202], [0, 1], 202, 1),
        (2, [429], [0], 429, 0),  # only a 503 or no answer moves on: a 429 is that region's answer
        (2, [503, 503], [0, 1], 503, 0),  # every one tried once, the last 503 returned
        (2, [503, REFUSED], [0, 1], None, 0),  # ... or the last network error raised
        (2, [REFUSED, 503], [0, 1], 503, 0),
    ],
)
def test_the_shared_rule_moves_on_only_for_no_answer_or_503_and_tries_each_endpoint_once(
    endpoints, outcomes, tried, status, current
):
    failover = Failover([f"http://region-{i}" for i in range(endpoints)])
    scripted = [_answer(o) if isinstance(o, int) else o for o in outcomes]
    seen, result = _drive(failover, scripted)
    assert seen == tried
    if status is None:
        assert result is REFUSED
    else:
        assert isinstance(result, httpx.Response) and result.status_code == status
    assert failover.current == current


def test_calls_in_flight_together_each_try_every_endpoint_once():
    failover = Failover(["http://dead", "http://live"])
    first, second = failover.tries(), failover.tries()
    assert (next(first), next(second)) == (0, 0)
    assert first.send(REFUSED) == 1  # the first call moves on ...
    assert second.send(REFUSED) == 1  # ... and the second goes to the live one, not back to 0
    _, answer = _drive_rest(first, [_answer(200)])
    _, answer2 = _drive_rest(second, [_answer(200)])
    assert answer.status_code == answer2.status_code == 200 and failover.current == 1


def test_concurrent_submissions_fail_over_together(live_server, transactional_db, tenant, pcs_factory):
    async def submit_all():
        async with AsyncFlkClient([DEAD_ENDPOINT, live_server.url], timeout=httpx.Timeout(2)) as client:
            answers = await asyncio.gather(*(client.submit(pcs_factory(epoch=e)) for e in range(20, 26)))
            return answers, client.endpoint

    answers, endpoint = asyncio.run(submit_all())
    assert [a.status for a in answers] == [200] * 6 and endpoint == live_server.url
    assert PcsRecord.objects.count() == 6


def test_a_refused_connection_moves_to_the_next_region_and_stays_there(
    live_server, transactional_db, tenant, pcs_factory, tmp_path
):
    async def deliver(outbox: Outbox):
        async with AsyncFlkClient([DEAD_ENDPOINT, live_server.url], timeout=httpx.Timeout(2)) as client:
            report = await deliver_pending_async(outbox, client)
            batch = await client.submit_batch([pcs_factory(epoch=4)])
            return report, batch, client.endpoint, client.failovers

    with Outbox(tmp_path) as outbox:
        outbox.put_many([pcs_factory(epoch=epoch) for epoch in (1, 2, 3)])
        report, batch, endpoint, failovers = asyncio.run(deliver(outbox))
        assert [r.state for r in outbox.records.values()] == [ACKED] * 3
    assert (report.acked, report.dead) == (3, 0)
    assert batch.ok and [r.status for r in batch.results] == [200]
    assert endpoint == live_server.url and failovers == 1  # sticky after the move
    assert PcsRecord.objects.count() == 4


def test_a_503_moves_to_the_next_region_and_a_resend_is_a_replay_not_a_second_decision(
    live_server, transactional_db, tenant, pcs_factory, tmp_path, unavailable
):
    pcs = pcs_factory(epoch=7)

    async def deliver(outbox: Outbox):
        async with AsyncFlkClient(f"{unavailable.url},{live_server.url}", timeout=httpx.Timeout(2)) as client:
            return await deliver_pending_async(outbox, client), client.endpoint

    with Outbox(tmp_path) as outbox:
        outbox.put(pcs)
        first, endpoint = asyncio.run(deliver(outbox))
    assert unavailable.hits == 1 and endpoint == live_server.url
    # The agent restarts with a fresh outbox and sends the same PCS again, through the same regions.
    with Outbox(tmp_path / "again") as outbox:
        outbox.put(pcs)
        again, _ = asyncio.run(deliver(outbox))
    assert unavailable.hits == 2
    assert [o for _, _, o in first.results] == ["acked"]
    assert [o for _, _, o in again.results] == ["replayed"]
    assert PcsRecord.objects.filter(pcs_id=pcs["pcs_id"]).count() == 1


def test_every_region_unavailable_raises_the_last_error_or_returns_the_last_503(pcs_factory, unavailable):
    async def submit(endpoints: list[str]):
        async with AsyncFlkClient(endpoints, timeout=httpx.Timeout(1)) as client:
            try:
                return await client.submit(pcs_factory(epoch=8)), client.failovers
            except httpx.TransportError as exc:
                return exc, client.failovers

    error, failovers = asyncio.run(submit([unavailable.url, DEAD_ENDPOINT]))
    assert isinstance(error, httpx.ConnectError) and failovers == 2
    answer, failovers = asyncio.run(submit([DEAD_ENDPOINT, unavailable.url]))
    assert answer.status == 503 and answer.retry_after == 5.0 and failovers == 2
    assert unavailable.hits == 2
