"""Configuring sinks: encrypted write-only secrets, validation, audited changes, the admin, the command.

The receivers stand in for the vendors' services, which cannot run here (tests/support/siem_receivers.py).
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import Client

from apps.audit.models import AuditEntry
from apps.siem.delivery import sink_deliver
from apps.siem.models import SiemSink
from apps.siem.services import SiemError, sink_create, sink_pause, sink_resume, sink_update
from apps.tenants.crypto import decrypt_secret
from tests.siem.conftest import TOKEN, append_entries, expected_ids, make_sink
from tests.support.siem_receivers import DatadogLogsReceiver, ElasticsearchReceiver, SplunkHecReceiver

SECRET = "hec-token-0b7e6a9c-never-in-clear"


def test_the_secret_is_stored_encrypted_and_only_decrypts_with_the_key(db):
    sink = sink_create(
        name="splunk",
        kind=SiemSink.KIND_SPLUNK,
        secret=SECRET,
        actor="test",
        endpoint="https://hec.example.com",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM siem_siemsink WHERE id = %s", [sink.pk])
        row = " ".join(str(value) for value in cursor.fetchone())
    assert SECRET not in row and "hec-token" not in row
    assert decrypt_secret(sink.secret_encrypted).decode() == SECRET


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": "datadog", "max_batch_events": 5_000}, "between 1 and 1000"),
        ({"kind": "datadog", "max_batch_bytes": 6_000_000}, "between 1000 and 5000000"),
        ({"kind": "splunk_hec", "options": {"idx": "main"}}, "unknown option 'idx'"),
        ({"kind": "elasticsearch", "options": {"auth": "token"}}, "auth: one of api_key, basic"),
        ({"kind": "splunk_hec", "endpoint": "http://hec.example.com:8088"}, "https is required"),
        ({"kind": "splunk_hec", "endpoint": ""}, "endpoint: required"),
        ({"kind": "syslog"}, "unknown sink kind"),
        ({"kind": "splunk_hec", "secret": ""}, "secret"),
    ],
)
def test_a_sink_that_cannot_work_is_refused_and_nothing_is_saved(db, fields, problem):
    arguments = {
        "name": "bad",
        "secret": "s",
        "actor": "test",
        "endpoint": "https://siem.example.com",
        **fields,
    }
    with pytest.raises(SiemError, match=problem):
        sink_create(**arguments)
    assert not SiemSink.objects.exists()


def test_changes_to_a_tenant_sink_are_audited_with_their_actor_and_never_the_secret(db, tenant):
    sink = sink_create(
        name="tenant-hec",
        kind=SiemSink.KIND_SPLUNK,
        secret=SECRET,
        actor="alice",
        endpoint="https://hec.example.com",
        tenant=tenant,
    )
    sink_update(
        sink=sink, changes={"endpoint": "https://hec2.example.com"}, actor="bob", secret="new-" + SECRET
    )
    sink_pause(sink=sink, actor="carol")
    sink_pause(sink=sink, actor="carol")  # already paused: nothing to record
    sink_resume(sink=sink, actor="dave")
    entries = AuditEntry.objects.filter(tenant=tenant, kind__startswith="siem_").order_by("seq")
    assert [(e.kind, e.actor) for e in entries] == [
        ("siem_sink_created", "alice"),
        ("siem_sink_changed", "bob"),
        ("siem_sink_paused", "carol"),
        ("siem_sink_resumed", "dave"),
    ]
    changed = entries[1]
    assert changed.details == {"sink": "tenant-hec", "fields": ["endpoint"], "secret_replaced": True}
    assert not any(SECRET in f"{e.reason} {e.details}" for e in entries)


def _admin_client(client: Client, *, superuser: bool = True) -> User:
    if superuser:
        user = User.objects.create_superuser("ops", "ops@example.com", "a-long-admin-passphrase")
    else:
        user = User.objects.create_user("viewer", "v@example.com", "a-long-admin-passphrase", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="view_siemsink"))
    client.force_login(user)
    return user


def test_an_operator_adds_a_sink_in_the_admin_and_sees_its_cursor_lag_and_test_event(client, db, tenant):
    _admin_client(client)
    append_entries(tenant, 12)
    with DatadogLogsReceiver(TOKEN).running() as receiver:
        answer = client.post(
            "/admin/siem/siemsink/add/",
            {
                "name": "datadog-eu",
                "kind": "datadog",
                "endpoint": receiver.url,
                "secret": TOKEN,
                "tenant": "",
                "options": '{"site": "datadoghq.eu", "service": "flk"}',
                "max_batch_events": "",
                "max_batch_bytes": "",
            },
        )
        assert answer.status_code == 302, answer.content.decode()[:2000]
        sink = SiemSink.objects.get(name="datadog-eu")
        assert decrypt_secret(sink.secret_encrypted).decode() == TOKEN

        page = client.get(f"/admin/siem/siemsink/{sink.pk}/change/").content.decode()
        assert TOKEN not in page  # write-only: the form never shows it
        assert "<td>default</td><td>0</td><td>13</td><td>13</td>" in page  # next seq 0 of 13: lag 13

        listed = client.post(
            "/admin/siem/siemsink/",
            {"action": "send_test_event", "_selected_action": [sink.pk]},
            follow=True,
        ).content.decode()
        assert "Sink datadog-eu accepted the test event: HTTP 202" in listed
        assert receiver.ids[0].startswith("test:datadog-eu:")

        sink_deliver(sink=sink)
        page = client.get(f"/admin/siem/siemsink/{sink.pk}/change/").content.decode()
        assert "<td>default</td><td>13</td><td>13</td><td>0</td>" in page

        client.post("/admin/siem/siemsink/", {"action": "pause", "_selected_action": [sink.pk]})
        assert SiemSink.objects.get(pk=sink.pk).state == SiemSink.STATE_PAUSED
        client.post("/admin/siem/siemsink/", {"action": "resume", "_selected_action": [sink.pk]})
        assert SiemSink.objects.get(pk=sink.pk).state == SiemSink.STATE_ACTIVE


def test_the_admin_refuses_an_invalid_sink_with_the_reason(client, db):
    _admin_client(client)
    answer = client.post(
        "/admin/siem/siemsink/add/",
        {
            "name": "dd",
            "kind": "datadog",
            "endpoint": "",
            "secret": "k",
            "options": "{}",
            "max_batch_events": "5000",
        },
    )
    assert answer.status_code == 200 and "between 1 and 1000" in answer.content.decode()
    assert not SiemSink.objects.exists()


def test_staff_who_may_only_view_sinks_cannot_pause_or_edit_them(client, db):
    with SplunkHecReceiver(TOKEN).running() as receiver:
        sink = make_sink(SiemSink.KIND_SPLUNK, receiver)
    _admin_client(client, superuser=False)
    assert client.get("/admin/siem/siemsink/").status_code == 200
    client.post("/admin/siem/siemsink/", {"action": "pause", "_selected_action": [sink.pk]})
    answer = client.post(
        f"/admin/siem/siemsink/{sink.pk}/change/",
        {"name": "renamed", "endpoint": "https://x.example.com", "secret": "stolen", "options": "{}"},
    )
    assert answer.status_code == 403
    after = SiemSink.objects.get(pk=sink.pk)
    assert (after.name, after.state, after.secret_encrypted) == (sink.name, sink.state, sink.secret_encrypted)


def test_the_command_shows_status_and_sends(db, tenant, capsys):
    append_entries(tenant, 3)
    with ElasticsearchReceiver(TOKEN, basic=("flk", "pw")).running() as receiver:
        make_sink(SiemSink.KIND_ELASTIC, receiver, secret="flk:pw", options={"auth": "basic"}, name="es")
        call_command("siem", "status")
        assert "es (elasticsearch, all tenants): active" in capsys.readouterr().out
        call_command("siem", "send", "--sink", "es")
        assert "es: delivered 4 in 1 batch(es)" in capsys.readouterr().out
    assert receiver.ids == expected_ids(tenant)
    call_command("siem", "status")
    assert "default: next seq 4 of 4, lag 0" in capsys.readouterr().out


def test_secrets_follow_an_encryption_key_rotation(db, settings, capsys):
    sink = sink_create(
        name="s", kind="splunk_hec", secret=SECRET, actor="t", endpoint="https://h.example.com"
    )
    settings.FLK_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FLK_ENCRYPTION_KEYS]
    call_command("siem", "reencrypt")
    assert "re-encrypted 1 sink secret(s)" in capsys.readouterr().out
    settings.FLK_ENCRYPTION_KEYS = settings.FLK_ENCRYPTION_KEYS[:1]  # the old key is gone
    assert decrypt_secret(SiemSink.objects.get(pk=sink.pk).secret_encrypted).decode() == SECRET


def test_a_secret_that_no_longer_decrypts_stops_the_sink_with_the_reason(db, tenant, settings):
    with SplunkHecReceiver(TOKEN).running() as receiver:
        sink = make_sink(SiemSink.KIND_SPLUNK, receiver)
        settings.FLK_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key it was stored with is gone
        sink_deliver(sink=sink)
    sink.refresh_from_db()
    assert sink.state == SiemSink.STATE_STOPPED and "cannot be read" in sink.last_error
    assert receiver.requests == []
