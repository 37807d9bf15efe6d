"""Review writes: taking escalated PCS into the queue, claiming them, and deciding them once.

A decision is one audit entry (``kind="review"``) appended in the transaction that marks the item
decided, so the item and the log never disagree. The PCS's record and its stored answer are never
touched: the review supersedes the original decision in the log without rewriting it, and a replay of
the PCS still answers its original body.

Concurrency: every change locks the item's row (``select_for_update``) before reading its state, so of
two reviewers racing for one item exactly one wins and the other gets ``ReviewConflict``. Lock order
is always item, then the tenant's audit head (inside ``audit_append``); ingest never locks items.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.audit.services import audit_append
from apps.pcs.models import PcsRecord
from apps.pcs.selectors import PCS_ID
from apps.review import metrics
from apps.review.errors import ReviewConflict, ReviewError, ReviewInvalid, ReviewNotFound
from apps.review.models import ReviewItem, ReviewSyncCursor
from apps.tenants.models import Tenant

logger = logging.getLogger("flk.review")

AUDIT_KIND = "review"
OUTCOMES = {"accept": ReviewItem.ACCEPTED, "reject": ReviewItem.REJECTED}
# Items created per INSERT while syncing: one statement of a few hundred KB, a few ms on PostgreSQL.
SYNC_BATCH = 1_000
_ITEM_FIELDS = ("pcs_id", "shard_id", "epoch", "decided_at", "reason", "policy_version", "payload_digest")


def _item_from_record(tenant_id: int, record: dict) -> ReviewItem:
    return ReviewItem(
        tenant_id=tenant_id,
        pcs_id=record["pcs_id"],
        shard_id=record["shard_id"],
        epoch=record["epoch"],
        escalated_at=record["decided_at"],
        escalation_reason=record["reason"],
        policy_version=record["policy_version"],
        payload_digest=record["payload_digest"],
        decision_entry_id=record["audit_entry_id"],
    )


def review_queue_sync(*, tenant: Tenant) -> int:
    """Create the missing queue items of the tenant's escalated PCS; return how many were created.

    Reads only decisions made since the tenant's cursor minus ``REVIEW_SYNC_MARGIN_SECONDS`` (the
    (tenant, decided_at) index): a decision's ``decided_at`` is stamped before its transaction commits,
    so one committed just after the last sync started still falls inside the margin. Safe to run
    concurrently and twice: the unique (tenant, pcs_id) constraint drops what exists.
    """
    started = timezone.now()
    cursor = ReviewSyncCursor.objects.filter(tenant=tenant).first()
    records = PcsRecord.objects.filter(tenant=tenant, escalated=True)
    if cursor is not None:
        records = records.filter(
            decided_at__gte=cursor.synced_until - timedelta(seconds=settings.REVIEW_SYNC_MARGIN_SECONDS)
        )
    created, last_id = 0, 0
    while True:
        batch = list(
            records.filter(id__gt=last_id)
            .order_by("id")
            .values("id", "audit_entry_id", *_ITEM_FIELDS)[:SYNC_BATCH]
        )
        if not batch:
            break
        last_id = batch[-1]["id"]
        known = set(
            ReviewItem.objects.filter(tenant=tenant, pcs_id__in=[r["pcs_id"] for r in batch]).values_list(
                "pcs_id", flat=True
            )
        )
        fresh = [_item_from_record(tenant.pk, r) for r in batch if r["pcs_id"] not in known]
        if fresh:
            # A concurrent sync or claim may insert the same items: theirs stand.
            ReviewItem.objects.bulk_create(fresh, ignore_conflicts=True)
            created += len(fresh)
    # Only forward: a slower concurrent sync must not move the cursor back past what was read.
    updated = ReviewSyncCursor.objects.filter(tenant=tenant, synced_until__lt=started).update(
        synced_until=started
    )
    if not updated and cursor is None:
        ReviewSyncCursor.objects.get_or_create(tenant=tenant, defaults={"synced_until": started})
    if created:
        logger.info("review.queue_synced tenant=%s created=%d", tenant.slug, created)
    return created


def review_queue_take_demoted(tenant_id: int, records: QuerySet[PcsRecord]) -> int:
    """Create the missing queue items of the escalated PCS among ``records``; how many were created.

    Registered with ``apps.pcs.tiers`` (``ReviewConfig.ready``): the demotion calls it in the
    transaction that deletes these warm rows, so an escalation demoted before ``review_queue_sync``
    read it still joins the queue (the sync reads the warm table only). Safe to repeat, like the sync.
    """
    rows = list(records.filter(escalated=True).values("audit_entry_id", *_ITEM_FIELDS))
    if not rows:
        return 0
    known = set(
        ReviewItem.objects.filter(tenant_id=tenant_id, pcs_id__in=[r["pcs_id"] for r in rows]).values_list(
            "pcs_id", flat=True
        )
    )
    fresh = [_item_from_record(tenant_id, r) for r in rows if r["pcs_id"] not in known]
    # A concurrent sync or claim may insert the same items: theirs stand.
    ReviewItem.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=SYNC_BATCH)
    if fresh:
        logger.info("review.demoted_taken_in tenant=%s created=%d", tenant_id, len(fresh))
    return len(fresh)


def review_queue_sync_all() -> dict[str, int]:
    """``review_queue_sync`` for every tenant; the items created per tenant slug."""
    return {tenant.slug: review_queue_sync(tenant=tenant) for tenant in Tenant.objects.order_by("pk")}


def _locked_item(tenant: Tenant, pcs_id: str) -> ReviewItem:
    """The item of ``pcs_id`` locked for update, created first if the queue has not taken it in yet.

    Must run inside a transaction. A PCS that does not exist for this tenant, or was not escalated,
    is ``ReviewNotFound``: there is nothing to review.
    """
    if not PCS_ID.fullmatch(pcs_id):
        raise ReviewNotFound("not_found", "no escalated PCS with this id for this tenant", field="pcs_id")
    item = ReviewItem.objects.select_for_update().filter(tenant=tenant, pcs_id=pcs_id).first()
    if item is not None:
        return item
    record = (
        PcsRecord.objects.filter(tenant=tenant, pcs_id=pcs_id, escalated=True)
        .values("audit_entry_id", *_ITEM_FIELDS)
        .first()
    )
    if record is None:
        raise ReviewNotFound("not_found", "no escalated PCS with this id for this tenant", field="pcs_id")
    try:
        with transaction.atomic():  # a savepoint: a concurrent creator's row stands
            _item_from_record(tenant.pk, record).save(force_insert=True)
    except IntegrityError:
        pass
    return ReviewItem.objects.select_for_update().get(tenant=tenant, pcs_id=pcs_id)


def _check_open(item: ReviewItem, actor: str) -> None:
    if item.state in ReviewItem.DECIDED:
        raise ReviewConflict(
            "already_decided",
            f"this PCS was already {item.state} by {item.decided_by} at {_iso(item.decided_at)}",
        )
    if item.claim_live and item.claimed_by != actor:
        raise ReviewConflict(
            "claimed_by_other",
            f"{item.claimed_by} holds this item until {_iso(item.claim_expires_at)}",
        )


def _iso(moment: datetime | None) -> str:
    """ISO 8601 in UTC with a ``Z``, as the audit details and the API write times."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@transaction.atomic
def review_claim(*, tenant: Tenant, pcs_id: str, actor: str) -> ReviewItem:
    """Hold the item for ``actor`` for ``REVIEW_CLAIM_SECONDS``; claiming it again renews the claim.

    An item whose claim expired is free again. Raises ``ReviewConflict`` when it is decided or another
    reviewer's claim is live, ``ReviewNotFound`` when there is no such escalated PCS.
    """
    item = _locked_item(tenant, pcs_id)
    _check_open(item, actor)
    now = timezone.now()
    item.state = ReviewItem.CLAIMED
    item.claimed_by = actor
    item.claimed_at = now
    item.claim_expires_at = now + timedelta(seconds=settings.REVIEW_CLAIM_SECONDS)
    item.save(update_fields=["state", "claimed_by", "claimed_at", "claim_expires_at"])
    logger.info("review.claimed tenant=%s pcs_id=%s actor=%s", tenant.slug, pcs_id, actor)
    return item


@transaction.atomic
def review_release(*, tenant: Tenant, pcs_id: str, actor: str) -> ReviewItem:
    """Give a claim back to the queue before it expires; only its holder may."""
    item = _locked_item(tenant, pcs_id)
    _check_open(item, actor)
    if item.state == ReviewItem.CLAIMED:
        item.state = ReviewItem.PENDING
        item.claimed_by, item.claimed_at, item.claim_expires_at = "", None, None
        item.save(update_fields=["state", "claimed_by", "claimed_at", "claim_expires_at"])
    return item


def review_reason_clean(reason: object) -> str:
    """The reviewer's reason, stripped; ``ReviewInvalid`` when missing, empty or too long."""
    if not isinstance(reason, str) or not reason.strip():
        raise ReviewInvalid("invalid_reason", "a reason is required to accept or reject", field="reason")
    reason = reason.strip()
    if "\x00" in reason or not _encodable(reason):
        # Neither PostgreSQL's text nor its jsonb can hold these; refuse rather than fail.
        raise ReviewInvalid(
            "invalid_reason", "the reason contains a NUL byte or a lone surrogate", field="reason"
        )
    if len(reason) > settings.REVIEW_REASON_MAX_CHARS:
        raise ReviewInvalid(
            "invalid_reason",
            f"the reason is {len(reason)} characters; at most {settings.REVIEW_REASON_MAX_CHARS} are kept",
            field="reason",
        )
    return reason


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def review_outcome_clean(outcome: object) -> str:
    """``accept`` or ``reject`` as the item state it leads to; ``ReviewInvalid`` otherwise."""
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        raise ReviewInvalid("invalid_outcome", "the outcome is 'accept' or 'reject'", field="outcome")
    return OUTCOMES[outcome]


@transaction.atomic
def review_decide(*, tenant: Tenant, pcs_id: str, outcome: str, reason: str, actor: str) -> ReviewItem:
    """Accept or reject an escalated PCS with a reason: mark the item and append its audit entry.

    ``outcome`` is ``accept`` or ``reject``. The entry (``kind="review"``) names the reviewer and the
    reason, and ``supersedes_seq`` the seq of the PCS's decision entry; it is appended in this
    transaction, so a review is in the log exactly when the item says it is decided. An unclaimed item
    may be decided directly; one claimed by someone else may not until the claim expires.
    """
    state = review_outcome_clean(outcome)
    reason = review_reason_clean(reason)
    item = _locked_item(tenant, pcs_id)
    _check_open(item, actor)
    decision = AuditEntry.objects.filter(pk=item.decision_entry_id, tenant=tenant).only("seq").first()
    if decision is None:  # the log is append-only: only a broken installation gets here
        raise ReviewError("decision_entry_missing", "the PCS's decision entry is not in the audit log")
    now = timezone.now()
    seconds = (now - item.escalated_at).total_seconds()
    entry = audit_append(
        tenant_id=tenant.pk,
        kind=AUDIT_KIND,
        actor=actor,
        pcs_id=item.pcs_id,
        status=None,
        reason=reason[:200],
        policy_version=item.policy_version,
        request_digest=item.payload_digest,
        details={
            "outcome": state,
            "reviewer": actor,
            "reason": reason,
            "supersedes_seq": decision.seq,
            "escalated_at": _iso(item.escalated_at),
            "seconds_to_decision": seconds,
        },
    )
    item.state = state
    item.decided_by, item.decided_at, item.reason = actor, now, reason
    item.review_entry_id = entry.pk
    item.save(update_fields=["state", "decided_by", "decided_at", "reason", "review_entry_id"])
    transaction.on_commit(lambda: metrics.time_to_decision.labels(state).observe(max(seconds, 0.0)))
    logger.info(
        "review.decided tenant=%s pcs_id=%s outcome=%s actor=%s seq=%d",
        tenant.slug,
        item.pcs_id,
        state,
        actor,
        entry.seq,
    )
    return item


@dataclass(frozen=True)
class BulkResult:
    """One item of a bulk decision: the item decided, or the refusal it met."""

    pcs_id: str
    item: ReviewItem | None = None
    error: ReviewError | None = None


def review_decide_many(
    *, tenant: Tenant, pcs_ids: list[str], outcome: str, reason: str, actor: str
) -> list[BulkResult]:
    """Decide many PCS alike, each in its own transaction; one result per id, in order.

    The outcome and reason are checked once, before anything changes (``ReviewInvalid``); after that an
    item that cannot be decided (unknown, decided, claimed by someone else) is reported in its result
    and the others go on.
    """
    review_outcome_clean(outcome)
    review_reason_clean(reason)
    if len(pcs_ids) > settings.REVIEW_BULK_MAX_ITEMS:
        raise ReviewInvalid(
            "too_many_items", f"at most {settings.REVIEW_BULK_MAX_ITEMS} PCS per request", field="pcs_ids"
        )
    results = []
    for pcs_id in pcs_ids:
        try:
            item = review_decide(tenant=tenant, pcs_id=pcs_id, outcome=outcome, reason=reason, actor=actor)
        except ReviewError as exc:
            results.append(BulkResult(pcs_id, error=exc))
        else:
            results.append(BulkResult(pcs_id, item=item))
    return results
