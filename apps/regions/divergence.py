"""Divergence between regions: digests of the decided sets, drill-down, and reconciliation.

Each region sums, per tenant and time bucket of receive time (``CRR_DIFF_BUCKET_SECONDS``, over the last
``CRR_DIFF_WINDOW_HOURS``) and per first hex digit of pcs_id, SHA-256(pcs_id | payload digest |
outcome | settled) modulo 2^256: order-independent, and equal in two regions exactly when they decided
the same set the same way (up to hash collisions). The final outcome is the settlement's when there is
one. Each region publishes its digests to the other regions' buckets (``digests/<region>/latest.json``)
and compares them with what the others published into its own bucket; ``dedup_divergence`` is the
share of (tenant, bucket) cells that differ.

For a differing cell and digit, both regions publish the cell's decided set (``detail``), and each
drills down with the other's (only when it matches the digest published with it): a PCS the other
decided and this region lacks is replayed from the other's chunks (through the reader's path); a PCS
decided differently in both (a true conflict: another outcome or another signed payload) is settled
by the earliest receive time (then the earliest decision: a replayed copy is decided later) as a
``Settlement`` and a
"reconciliation" audit entry with both outcomes, in each region. Records are never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.audit.services import audit_append
from apps.pcs import wal
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest_wal
from apps.regions import storage
from apps.regions.models import DivergenceStatus, Settlement
from apps.tenants.models import Tenant

logger = logging.getLogger("flk.regions")

MOD = 1 << 256
RECONCILIATION_KIND = "reconciliation"
CHUNK_SEARCH_LIMIT = 200  # chunks read when looking for a missing PCS in a peer's WAL

# pcs_id, payload digest, status, received_at, policy version, decided_at (ISO 8601)
Item = tuple[str, str, int, str, str, str]


@dataclass
class DiffReport:
    """One comparison with one peer."""

    peer: str
    cells: int = 0
    differing_cells: int = 0
    share: float = 0.0
    missing_here: list[str] = field(default_factory=list)
    missing_there: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    replayed: int = 0
    settled: int = 0
    peer_known: bool = True

    def as_dict(self) -> dict[str, object]:
        """Plain values for logs, task results and the CLI."""
        return asdict(self)


def _bucket(at: datetime) -> int:
    size = settings.CRR_DIFF_BUCKET_SECONDS
    return int(at.timestamp()) // size * size


def _leaf(pcs_id: str, payload: str, status: int, settled: bool) -> int:
    text = f"{pcs_id}|{payload}|{status}|{'settled' if settled else ''}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


@dataclass
class DecidedSet:
    """This region's decided set in the window: digests per cell and digit, and the items behind them."""

    cells: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # "slug|bucket" -> digit -> [n, hex]
    items: dict[tuple[str, str], list[Item]] = field(default_factory=lambda: defaultdict(list))


def decided_set() -> DecidedSet:
    """Compute the digests (and keep the items) of every PCS received in the window."""
    since = timezone.now() - timedelta(hours=settings.CRR_DIFF_WINDOW_HOURS)
    settled = {
        (slug, pcs_id): (status, payload, received)
        for slug, pcs_id, status, payload, received in Settlement.objects.values_list(
            "tenant__slug", "pcs_id", "status_code", "payload_digest", "received_at"
        )
    }
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    out = DecidedSet()
    rows = PcsRecord.objects.filter(received_at__gte=since).values_list(
        "tenant__slug",
        "pcs_id",
        "payload_digest",
        "status_code",
        "received_at",
        "policy_version",
        "decided_at",
    )
    for slug, pcs_id, payload, status, received, version, decided in rows.iterator(chunk_size=5000):
        final = settled.get((slug, pcs_id))
        f_status, f_payload, f_received = final if final else (status, payload, received)
        cell = f"{slug}|{_bucket(f_received)}"
        digit = pcs_id[0]
        acc = sums[(cell, digit)]
        acc[0] += 1
        acc[1] = (acc[1] + _leaf(pcs_id, f_payload, f_status, final is not None)) % MOD
        item = (pcs_id, payload, status, received.isoformat(), version, decided.isoformat())
        out.items[(cell, digit)].append(item)
    for (cell, digit), (count, total) in sums.items():
        out.cells.setdefault(cell, {})[digit] = [count, f"{total:064x}"]
    return out


def _publish(mine: DecidedSet, differing: set[tuple[str, str]]) -> None:
    body = json.dumps(
        {"region": settings.REGION_ID, "computed_at": timezone.now().isoformat(), "cells": mine.cells},
        sort_keys=True,
    ).encode()
    for bucket in settings.WAL_REMOTE_BUCKET:
        storage.put(bucket, f"digests/{settings.REGION_ID}/latest.json", body)
        for cell, digit in sorted(differing):
            slug, start = cell.split("|")
            detail = {
                "digest": mine.cells.get(cell, {}).get(digit),
                "items": mine.items.get((cell, digit), []),
            }
            storage.put(
                bucket, _detail_key(settings.REGION_ID, slug, start, digit), json.dumps(detail).encode()
            )


def _detail_key(region: str, slug: str, start: str, digit: str) -> str:
    return f"digests/{region}/detail/{slug}/{start}/{digit}.json"


def _peer_cells(peer: str) -> dict[str, dict[str, list[Any]]] | None:
    try:
        found = storage.get(settings.REGION_BUCKET, f"digests/{peer}/latest.json")
    except storage.ObjectMissing:
        return None
    return json.loads(found.body)["cells"]


def _compare(
    mine: dict[str, dict[str, list[Any]]], theirs: dict[str, dict[str, list[Any]]]
) -> tuple[int, set[str], set[tuple[str, str]]]:
    cells = set(mine) | set(theirs)
    differing_cells: set[str] = set()
    differing: set[tuple[str, str]] = set()
    for cell in cells:
        a, b = mine.get(cell, {}), theirs.get(cell, {})
        for digit in set(a) | set(b):
            if a.get(digit) != b.get(digit):
                differing.add((cell, digit))
                differing_cells.add(cell)
    return len(cells), differing_cells, differing


def peers() -> list[str]:
    """Regions that published digests into this region's bucket."""
    found = (
        set(storage.list_prefixes(settings.REGION_BUCKET, "digests/")) if settings.REGION_BUCKET else set()
    )
    found.discard(settings.REGION_ID)
    return sorted(found)


def crr_diff(*, reconcile: bool = True) -> list[DiffReport]:
    """Publish this region's digests, compare with every peer's, drill down and (by default) reconcile."""
    mine = decided_set()
    reports = []
    peer_list = peers()
    differing_all: set[tuple[str, str]] = set()
    theirs_by_peer = {peer: _peer_cells(peer) for peer in peer_list}
    for theirs in theirs_by_peer.values():
        if theirs is not None:
            differing_all |= _compare(mine.cells, theirs)[2]
    _publish(mine, differing_all)
    changed = False
    for peer in peer_list:
        report = DiffReport(peer)
        theirs = theirs_by_peer[peer]
        if theirs is None:
            report.peer_known = False
            reports.append(report)
            continue
        _, _, differing = _compare(mine.cells, theirs)
        for cell, digit in sorted(differing):
            detail = _peer_detail(peer, cell, digit, theirs)
            if detail is None:
                continue
            changed |= _drill_down(peer, cell, mine.items.get((cell, digit), []), detail, report, reconcile)
        reports.append(report)
    if changed:  # settlements or replays changed this side: publish the new digests and compare again
        mine = decided_set()
        differing_all = set()
        for theirs in theirs_by_peer.values():
            if theirs is not None:
                differing_all |= _compare(mine.cells, theirs)[2]
        _publish(mine, differing_all)
    for report in reports:
        theirs = theirs_by_peer[report.peer]
        if theirs is None:
            continue
        report.cells, differing_cells, _ = _compare(mine.cells, theirs)
        report.differing_cells = len(differing_cells)
        report.share = report.differing_cells / report.cells if report.cells else 0.0
        DivergenceStatus.objects.update_or_create(
            peer_region=report.peer,
            defaults={
                "computed_at": timezone.now(),
                "cells": report.cells,
                "differing_cells": report.differing_cells,
                "share": report.share,
                "missing_here": len(report.missing_here),
                "missing_there": len(report.missing_there),
                "conflicts": len(report.conflicts),
                "details": {
                    "differing_cells": sorted(differing_cells)[:100],
                    "missing_here": report.missing_here[:100],
                    "missing_there": report.missing_there[:100],
                    "conflicts": report.conflicts[:100],
                },
            },
        )
    logger.info("regions.diff %s", [r.as_dict() for r in reports])
    return reports


def _peer_detail(
    peer: str, cell: str, digit: str, theirs: dict[str, dict[str, list[Any]]]
) -> list[Item] | None:
    slug, start = cell.split("|")
    try:
        found = storage.get(settings.REGION_BUCKET, _detail_key(peer, slug, start, digit))
    except storage.ObjectMissing:
        return None
    detail = json.loads(found.body)
    if detail.get("digest") != theirs.get(cell, {}).get(digit):
        return None  # written with older digests: wait for the peer's next run
    return [tuple(item) for item in detail["items"]]  # type: ignore[misc]


def _drill_down(
    peer: str, cell: str, mine: list[Item], theirs: list[Item], report: DiffReport, reconcile: bool
) -> bool:
    slug = cell.split("|")[0]
    here = {item[0]: item for item in mine}
    there = {item[0]: item for item in theirs}
    tenant = Tenant.objects.filter(slug=slug).first()
    changed = False
    for pcs_id in sorted(set(there) - set(here)):
        local = PcsRecord.objects.filter(tenant=tenant, pcs_id=pcs_id).first() if tenant else None
        if local is None:
            report.missing_here.append(pcs_id)
            if reconcile and tenant is not None and _replay_from_chunks(peer, tenant, there[pcs_id]):
                report.replayed += 1
                changed = True
            continue
        here[pcs_id] = _item(local)  # decided here too, in another cell (another receive time)
    for pcs_id in sorted(set(here) - set(there)):
        report.missing_there.append(pcs_id)  # the peer replays it from our chunks
    for pcs_id in sorted(set(here) & set(there)):
        if tenant is None or Settlement.objects.filter(tenant=tenant, pcs_id=pcs_id).exists():
            continue
        a, b = here[pcs_id], there[pcs_id]
        conflict = (a[1], a[2]) != (b[1], b[2])
        if not conflict and a[3] == b[3]:
            continue
        if conflict:
            report.conflicts.append(pcs_id)
        if reconcile:
            settlement_record(tenant=tenant, peer=peer, mine=a, theirs=b)
            report.settled += 1
            changed = True
    return changed


def _item(record: PcsRecord) -> Item:
    return (
        record.pcs_id,
        record.payload_digest,
        record.status_code,
        record.received_at.isoformat(),
        record.policy_version,
        record.decided_at.isoformat(),
    )


def settlement_record(*, tenant: Tenant, peer: str, mine: Item, theirs: Item) -> Settlement | None:
    """Settle one PCS decided in both regions; audited (in this region) when a true conflict.

    The earliest receive time wins. Equal receive times mean one copy was replayed from the other
    region's WAL (replay keeps the original receive time): the first decision, the first-hand one,
    wins; the region id breaks a tie of both.
    """
    here = settings.REGION_ID

    def order(item: Item, region: str) -> tuple[datetime, datetime, str]:
        received, decided = parse_datetime(item[3]), parse_datetime(item[5])
        assert received is not None and decided is not None
        return received.astimezone(UTC), decided.astimezone(UTC), region

    (received, _, winner), item = min((order(mine, here), mine), (order(theirs, peer), theirs))
    conflict = (mine[1], mine[2]) != (theirs[1], theirs[2])
    details = {
        "pcs_id": mine[0],
        "rule": "earliest receive time, then earliest decision",
        "winner_region": winner,
        "final_status": item[2],
        "final_payload_digest": item[1],
        "outcomes": {
            here: {
                "status": mine[2],
                "payload_digest": mine[1],
                "received_at": mine[3],
                "policy_version": mine[4],
                "decided_at": mine[5],
            },
            peer: {
                "status": theirs[2],
                "payload_digest": theirs[1],
                "received_at": theirs[3],
                "policy_version": theirs[4],
                "decided_at": theirs[5],
            },
        },
    }
    try:
        with transaction.atomic():
            settlement = Settlement.objects.create(
                tenant=tenant,
                pcs_id=mine[0],
                conflict=conflict,
                winner_region=winner,
                status_code=item[2],
                payload_digest=item[1],
                received_at=received,
                details=details,
            )
            if conflict:
                entry = audit_append(
                    tenant_id=tenant.pk,
                    kind=RECONCILIATION_KIND,
                    actor=f"region:{here}",
                    pcs_id=mine[0],
                    status=item[2],
                    reason=f"decided differently in {here} and {peer}; {winner} received it first",
                    policy_version=item[4],
                    request_digest=item[1],
                    details=details,
                )
                settlement.audit_seq = entry.seq
                settlement.save(update_fields=["audit_seq"])
    except IntegrityError:
        return None  # settled concurrently
    logger.warning(
        "regions.settled pcs_id=%s tenant=%s winner=%s conflict=%s", mine[0], tenant.slug, winner, conflict
    )
    return settlement


def final_outcome(*, tenant: Tenant, pcs_id: str) -> int | None:
    """The status a PCS ends with here: its settlement's, else its record's; None if undecided."""
    settled = (
        Settlement.objects.filter(tenant=tenant, pcs_id=pcs_id).values_list("status_code", flat=True).first()
    )
    if settled is not None:
        return settled
    return (
        PcsRecord.objects.filter(tenant=tenant, pcs_id=pcs_id).values_list("status_code", flat=True).first()
    )


def _replay_from_chunks(peer: str, tenant: Tenant, item: Item) -> bool:
    """Find the request of a PCS this region lacks in the peer's shipped chunks and decide it.

    The peer's manifest says which chunks hold requests received around the PCS's receive time; a
    chunk is read only once its SHA-256 matches its manifest entry. True when the PCS got decided.
    """
    received = parse_datetime(item[3])
    bucket = settings.REGION_BUCKET
    keys = storage.list_keys(bucket, storage.manifest_prefix(peer))
    for key in reversed(keys[-CHUNK_SEARCH_LIMIT:]):
        entry = json.loads(storage.get(bucket, key).body)
        first, last = entry.get("first_byte_at"), entry.get("last_byte_at")
        if (
            received is None
            or first is None
            or not (parse_datetime(first) <= received <= parse_datetime(last))
        ):
            continue
        try:
            body = storage.get(bucket, entry["key"]).body
        except storage.ObjectMissing:
            continue
        if storage.sha256_hex(body) != entry["sha256"]:
            continue  # never replay what fails its checksum (the reader stops the source for it)
        for record in wal.decode_frames(entry["segment"], entry["start"], body):
            if isinstance(record, wal.WalRequest) and item[0].encode() in record.body:
                result = pcs_ingest_wal(request=record)
                return result.status not in (409, 503)
    return False
