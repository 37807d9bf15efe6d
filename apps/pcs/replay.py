"""WAL replay and retention (DESIGN §4).

Replay re-runs every request record that has no outcome marker through the same idempotent pipeline,
so a request whose process died before answering is still decided, exactly once. A request whose
processing raises is quarantined (``apps.pcs.quarantine``) and replay goes on: one bad record never
stops recovery. A segment no writer holds any more has its torn tail cut and, once every request in it
is settled, is renamed ``.done``; retention deletes done segments past their age, except those that
hold a quarantined request still open.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings

from apps.pcs import wal
from apps.pcs.quarantine import open_quarantine_segments, request_quarantine
from apps.pcs.services import pcs_ingest_wal

logger = logging.getLogger("flk.wal")


@dataclass
class ReplayReport:
    """What one replay pass did."""

    segments: int = 0
    requests: int = 0
    already_answered: int = 0
    replayed: int = 0
    quarantined: int = 0
    still_pending: int = 0
    torn_tails_cut: int = 0
    segments_done: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain counters for logs, task results and the CLI."""
        return asdict(self)


def wal_replay(
    *,
    grace_seconds: float | None = None,
    wait_for_claims: bool = False,
    directory: Path | None = None,
) -> ReplayReport:
    """Decide every WAL request that has no answer yet; return what was done.

    Requests younger than ``grace_seconds`` are left to the request handler that wrote them. A claim
    left by a process that died on this host is taken over at once; one held by a live process, or by
    a process on another host, answers 409 until it is completed or expires. By default such requests
    are left for the next run (the scheduled ``wal_maintain``), so a restart never waits for them; with
    ``wait_for_claims`` they are retried until the claim timeout instead.
    """
    directory = directory or settings.WAL_DIR
    grace = settings.WAL_REPLAY_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = datetime.now(UTC) - timedelta(seconds=grace)
    report = ReplayReport()
    segments = wal.list_segments(directory)
    own = wal.get_writer().active_segment
    scans = {path: wal.scan_segment(path) for path in segments}
    answered = {rec.ref for scan in scans.values() for rec in scan.records if isinstance(rec, wal.WalOutcome)}
    unsettled: set[Path] = set()
    retry: list[tuple[Path, wal.WalRequest]] = []
    for path, scan in scans.items():
        report.segments += 1
        if path.name != own and not wal.segment_is_active(path) and scan.torn:
            wal.cut_torn_tail(path, scan.valid_bytes)
            report.torn_tails_cut += 1
        for request in wal.iter_requests(scan):
            report.requests += 1
            if request.ref in answered:
                report.already_answered += 1
            elif request.received_at > cutoff:
                unsettled.add(path)
            elif not _replay_one(path, request, report):
                retry.append((path, request))

    deadline = time.monotonic() + (settings.DEDUP_CLAIM_TIMEOUT_SECONDS + 1 if wait_for_claims else 0)
    while retry and time.monotonic() < deadline:
        time.sleep(0.5)
        retry = [(path, req) for path, req in retry if not _replay_one(path, req, report)]
    report.still_pending = len(retry)
    unsettled.update(path for path, _ in retry)

    for path in segments:
        if path in unsettled or path.name == own or wal.segment_is_active(path):
            continue
        path.rename(path.with_name(path.name + ".done"))
        report.segments_done += 1
    logger.info("wal.replay %s", " ".join(f"{k}={v}" for k, v in report.as_dict().items()))
    return report


def _replay_one(path: Path, request: wal.WalRequest, report: ReplayReport) -> bool:
    """Run one request through the pipeline; False when it must be tried again later."""
    try:
        result = pcs_ingest_wal(request=request)
    except Exception as exc:
        if not request_quarantine(request=request, error=exc):
            return False
        report.quarantined += 1
        return True
    if result.status in (409, 503):
        return False
    report.replayed += 1
    try:
        wal.get_writer().append_outcome(request.ref, result.status)
    except wal.WalError:
        logger.warning("wal.replay_marker_failed segment=%s", path.name)
    return True


def wal_prune(*, retention_days: float | None = None, directory: Path | None = None) -> int:
    """Delete done segments older than the retention; return how many were deleted.

    Segments that still hold undecided requests, or quarantined ones not yet resolved, are never
    deleted, whatever their age.
    """
    directory = directory or settings.WAL_DIR
    days = settings.WAL_RETENTION_DAYS if retention_days is None else retention_days
    horizon = time.time() - days * 86400
    removed = 0
    keep = open_quarantine_segments()
    for path in directory.glob(f"*{wal.DONE_SUFFIX}") if directory.exists() else []:
        if path.name.removesuffix(".done") in keep:
            continue
        if path.stat().st_mtime < horizon:
            path.unlink()
            removed += 1
    if removed:
        logger.info("wal.pruned segments=%d", removed)
    return removed
