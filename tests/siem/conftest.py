"""SIEM test helpers: audit entries in bulk, sinks pointed at the local vendor receivers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.audit.appender import EntryDraft, audit_append_many
from apps.audit.models import AuditEntry
from apps.siem.events import event_id
from apps.siem.models import SiemSink
from apps.siem.services import sink_create
from apps.tenants.models import Tenant
from tests.support.siem_receivers import (
    DatadogLogsReceiver,
    ElasticsearchReceiver,
    Receiver,
    SplunkHecReceiver,
)

TOKEN = "receiver-token-5f1c"
RECEIVERS: dict[str, type[Receiver]] = {
    SiemSink.KIND_SPLUNK: SplunkHecReceiver,
    SiemSink.KIND_DATADOG: DatadogLogsReceiver,
    SiemSink.KIND_ELASTIC: ElasticsearchReceiver,
}
KINDS = list(RECEIVERS)


def append_entries(tenant: Tenant, count: int, chunk: int = 1000) -> None:
    """Append ``count`` entries to the tenant's log through the one appender."""
    for start in range(0, count, chunk):
        drafts = [
            EntryDraft(kind="test_event", actor="test", reason=f"entry {n}", details={"n": n})
            for n in range(start, min(count, start + chunk))
        ]
        audit_append_many(tenant_id=tenant.pk, drafts=drafts)


def expected_ids(tenant: Tenant) -> list[str]:
    """The event ids of every entry of the tenant's log, in seq order."""
    rows = AuditEntry.objects.filter(tenant=tenant).order_by("seq").values_list("seq", "entry_hash")
    return [event_id(tenant_slug=tenant.slug, seq=seq, entry_hash=h) for seq, h in rows]


def make_sink(kind: str, receiver: Receiver, *, secret: str = TOKEN, **kwargs: Any) -> SiemSink:
    """A sink of ``kind`` on ``receiver``."""
    return sink_create(
        name=kwargs.pop("name", f"{kind.replace('_', '-')}-sink"),
        kind=kind,
        secret=secret,
        actor="test",
        endpoint=receiver.url,
        **kwargs,
    )


@pytest.fixture
def receiver(request) -> Iterator[Receiver]:
    """A running receiver of the parametrized ``kind``."""
    with RECEIVERS[request.param](TOKEN).running() as running:
        yield running


@pytest.fixture(autouse=True)
def _fast_backoff(settings) -> None:
    # Backoff arithmetic is the same at any scale; the tests should not sleep seconds for it.
    settings.SIEM_BACKOFF_BASE_SECONDS = 0.01
    settings.SIEM_BACKOFF_MAX_SECONDS = 0.05
