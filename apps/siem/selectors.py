"""Reads of SIEM streaming state: how far each sink is behind each tenant's log."""

from __future__ import annotations

from dataclasses import dataclass

from apps.audit.models import AuditLogHead
from apps.siem.models import SiemCursor, SiemSink
from apps.tenants.models import Tenant


@dataclass(frozen=True)
class CursorPosition:
    """One tenant's position in a sink: the next entry to send, the log's size, the difference."""

    tenant: str
    next_seq: int
    head: int
    lag: int
    delivered: int


def sink_scope(*, sink: SiemSink) -> list[Tenant]:
    """The tenants whose logs the sink streams: its one tenant, or every tenant."""
    if sink.tenant_id is not None:
        return list(Tenant.objects.filter(pk=sink.tenant_id))
    return list(Tenant.objects.order_by("pk"))


def sink_positions(*, sink: SiemSink) -> list[CursorPosition]:
    """Every tenant in the sink's scope with its cursor (0 before the first run) and log size, by slug."""
    tenants = sink_scope(sink=sink)
    ids = [t.pk for t in tenants]
    cursors = {
        c.tenant_id: c
        for c in SiemCursor.objects.filter(sink=sink, tenant_id__in=ids).only(
            "tenant_id", "next_seq", "delivered"
        )
    }
    heads = dict(AuditLogHead.objects.filter(tenant_id__in=ids).values_list("tenant_id", "size"))
    positions = []
    for tenant in sorted(tenants, key=lambda t: t.slug):
        cursor = cursors.get(tenant.pk)
        next_seq = cursor.next_seq if cursor else 0
        head = heads.get(tenant.pk, 0)
        positions.append(
            CursorPosition(
                tenant.slug, next_seq, head, max(0, head - next_seq), cursor.delivered if cursor else 0
            )
        )
    return positions


def sink_lag(*, sink: SiemSink) -> int:
    """Entries the sink has not delivered yet, summed over the tenants it streams."""
    return sum(p.lag for p in sink_positions(sink=sink))
