"""Streaming audit entries to each vendor's format, within its limits, through retries and refusals.

The receivers (tests/support/siem_receivers.py) stand in for Splunk HEC, Datadog and Elasticsearch,
which cannot run here: real HTTP servers on 127.0.0.1 that check auth, format and limits as documented.
"""

from __future__ import annotations

import json
import socket

import pytest
from prometheus_client import REGISTRY

from apps.audit.models import AuditLogHead
from apps.siem.delivery import sink_deliver
from apps.siem.models import SiemCursor, SiemSink
from apps.siem.selectors import sink_lag
from apps.siem.services import sink_resume, sink_rewind, sink_update
from apps.tenants.models import Tenant
from tests.siem.conftest import KINDS, RECEIVERS, TOKEN, append_entries, expected_ids, make_sink
from tests.support.siem_receivers import DatadogLogsReceiver, ElasticsearchReceiver, SplunkHecReceiver


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _cursor(sink: SiemSink, tenant: Tenant) -> SiemCursor:
    return SiemCursor.objects.get(sink=sink, tenant=tenant)


def _check_format(kind: str, received: dict, tenant_slug: str) -> None:
    if kind == SiemSink.KIND_SPLUNK:
        assert (received["index"], received["sourcetype"], received["source"]) == (
            "flk",
            "flk:audit",
            "flk:audit",
        )
        body = received["event"]
        assert received["fields"]["event_id"] == body["event_id"]
    elif kind == SiemSink.KIND_DATADOG:
        assert (received["ddsource"], received["service"]) == ("flk", "flk-verifier")
        assert f"tenant:{tenant_slug}" in received["ddtags"].split(",") and "env:test" in received["ddtags"]
        body = json.loads(received["message"])
        assert received["event_id"] == body["event_id"]
    else:
        body = received
        assert body["@timestamp"] == body["created_at"]
    assert body["tenant"] == tenant_slug
    assert set(body) >= {
        "seq",
        "kind",
        "pcs_id",
        "status",
        "reason",
        "actor",
        "entry_hash",
        "prev_hash",
        "details",
    }


OPTIONS = {
    SiemSink.KIND_SPLUNK: {"index": "flk", "sourcetype": "flk:audit"},
    SiemSink.KIND_DATADOG: {"service": "flk-verifier", "tags": ["env:test"]},
    SiemSink.KIND_ELASTIC: {"index": "flk-audit-test"},
}


@pytest.mark.parametrize("receiver", KINDS, indirect=True)
def test_each_kind_delivers_a_tenants_entries_in_seq_order(db, tenant, receiver):
    kind = next(k for k, cls in RECEIVERS.items() if isinstance(receiver, cls))
    append_entries(tenant, 120)
    sink = make_sink(kind, receiver, options=OPTIONS[kind], max_batch_events=50)
    before = _sample("flk_siem_events_total", sink=sink.name, outcome="delivered")

    report = sink_deliver(sink=sink)

    ids = expected_ids(tenant)
    assert receiver.ids == ids and len(ids) == 121  # the tenant's creation entry and 120 more
    assert [r.events for r in receiver.requests] == [50, 50, 21]
    for _, received in receiver.received:
        _check_format(kind, received, tenant.slug)
    if kind == SiemSink.KIND_ELASTIC:
        assert {index for index, _ in receiver.docs} == {"flk-audit-test"}
    assert report.delivered == 121 and report.error == ""
    assert _cursor(sink, tenant).next_seq == AuditLogHead.objects.get(tenant=tenant).size == 121
    assert sink_lag(sink=sink) == 0
    assert _sample("flk_siem_lag_entries", sink=sink.name) == 0
    assert _sample("flk_siem_events_total", sink=sink.name, outcome="delivered") - before == 121
    sink.refresh_from_db()
    assert sink.last_success_at is not None and sink.last_error == ""

    # A second run finds nothing new and sends nothing; new entries go out after the cursor.
    sink_deliver(sink=sink)
    assert len(receiver.requests) == 3
    append_entries(tenant, 5)
    sink_deliver(sink=sink)
    assert receiver.ids == expected_ids(tenant)


def test_a_tenant_sink_streams_only_its_tenant_and_an_all_tenant_sink_streams_every_one(tenant_a, tenant_b):
    append_entries(tenant_a.tenant, 10)
    append_entries(tenant_b.tenant, 7)
    with SplunkHecReceiver(TOKEN).running() as one, SplunkHecReceiver(TOKEN).running() as every:
        scoped = make_sink(SiemSink.KIND_SPLUNK, one, name="acme-only", tenant=tenant_a.tenant)
        everyone = make_sink(SiemSink.KIND_SPLUNK, every, name="all-tenants")
        sink_deliver(sink=scoped)
        sink_deliver(sink=everyone)
        # The scoped sink's creation is itself an audit entry of acme's log: it is streamed too.
        assert one.ids == expected_ids(tenant_a.tenant)
        assert sorted(every.ids) == sorted(expected_ids(tenant_a.tenant) + expected_ids(tenant_b.tenant))
        assert not any(eid.startswith("globex:") for eid in one.ids)


@pytest.mark.parametrize(
    ("receiver_cls", "receiver_limit", "sink_limits", "entries", "largest_events"),
    [
        # Datadog's documented cap of 1,000 entries, with the sink left at its defaults.
        (DatadogLogsReceiver, None, {}, 2_499, 1_000),
        # An HEC whose max_content_length was lowered to 20 kB, and a sink configured to match.
        (SplunkHecReceiver, 20_000, {"max_batch_bytes": 20_000}, 300, None),
        # Elasticsearch with a 30 kB http.max_content_length and a sink configured to match.
        (ElasticsearchReceiver, 30_000, {"max_batch_bytes": 30_000}, 300, None),
    ],
)
def test_batches_stay_within_the_vendors_limits(
    db, tenant, receiver_cls, receiver_limit, sink_limits, entries, largest_events
):
    kind = next(k for k, cls in RECEIVERS.items() if cls is receiver_cls)
    append_entries(tenant, entries)
    kwargs = {"max_bytes": receiver_limit} if receiver_limit else {}
    with receiver_cls(TOKEN, **kwargs).running() as receiver:
        sink = make_sink(kind, receiver, **sink_limits)
        sink_deliver(sink=sink)
    assert receiver.ids == expected_ids(tenant)
    assert {r.status for r in receiver.requests} <= {200, 202}  # never a 413 or a 400
    assert len(receiver.requests) > 1
    if largest_events:
        assert max(r.events for r in receiver.requests) == largest_events
    if receiver_limit:
        assert max(r.size for r in receiver.requests) <= receiver_limit


def test_a_413_halves_the_batch_until_it_fits(db, tenant):
    append_entries(tenant, 200)
    # The sink believes the default 5 MB; this cluster's http.max_content_length is 25 kB.
    with ElasticsearchReceiver(TOKEN, max_bytes=25_000).running() as receiver:
        sink = make_sink(SiemSink.KIND_ELASTIC, receiver, max_batch_events=200)
        report = sink_deliver(sink=sink)
    assert receiver.ids == expected_ids(tenant) and receiver.conflicts == 0
    assert report.error == "" and 413 in {r.status for r in receiver.requests}
    assert max(r.size for r in receiver.requests if r.status == 200) <= 25_000
    assert _cursor(sink, tenant).next_seq == 201


def test_elasticsearch_redelivery_is_answered_409_and_holds_each_id_once(db, tenant):
    append_entries(tenant, 40)
    with ElasticsearchReceiver(TOKEN).running() as receiver:
        sink = make_sink(SiemSink.KIND_ELASTIC, receiver)
        sink_deliver(sink=sink)
        # An operator replays everything (say the index was restored from a snapshot).
        sink_rewind(sink=sink, tenant=tenant, next_seq=0, actor="test")
        report = sink_deliver(sink=sink)
    assert report.duplicates == 41 and report.delivered == 41 and report.error == ""
    assert receiver.conflicts == 41
    assert len(receiver.docs) == 41 and receiver.ids == expected_ids(tenant)
    assert _cursor(sink, tenant).next_seq == 41


def test_elasticsearch_retries_only_the_items_that_failed(db, tenant):
    append_entries(tenant, 30)
    ids = expected_ids(tenant)
    with ElasticsearchReceiver(TOKEN).running() as receiver:
        receiver.reject_items_once([ids[3], ids[17], ids[29]], status=429)
        sink = make_sink(SiemSink.KIND_ELASTIC, receiver)
        report = sink_deliver(sink=sink)
    assert [r.events for r in receiver.requests] == [28, 3]  # the retry carries the three alone
    assert sorted(receiver.ids) == sorted(ids) and receiver.conflicts == 0
    assert report.delivered == 31 and _cursor(sink, tenant).next_seq == 31


@pytest.mark.parametrize("receiver", KINDS, indirect=True)
def test_a_503_is_retried_with_backoff(db, tenant, receiver):
    kind = next(k for k, cls in RECEIVERS.items() if isinstance(receiver, cls))
    append_entries(tenant, 9)
    receiver.fail_next(2, status=503)
    sink = make_sink(kind, receiver)
    report = sink_deliver(sink=sink)
    assert [r.status for r in receiver.requests][:2] == [503, 503]
    assert receiver.ids == expected_ids(tenant) and report.error == ""
    sink.refresh_from_db()
    assert sink.state == SiemSink.STATE_ACTIVE and sink.consecutive_failures == 0


def test_a_429_waits_at_least_what_retry_after_asks(db, tenant):
    append_entries(tenant, 3)
    with DatadogLogsReceiver(TOKEN).running() as receiver:
        receiver.fail_next(1, status=429, retry_after="1")
        sink = make_sink(SiemSink.KIND_DATADOG, receiver)
        sink_deliver(sink=sink)
    refused, accepted = receiver.requests
    assert (refused.status, accepted.status) == (429, 202)
    assert accepted.at - refused.at >= 1.0  # the backoff alone would be under 0.05 s here
    assert receiver.ids == expected_ids(tenant)


def test_retries_are_bounded_and_the_sink_backs_off_with_its_error_shown(db, tenant, settings):
    settings.SIEM_MAX_ATTEMPTS = 3
    append_entries(tenant, 5)
    with SplunkHecReceiver(TOKEN).running() as receiver:
        receiver.fail_next(100, status=503)
        sink = make_sink(SiemSink.KIND_SPLUNK, receiver)
        report = sink_deliver(sink=sink)
        assert len(receiver.requests) == 3 and "HTTP 503" in report.error
        sink.refresh_from_db()
        assert sink.state == SiemSink.STATE_ACTIVE and "Server is busy" in sink.last_error
        assert sink.consecutive_failures == 1 and sink.next_attempt_at is not None
        assert _cursor(sink, tenant).next_seq == 0 and sink_lag(sink=sink) == 6
        # The next run, seconds later, leaves the failing sink alone until its backoff ends.
        assert sink_deliver(sink=sink).skipped == "backing off"
        assert len(receiver.requests) == 3


def test_a_network_error_is_retried_then_recorded(db, tenant, settings):
    settings.SIEM_MAX_ATTEMPTS = 2
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with SplunkHecReceiver(TOKEN).running() as receiver:
        sink = make_sink(SiemSink.KIND_SPLUNK, receiver)
    sink_update(sink=sink, changes={"endpoint": f"http://127.0.0.1:{port}"}, actor="test")
    report = sink_deliver(sink=sink)
    sink.refresh_from_db()
    assert "network error" in report.error and "network error" in sink.last_error
    assert _cursor(sink, tenant).next_seq == 0


@pytest.mark.parametrize("receiver", KINDS, indirect=True)
def test_a_wrong_token_stops_the_sink_with_its_error_and_sends_nothing_more(db, tenant, receiver):
    kind = next(k for k, cls in RECEIVERS.items() if isinstance(receiver, cls))
    append_entries(tenant, 4)
    sink = make_sink(kind, receiver, secret="not-the-token")
    stops = _sample(
        "flk_siem_sink_stops_total", sink=sink.name, reason=f"http_{401 if kind == 'elasticsearch' else 403}"
    )

    report = sink_deliver(sink=sink)

    sink.refresh_from_db()
    assert sink.state == SiemSink.STATE_STOPPED and report.state == SiemSink.STATE_STOPPED
    assert ("HTTP 401" in sink.last_error) or ("HTTP 403" in sink.last_error)
    assert receiver.ids == [] and len(receiver.requests) == 1  # not retried: retrying cannot fix it
    assert _cursor(sink, tenant).next_seq == 0
    reason = f"http_{401 if kind == 'elasticsearch' else 403}"
    assert _sample("flk_siem_sink_stops_total", sink=sink.name, reason=reason) == stops + 1
    assert sink_deliver(sink=sink).skipped == SiemSink.STATE_STOPPED
    assert len(receiver.requests) == 1

    # The operator fixes the token and resumes: everything arrives.
    sink_update(sink=sink, changes={}, actor="test", secret=TOKEN)
    sink_resume(sink=sink, actor="test")
    sink_deliver(sink=SiemSink.objects.get(pk=sink.pk))
    assert receiver.ids == expected_ids(tenant)
