"""Quarantine of WAL requests whose processing raises, so that recovery never stops at one record.

A request that makes the pipeline raise (a defect: every refusal and every store outage is an answer,
not an exception) is recorded here with its error and its raw bytes, its WAL record gets an outcome
marker with status ``QUARANTINED`` so replay moves on, and its segment is kept until the quarantine is
resolved. ``manage.py wal status`` and the admin list open ones; ``manage.py wal retry-quarantined``
and an admin action run them again once the defect is fixed.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime

from django.db import DatabaseError, transaction
from django.utils import timezone

from apps.pcs import metrics, wal
from apps.pcs.models import QuarantinedRequest
from apps.pcs.services import pcs_ingest_wal

logger = logging.getLogger("flk.wal")

QUARANTINED = 0  # the outcome status that marks a quarantined request in the WAL
MAX_ERROR_CHARS = 4000
RETRY_LATER = (409, 503)  # answers that mean "not decided yet", not "decided"


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[:MAX_ERROR_CHARS]


def request_quarantine(*, request: wal.WalRequest, error: BaseException) -> bool:
    """Keep ``request`` aside with ``error`` and mark it settled in the WAL; False if not recorded.

    When the quarantine row cannot be written (the database is down), nothing is marked: the request
    stays undecided and the next replay tries it again.
    """
    ref = request.ref
    try:
        with transaction.atomic():
            row, created = QuarantinedRequest.objects.select_for_update().get_or_create(
                segment=ref.segment,
                offset=ref.offset,
                defaults={
                    "received_at": request.received_at,
                    "tenant_header": request.tenant_header,
                    "body": request.body,
                    "batch": request.batch,
                    "error": _error_text(error),
                },
            )
            if not created:
                row.attempts += 1
                row.error = _error_text(error)
                row.resolved_at = None
                row.resolution = ""
                row.save(update_fields=["attempts", "error", "resolved_at", "resolution"])
    except DatabaseError:
        logger.exception("wal.quarantine_failed segment=%s offset=%d", ref.segment, ref.offset)
        return False
    metrics.wal_quarantined.inc()
    logger.error(
        "wal.quarantined segment=%s offset=%d error=%s", ref.segment, ref.offset, type(error).__name__
    )
    try:
        wal.get_writer().append_outcome(ref, QUARANTINED)
    except wal.WalError:
        # The row is the record of the quarantine; without the marker replay meets it again and
        # counts another attempt, which is harmless.
        logger.warning("wal.quarantine_marker_failed segment=%s offset=%d", ref.segment, ref.offset)
    return True


def quarantined_retry(*, row: QuarantinedRequest) -> str:
    """Run a quarantined request through the pipeline again; return what became of it.

    Decided (any final answer): resolved. Raised again: still open, with the new error. 409 or 503:
    still open, try later.
    """
    request = wal.WalRequest(
        wal.WalRef(row.segment, row.offset), row.received_at, row.tenant_header, bytes(row.body), row.batch
    )
    try:
        result = pcs_ingest_wal(request=request)
    except Exception as exc:
        request_quarantine(request=request, error=exc)
        return f"failed again: {type(exc).__name__}"
    if result.status in RETRY_LATER:
        return f"not decided yet ({result.status}); try again later"
    _resolve(row, f"decided with status {result.status}", timezone.now())
    return f"decided with status {result.status}"


def _resolve(row: QuarantinedRequest, resolution: str, at: datetime) -> None:
    row.resolved_at = at
    row.resolution = resolution
    row.save(update_fields=["resolved_at", "resolution"])


def open_quarantine_segments() -> set[str]:
    """Names of the segments that hold a quarantined request not yet resolved (never pruned)."""
    return set(QuarantinedRequest.objects.filter(resolved_at__isnull=True).values_list("segment", flat=True))
