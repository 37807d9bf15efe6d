"""Agent failover between regions: several endpoints, the next one on a connection failure or a 503,
and the outbox keeps every PCS decided once in effect."""

from __future__ import annotations

import json

import pytest

from apps.pcs.models import PcsRecord
from flk_agent.cli import main
from flk_agent.client import FlkClient, endpoints_of
from flk_agent.delivery import deliver_pending
from flk_agent.outbox import ACKED, Outbox
from tests.sdk.failing_regions import DEAD_ENDPOINT


def test_endpoints_come_from_a_list_or_a_comma_separated_string():
    assert endpoints_of("http://a:1/, http://b:2") == ["http://a:1", "http://b:2"]
    assert endpoints_of(["http://a:1", "http://b:2/"]) == ["http://a:1", "http://b:2"]
    with pytest.raises(ValueError):
        endpoints_of(" , ")


def test_a_refused_connection_moves_to_the_next_region_and_stays_there(
    live_server, transactional_db, tenant, pcs_factory, tmp_path
):
    with FlkClient([DEAD_ENDPOINT, live_server.url], timeout=2) as client, Outbox(tmp_path) as outbox:
        for epoch in (1, 2, 3):
            outbox.put(pcs_factory(epoch=epoch))
        report = deliver_pending(outbox, client)
        assert [r.state for r in outbox.records.values()] == [ACKED] * 3
        assert client.endpoint == live_server.url and client.failovers == 1  # sticky after the move
    assert report.acked == 3 and report.dead == 0
    assert PcsRecord.objects.count() == 3


def test_a_503_moves_to_the_next_region_and_a_resend_is_a_replay_not_a_second_decision(
    live_server, transactional_db, tenant, pcs_factory, tmp_path, unavailable
):
    pcs = pcs_factory(epoch=7)
    with FlkClient([unavailable.url, live_server.url], timeout=2) as client, Outbox(tmp_path) as outbox:
        outbox.put(pcs)
        first = deliver_pending(outbox, client)
        assert unavailable.hits == 1 and client.endpoint == live_server.url
    # The agent restarts with a fresh outbox and sends the same PCS again, through the same regions.
    regions = [unavailable.url, live_server.url]
    with FlkClient(regions, timeout=2) as client, Outbox(tmp_path / "again") as outbox:
        outbox.put(pcs)
        again = deliver_pending(outbox, client)
    assert [o for _, _, o in first.results] == ["acked"]
    assert [o for _, _, o in again.results] == ["replayed"]
    assert PcsRecord.objects.filter(pcs_id=pcs["pcs_id"]).count() == 1


def test_every_region_unavailable_leaves_the_pcs_pending_for_the_backoff(
    transactional_db, pcs_factory, tmp_path, unavailable
):
    with FlkClient([unavailable.url, DEAD_ENDPOINT], timeout=1) as client:
        with pytest.raises(Exception):  # noqa: B017 (the last endpoint's network error)
            client.submit(pcs_factory(epoch=8))
        assert client.failovers == 2
    with FlkClient([DEAD_ENDPOINT, unavailable.url], timeout=1) as client:
        answer = client.submit(pcs_factory(epoch=9))
    assert answer.status == 503 and answer.retry_after == 5.0


def test_the_cli_takes_several_endpoints(
    live_server, transactional_db, tenant, pcs_factory, tmp_path, capsys
):
    (tmp_path / "in").mkdir()
    for epoch in (11, 12):
        (tmp_path / "in" / f"{epoch}.json").write_text(json.dumps(pcs_factory(epoch=epoch)))
    code = main(
        [
            "submit",
            str(tmp_path / "in"),
            "--outbox",
            str(tmp_path / "outbox"),
            "--url",
            f"{DEAD_ENDPOINT},{live_server.url}",
        ]
    )
    assert code == 0, capsys.readouterr()
    assert PcsRecord.objects.count() == 2
