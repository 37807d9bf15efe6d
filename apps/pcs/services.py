"""The ingest pipeline: WAL → parse → tenant → signature → limits → dedup → effects (docs/ingest.md).

``pcs_submit`` is what the HTTP view calls: it makes the raw request durable in the inbox WAL and then
runs ``pcs_ingest``. WAL replay calls ``pcs_ingest`` directly on the records it finds undecided.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import redis
from django.conf import settings
from django.db import IntegrityError, InterfaceError, InternalError, OperationalError, transaction

from apps.pcs import metrics, tiers, wal
from apps.pcs.commit import GroupCommitter
from apps.pcs.dedup import Claim, DedupUnavailable, StoredOutcome, get_dedup_store
from apps.pcs.errors import IngestError, printable
from apps.pcs.identity import differing_fields, inputs_digest
from apps.pcs.models import PcsRecord
from apps.pcs.parsing import parse_batch, parse_pcs, validate_pcs
from apps.pcs.records import Decision, decisions_insert
from apps.policy.anomaly import history_update_many
from apps.policy.checks import Evaluation
from apps.policy.decide import decide
from apps.policy.errors import PolicyRefusal
from apps.policy.params import PolicyParams
from apps.tenants.models import Tenant
from apps.tenants.ratelimit import get_auth_failure_limiter, get_rate_limiter, retry_after_header
from apps.tenants.selectors import tenant_resolve, verification_keys_for
from flk_agent import vrf
from flk_agent.pcs import SIGNED_FIELDS, payload_digest
from flk_agent.signing import verify_signature

logger = logging.getLogger("flk.ingest")

INGEST_ACTOR = "ingest"
IN_FLIGHT_RETRY_AFTER = 1  # seconds: a first submission is decided within milliseconds

_T = TypeVar("_T")


@dataclass
class IngestResult:
    """One answer of the pipeline."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _error_result(exc: IngestError) -> IngestResult:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return IngestResult(exc.status, exc.body(), headers)


def _unavailable(detail: str) -> IngestError:
    return IngestError(503, "store_unavailable", detail, retry_after=settings.RETRY_AFTER_SECONDS)


# Errors that mean a store the decision needs is down or unreachable: answered 503 with Retry-After,
# and the request stays in the WAL for replay. Integrity and data errors are not among them: those are
# decisions (a duplicate) or defects, never a reason to tell the agent to come back later.
STORE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    InternalError,
    redis.RedisError,
    DedupUnavailable,
)


def _unavailable(exc: BaseException) -> IngestError:
    if isinstance(exc, DedupUnavailable):
        store = "the dedup store"
    elif isinstance(exc, redis.RedisError):
        store = "the Redis store"
    else:
        store = "the database"
    return IngestError(
        503, "store_unavailable", f"{store} is unavailable", retry_after=settings.RETRY_AFTER_SECONDS
    )


def pcs_submit(
    *,
    body: bytes,
    tenant_header: str | None,
    received_at: datetime,
    client_addr: str = "",
    batch: bool = False,
) -> IngestResult:
    """Make the request durable, decide it, and mark it answered in the WAL.

    ``batch`` marks a ``submit:batch`` body: one WAL record for the whole batch, decided by
    ``pcs_ingest_batch``.
    """
    try:
        ref = wal.get_writer().append_request(
            body=body, tenant_header=tenant_header, received_at=received_at, batch=batch
        )
    except wal.WalError as exc:
        metrics.wal_errors.inc()
        logger.error("ingest.wal_error error=%s", exc)
        return _error_result(
            IngestError(
                503,
                "wal_unavailable",
                "the request could not be made durable",
                retry_after=settings.RETRY_AFTER_SECONDS,
            )
        )
    ingest = pcs_ingest_batch if batch else pcs_ingest
    try:
        result = ingest(
            body=body, tenant_header=tenant_header, received_at=received_at, client_addr=client_addr
        )
    except Exception:
        # A defect, not a decision: the request keeps no outcome marker, so replay runs it again and
        # quarantines it if it fails again. The agent gets a JSON 500 and retries later.
        logger.exception("ingest.internal_error segment=%s offset=%d", ref.segment, ref.offset)
        return _error_result(IngestError(500, "internal_error", "the request could not be decided"))
    if result.status != 503:
        # 503 leaves no marker: replay will decide the request once the store is back.
        try:
            wal.get_writer().append_outcome(ref, result.status)
        except wal.WalError as exc:
            metrics.wal_errors.inc()
            logger.warning("ingest.wal_outcome_error error=%s", exc)
    return result


def pcs_ingest_wal(
    *, request: wal.WalRequest, in_transaction: Callable[[], None] | None = None
) -> IngestResult:
    """Decide a request the WAL kept (replay, quarantine retry): admitted already, so no limits.

    ``in_transaction``, when given, runs inside the transaction that writes the request's new decisions
    (region replay keeps its per-source cursor there, apps.regions); those decisions are then written
    on this thread rather than grouped with other callers'. It does not run when the request stores
    nothing (a replayed or refused PCS).
    """
    ingest = pcs_ingest_batch if request.batch else pcs_ingest
    return ingest(
        body=request.body,
        tenant_header=request.tenant_header,
        received_at=request.received_at,
        from_wal=True,
        in_transaction=in_transaction,
    )


def pcs_ingest_wal_many(
    *, requests: Sequence[wal.WalRequest], in_transaction: Callable[[int], None]
) -> list[IngestResult]:
    """Decide a run of WAL requests (region replay) with their new decisions in one transaction.

    Decides a prefix of ``requests`` and returns its answers, in order; the caller calls again with
    the rest. Requests of many tenants share the transaction, as a group commit does. The prefix ends
    before a second copy of a PCS (decided next time, it meets the first as decided, exactly as a
    separate submission would), before a batch record (a batch is decided alone, as by
    ``pcs_ingest_wal``), and after the first answer that must be tried again later (409, 503), which
    is then its last answer. ``in_transaction(n)`` runs inside the transaction that writes the
    prefix's decisions, ``n`` being how many requests from the start are settled by it; it does not
    run when the prefix stores nothing. A defect raises, with every claim released and nothing stored.
    """
    if requests[0].batch:
        return [pcs_ingest_wal(request=requests[0], in_transaction=lambda: in_transaction(1))]
    results: list[IngestResult | None] = []
    verdicts: list[tuple[int, _Verdict]] = []
    seen: set[tuple[int, str]] = set()
    try:
        for request in requests:
            if request.batch:
                break
            prepared = _answered(lambda request=request: _prepare_wal(request, seen), request.tenant_header)
            if prepared is None:
                break
            if isinstance(prepared, IngestResult):
                results.append(prepared)
                if prepared.status in (409, 503):
                    break
            else:
                verdicts.append((len(results), prepared))
                results.append(None)
    except BaseException:
        for _, verdict in verdicts:
            _release(verdict.claim)
        raise
    if verdicts:
        settled = len(results) - (1 if results[-1] is not None and results[-1].status in (409, 503) else 0)
        try:
            stored = _store([verdict for _, verdict in verdicts], True, lambda: in_transaction(settled))
        except STORE_ERRORS as exc:
            logger.error("ingest.store_unavailable replay error=%s", type(exc).__name__)
            first = verdicts[0][0]
            results = [*results[:first], _error_result(_unavailable(exc))]
        else:
            for (index, _), result in zip(verdicts, stored, strict=True):
                results[index] = result
    answered = [result for result in results if result is not None]
    for result in answered:
        if result.headers.get("Idempotent-Replayed") != "true":
            metrics.ingest.inc()
    return answered


def _prepare_wal(request: wal.WalRequest, seen: set[tuple[int, str]]) -> IngestResult | _Verdict | None:
    """Parse, resolve and prepare one replayed request; None for a second copy of a PCS in ``seen``."""
    replayed = _Request(request.tenant_header, request.received_at, "", True)
    pcs = parse_pcs(request.body)
    tenant = _tenant_of(replayed)
    key = (tenant.pk, pcs["pcs_id"])
    if key in seen:
        return None
    seen.add(key)
    return _prepare(pcs, tenant, replayed)


def pcs_ingest_batch(
    *,
    body: bytes,
    tenant_header: str | None,
    received_at: datetime,
    client_addr: str = "",
    from_wal: bool = False,
    in_transaction: Callable[[], None] | None = None,
) -> IngestResult:
    """Decide every item of a batch with single-submission semantics; new decisions in one transaction.

    Only problems of the batch as a whole answer for all of it: a body that is not ``{"items": [...]}``
    (400), too many items (413), an unknown tenant (401), a store that is down (503, the batch stays in
    the WAL). Otherwise the answer is 200 with one result per item, in order.
    """
    request = _Request(tenant_header, received_at, client_addr, from_wal, in_transaction)

    def decide_batch() -> IngestResult:
        items = parse_batch(body, max_items=settings.BATCH_MAX_ITEMS)
        results = _decide_items(items, _tenant_of(request), request)
        for result in results:
            if result.headers.get("Idempotent-Replayed") != "true":
                metrics.ingest.inc()
        return IngestResult(200, {"results": [_item_result(result) for result in results]})

    return _answered(decide_batch, tenant_header)


def _decide_items(items: list[Any], tenant: Tenant, request: _Request) -> list[IngestResult]:
    """The per-item answers of a batch.

    The first copy of each pcs_id is prepared with the others and stored in one transaction; a later
    copy in the same batch is prepared once that is done, so it meets the first as a decided PCS (a
    replay, or a conflict), exactly as it would as a separate submission.
    """
    results: list[IngestResult | None] = [None] * len(items)
    verdicts: list[tuple[int, _Verdict]] = []
    repeats: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    try:
        for index, item in enumerate(items):
            try:
                pcs = validate_pcs(item)
                if pcs["pcs_id"] in seen:
                    repeats.append((index, pcs))
                    continue
                seen.add(pcs["pcs_id"])
                prepared = _prepare(pcs, tenant, request)
            except IngestError as exc:
                results[index] = _error_result(exc)
                continue
            if isinstance(prepared, IngestResult):
                results[index] = prepared
            else:
                verdicts.append((index, prepared))
    except BaseException:
        for _, verdict in verdicts:
            _release(verdict.claim)
        raise
    stored = _submit(request, [verdict for _, verdict in verdicts]) if verdicts else []
    for (index, _), result in zip(verdicts, stored, strict=True):
        results[index] = result
    for index, pcs in repeats:
        try:
            prepared = _prepare(pcs, tenant, request)
        except IngestError as exc:
            results[index] = _error_result(exc)
            continue
        if isinstance(prepared, IngestResult):
            results[index] = prepared
        else:
            results[index] = _submit(request, [prepared])[0]
    return [result for result in results if result is not None]


def _item_result(result: IngestResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": result.status,
        "body": result.body,
        "replayed": result.headers.get("Idempotent-Replayed") == "true",
    }
    if "Retry-After" in result.headers:
        out["retry_after"] = int(result.headers["Retry-After"])
    return out


def pcs_ingest(
    *,
    body: bytes,
    tenant_header: str | None,
    received_at: datetime,
    client_addr: str = "",
    from_wal: bool = False,
    in_transaction: Callable[[], None] | None = None,
) -> IngestResult:
    """Run one raw request through parse, authentication, limits, dedup and effects.

    ``from_wal`` marks a WAL replay: the request was admitted when it arrived, so rate limits and the
    failed-authentication limiter are not applied again, and a stored decision is not counted as a
    dedup hit. Store outages become 503 here, in one place, wherever in the pipeline they happen.
    """
    result = _answered(
        lambda: _decide(body, tenant_header, received_at, client_addr, from_wal, in_transaction),
        tenant_header,
    )
    if result.headers.get("Idempotent-Replayed") != "true":
        metrics.ingest.inc()
    return result


def _answered(decide: Callable[[], _T], tenant_header: str | None) -> _T | IngestResult:
    """Run ``decide``; a refusal is its answer, and any store outage is one 503 (the one mapping)."""
    try:
        return decide()
    except IngestError as exc:
        return _error_result(exc)
    except STORE_ERRORS as exc:
        logger.error("ingest.store_unavailable tenant=%s error=%s", tenant_header, type(exc).__name__)
        return _error_result(_unavailable(exc))


_TENANT_HEADER = re.compile(r"[\x21-\x7e]{1,256}")


def _resolve_tenant(tenant_header: str | None) -> Tenant:
    """The tenant the request speaks for; the 401 says what was received and which mode is on."""
    if settings.MULTI_TENANT and tenant_header and not _TENANT_HEADER.fullmatch(tenant_header):
        raise IngestError(
            400,
            "invalid_header",
            "X-Tenant-Id must be 1 to 256 printable ASCII characters",
            field="X-Tenant-Id",
        )
    tenant = tenant_resolve(tenant_header=tenant_header)
    if tenant is not None:
        return tenant
    if not settings.MULTI_TENANT:
        received = (
            f"X-Tenant-Id {printable(tenant_header)!r}, ignored in this mode"
            if tenant_header
            else "no X-Tenant-Id"
        )
        detail = (
            f"single-tenant mode (MULTI_TENANT=false) sends every request to tenant "
            f"{settings.DEFAULT_TENANT_ID!r}, which does not exist or is inactive (received {received}); "
            "run `manage.py flk_init`, or set MULTI_TENANT=true to use the tenants created in the admin"
        )
    elif not tenant_header:
        detail = "multi-tenant mode (MULTI_TENANT=true): the X-Tenant-Id header is required"
    else:
        detail = f"multi-tenant mode (MULTI_TENANT=true): no active tenant {tenant_header!r}"
    raise IngestError(401, "unknown_tenant", detail)


def _count_failed_auth(
    exc: IngestError, tenant_header: str | None, client_addr: str, from_wal: bool
) -> IngestError:
    """The error to answer for a failed authentication: itself, or 429 once its source failed too often.

    A genuine request is never refused because of someone else's failures: the limiter is asked only
    once this request has failed.
    """
    if exc.status != 401 or from_wal:
        return exc
    wait = get_auth_failure_limiter().record_failure(tenant_header=tenant_header, client_addr=client_addr)
    if wait is None:
        return exc
    return IngestError(
        429,
        "auth_throttled",
        "too many failed authentications from this address for this tenant",
        retry_after=int(retry_after_header(wait)),
    )


def _verify(pcs: dict[str, Any], tenant: Tenant, received_at: datetime) -> str:
    """The hex digest of the verified signing payload; 401 when the signature or VRF proof fails."""
    digest = _verify_signature(pcs, tenant, received_at)
    _verify_vrf(pcs, tenant)
    return digest.hex()


def _admit(tenant: Tenant) -> None:
    """Take one unit of the tenant's rate and daily quota, or refuse with 429."""
    admission = get_rate_limiter().admit(tenant)
    if not admission.allowed:
        limit = "quota" if admission.reason == "quota_exceeded" else "rate"
        metrics.quota_exceeded_by_tenant.labels(tenant.slug, limit).inc()
        detail = "daily quota exhausted" if limit == "quota" else "rate limit exceeded"
        raise IngestError(
            429, admission.reason, detail, retry_after=int(retry_after_header(admission.retry_after))
        )


def _verify_signature(pcs: dict[str, Any], tenant: Tenant, received_at: datetime) -> bytes:
    if not pcs["sig"]:
        metrics.signature_errors.inc()
        metrics.signature_errors_by_tenant.labels(tenant.slug).inc()
        raise IngestError(401, "missing_signature", "the PCS carries no signature (sig)")
    keys = verification_keys_for(tenant=tenant, key_id=pcs.get("key_id"), at=received_at)
    digest = payload_digest(pcs)
    if not any(verify_signature(key.alg, key.key, digest, pcs["sig"]) for key in keys):
        metrics.signature_errors.inc()
        metrics.signature_errors_by_tenant.labels(tenant.slug).inc()
        if not keys:
            raise IngestError(401, "unknown_key", "no valid signing key with this key_id")
        raise IngestError(401, "invalid_signature", "the signature does not verify")
    return digest


def _verify_vrf(pcs: dict[str, Any], tenant: Tenant) -> None:
    """Check the VRF proof where the tenant requires one (or sent one with a key on file)."""
    proof_hex = pcs.get("vrf_proof")
    if proof_hex is None:
        if tenant.vrf_required:
            raise IngestError(401, "vrf_missing", "this tenant requires a VRF proof")
        return
    if not tenant.vrf_public_key:
        if tenant.vrf_required:  # refused when saved; kept for a key removed by hand
            raise IngestError(401, "invalid_vrf_proof", "no VRF public key is configured for this tenant")
        return
    try:
        vrf.verify_pcs(bytes.fromhex(tenant.vrf_public_key), pcs)
    except vrf.VrfSeedMismatch as exc:
        raise IngestError(401, "vrf_seed_mismatch", str(exc)) from exc
    except vrf.VrfError as exc:
        raise IngestError(401, "invalid_vrf_proof", str(exc)) from exc


@dataclass
class _Request:
    """What every submission carries besides its PCS."""

    tenant_header: str | None
    received_at: datetime
    client_addr: str
    from_wal: bool
    in_transaction: Callable[[], None] | None = None  # see pcs_ingest_wal


@dataclass
class _Verdict:
    """A PCS judged and claimed, its answer built, not yet stored."""

    pcs: dict[str, Any]
    tenant: Tenant
    claim: Claim
    params: PolicyParams
    evaluation: Evaluation
    decision: Decision
    body: dict[str, Any]


def _decide(
    body: bytes,
    tenant_header: str | None,
    received_at: datetime,
    client_addr: str,
    from_wal: bool,
    in_transaction: Callable[[], None] | None = None,
) -> IngestResult:
    request = _Request(tenant_header, received_at, client_addr, from_wal, in_transaction)
    pcs = parse_pcs(body)
    prepared = _prepare(pcs, _tenant_of(request), request)
    if isinstance(prepared, IngestResult):
        return prepared
    return _submit(request, [prepared])[0]


def _tenant_of(request: _Request) -> Tenant:
    """The tenant a request speaks for; a refusal is counted by the failed-authentication limiter."""
    try:
        return _resolve_tenant(request.tenant_header)
    except IngestError as exc:
        raise _count_failed_auth(exc, request.tenant_header, request.client_addr, request.from_wal) from exc


def _prepare(pcs: dict[str, Any], tenant: Tenant, request: _Request) -> IngestResult | _Verdict:
    """Authenticate, admit, claim and judge one parsed PCS of a known tenant.

    Returns the answer when there is nothing to store (a replay), or the verdict to store; raises
    ``IngestError`` for a refusal. A claim taken here is released if anything after it raises.
    """
    started = time.perf_counter()
    try:
        digest = _verify(pcs, tenant, request.received_at)
    except IngestError as exc:
        raise _count_failed_auth(exc, request.tenant_header, request.client_addr, request.from_wal) from exc
    if not request.from_wal:
        _admit(tenant)
    inputs = inputs_digest(pcs)

    store = get_dedup_store()
    claim = store.claim(tenant_id=tenant.pk, pcs_id=pcs["pcs_id"], digest=digest)
    if claim.state == "decided":
        assert claim.outcome is not None
        tiers.hot_hit()
        return _answer_stored(claim.outcome, pcs, digest, inputs, tenant, request.from_wal)
    if claim.state == "pending":
        raise IngestError(
            409, "in_flight", "this PCS is still being decided", retry_after=IN_FLIGHT_RETRY_AFTER
        )

    # Checks on unsigned fields (sent_at, v_star, ft) run only once no decision exists, so a retry of a
    # decided PCS with a new sent_at or ft replays the stored answer instead of being judged again.
    # The hot store forgets (a Redis restart, its TTL), and then the stored decision is the authority.
    # It is not looked up here, which would cost every submission a database round trip: a new verdict
    # for a decided PCS meets the unique constraint when it is stored and is answered from the record
    # (``_answer_from_conflicting_insert``). Only a refusal, which stores nothing, looks first.
    try:
        verdict = _judge(pcs, tenant, digest, claim, request.received_at)
    except IngestError:
        try:
            record = None if store.transactional else _record_of(tenant, pcs["pcs_id"])
            if record is not None:
                return _answer_from_record(record, pcs, digest, inputs, tenant, claim, request.from_wal)
        finally:
            _release(claim)
        raise
    except BaseException:
        _release(claim)
        raise
    metrics.verify_latency.observe(time.perf_counter() - started)
    return verdict


def _record_of(tenant: Tenant, pcs_id: str) -> PcsRecord | None:
    """The stored decision, warm or cold (``apps.pcs.tiers``): the authority once the hot store forgot."""
    return tiers.record_lookup(tenant_id=tenant.pk, pcs_id=pcs_id)


def _release(claim: Claim) -> None:
    try:
        get_dedup_store().release(claim)
    except DedupUnavailable:
        logger.warning("ingest.claim_release_failed pcs_id=%s", claim.pcs_id)


def _judge(pcs: dict[str, Any], tenant: Tenant, digest: str, claim: Claim, received_at: datetime) -> _Verdict:
    """Decide the PCS (``apps.policy.decide``) and build its answer and its record."""
    try:
        judgement = decide(pcs=pcs, tenant=tenant, received_at=received_at)
    except PolicyRefusal as exc:
        raise IngestError(400, exc.code, exc.detail, field=exc.field) from exc
    pcs, params, passed, evaluation = judgement.pcs, judgement.params, judgement.passed, judgement.evaluation
    status, reason = judgement.status, judgement.reason
    checks = [{"name": "signature", "verdict": "pass"}]
    if tenant.vrf_required or "vrf_proof" in pcs:
        checks.append({"name": "vrf", "verdict": "pass" if tenant.vrf_public_key else "skipped"})
    checks += [{"name": name, "verdict": "pass"} for name in passed]
    checks += evaluation.checks
    body: dict[str, Any] = {"pcs_id": pcs["pcs_id"]}
    if evaluation.rejection is not None:
        rejection = evaluation.rejection
        body.update(error=rejection.error, detail=rejection.detail, field=rejection.field)
    # The seed's clients read accepted, escalated, reason, recomputed_D_hat and recomputed_budget
    # from every decision: those names are part of the contract, the shorter ones stand beside them.
    body.update(
        accepted=status == 200,
        escalated=evaluation.escalated,
        reason=reason if status != 200 else "",
        recomputed_D_hat=evaluation.d_hat,
        recomputed_budget=evaluation.budget,
        recomputed_regime=evaluation.regime,
        D_hat=evaluation.d_hat,
        budget=evaluation.budget,
        regime=evaluation.regime,
        anomaly_score=evaluation.anomaly_score,
        policy_version=params.version,
        checks=checks,
    )
    if evaluation.flags:
        body["flags"] = evaluation.flags
    decision = Decision(
        tenant_id=tenant.pk,
        pcs=pcs,
        digest=digest,
        status=status,
        reason=reason,
        policy_version=params.version,
        d_hat=evaluation.d_hat,
        regime=evaluation.regime,
        budget=evaluation.budget,
        received_at=received_at,
        actor=INGEST_ACTOR,
        anomaly_score=evaluation.anomaly_score,
        details=judgement.details(checks),
    )
    return _Verdict(pcs, tenant, claim, params, evaluation, decision, body)


# One committer per process and per kind of caller: replayed decisions do not count as dedup hits,
# so they are never grouped with live ones (the flag travels with the group, not with each verdict).
_committers: dict[bool, GroupCommitter[_Verdict, IngestResult]] = {}
_committers_lock = threading.Lock()


def _committer(from_wal: bool) -> GroupCommitter[_Verdict, IngestResult]:
    committer = _committers.get(from_wal)
    if committer is None:
        with _committers_lock:
            committer = _committers.setdefault(
                from_wal, GroupCommitter(lambda verdicts: _store(verdicts, from_wal))
            )
    return committer


def _submit(request: _Request, verdicts: list[_Verdict]) -> list[IngestResult]:
    """Store verdicts through the process's group committer, or on this thread with the caller's hook."""
    if request.in_transaction is None:
        return _committer(request.from_wal).submit(verdicts)
    return _store(verdicts, request.from_wal, request.in_transaction)


def _store(
    verdicts: list[_Verdict], from_wal: bool, in_transaction: Callable[[], None] | None = None
) -> list[IngestResult]:
    """Write the decisions in one transaction, then complete their claims; one answer per verdict.

    A decision that meets the unique constraint (decided concurrently behind the hot store's back) is
    answered from the stored record instead; its savepoint keeps the others.
    """
    store = get_dedup_store()
    try:
        try:
            results = _store_group(verdicts, from_wal, isolate_conflicts=False, in_transaction=in_transaction)
        except IntegrityError:
            # Rare: a PCS of the group was decided behind the hot store's back. Again, with each
            # conflict kept to its own savepoint, so only those are answered from their records.
            results = _store_group(verdicts, from_wal, isolate_conflicts=True, in_transaction=in_transaction)
    except BaseException:
        for verdict in verdicts:
            _release(verdict.claim)
        raise
    # After commit, one round trip for each store whatever the group's size: its claims completed, and
    # what its accepted PCS teach the anomaly history.
    decided = [(index, verdict) for index, verdict in enumerate(verdicts) if results[index] is None]
    if not store.transactional:
        try:
            store.complete_many([(verdict.claim, _outcome(verdict)) for _, verdict in decided])
        except DedupUnavailable:
            # The decisions are committed; the claims expire and later retries replay from the records.
            logger.warning("ingest.dedup_complete_failed decisions=%d", len(decided))
    history_update_many(
        samples=[
            (verdict.tenant.pk, verdict.pcs, verdict.evaluation.d_hat)
            for _, verdict in decided
            if verdict.decision.status == 200
        ]
    )
    for index, verdict in decided:
        results[index] = _decided(verdict)
    return [result for result in results if result is not None]


def _store_group(
    verdicts: list[_Verdict],
    from_wal: bool,
    *,
    isolate_conflicts: bool,
    in_transaction: Callable[[], None] | None = None,
) -> list[IngestResult | None]:
    """One transaction: the decisions, the claims of a transactional dedup store completed in it, and
    the caller's ``in_transaction`` hook (pcs_ingest_wal).

    Answers only the verdicts that met a stored decision (None for the others). Without
    ``isolate_conflicts`` a conflict raises ``IntegrityError`` and nothing is written.
    """
    store = get_dedup_store()
    results: list[IngestResult | None] = [None] * len(verdicts)
    with transaction.atomic():
        seqs = decisions_insert(
            written=[(verdict.decision, verdict.body) for verdict in verdicts],
            isolate_conflicts=isolate_conflicts,
        )
        for index, (verdict, seq) in enumerate(zip(verdicts, seqs, strict=True)):
            if seq is None:
                results[index] = _answer_from_conflicting_insert(verdict, from_wal)
            elif store.transactional:
                store.complete(verdict.claim, _outcome(verdict))
        if in_transaction is not None:
            in_transaction()
    return results


def _outcome(verdict: _Verdict) -> StoredOutcome:
    decision = verdict.decision
    return StoredOutcome(decision.digest, decision.status, verdict.body, decision.inputs_digest)


def _answer_from_conflicting_insert(verdict: _Verdict, from_wal: bool) -> IngestResult:
    pcs, decision = verdict.pcs, verdict.decision
    record = _record_of(verdict.tenant, pcs["pcs_id"])
    if record is None:
        raise PcsRecord.DoesNotExist(f"no stored decision for the conflicting insert of {pcs['pcs_id']}")
    return _answer_from_record(
        record, pcs, decision.digest, decision.inputs_digest, verdict.tenant, verdict.claim, from_wal
    )


def _decided(verdict: _Verdict) -> IngestResult:
    """After commit: count, log; the answer."""
    tenant, decision, status = verdict.tenant, verdict.decision, verdict.decision.status
    _count_decision(tenant, status, verdict.params.version)
    logger.info(
        "ingest.decided pcs_id=%s tenant=%s status=%d reason=%s",
        verdict.pcs["pcs_id"],
        tenant.slug,
        status,
        decision.reason or "-",
    )
    return IngestResult(status, verdict.body)


def _answer_stored(
    outcome: StoredOutcome,
    pcs: dict[str, Any],
    digest: str,
    inputs: str,
    tenant: Tenant,
    from_wal: bool,
    record: PcsRecord | None = None,
) -> IngestResult:
    """The stored answer of the same PCS, or 422 when this copy differs from the decided one."""
    if outcome.inputs_digest == "" and record is None:
        record = _record_of(tenant, pcs["pcs_id"])
    stored_inputs = outcome.inputs_digest or (record.inputs_digest if record is not None else "")
    if outcome.digest != digest or (stored_inputs and stored_inputs != inputs):
        _conflict(pcs, tenant, record)
    if not from_wal:
        metrics.dedup_hits.inc()
        metrics.dedup_hits_by_tenant.labels(tenant.slug).inc()
    return IngestResult(outcome.status, outcome.body, {"Idempotent-Replayed": "true"})


def _conflict(pcs: dict[str, Any], tenant: Tenant, record: PcsRecord | None) -> NoReturn:
    """Refuse a copy that differs from the decided PCS, naming the fields, never its answer."""
    if record is None:
        record = _record_of(tenant, pcs["pcs_id"])
    fields = differing_fields(record.pcs, pcs) if record is not None else []
    logger.warning(
        "ingest.pcs_id_conflict pcs_id=%s tenant=%s fields=%s", pcs["pcs_id"], tenant.slug, ",".join(fields)
    )
    raise IngestError(
        422,
        "pcs_id_conflict",
        "this pcs_id was already decided for a different "
        + ("signed payload" if set(fields) & set(SIGNED_FIELDS) or not fields else "set of decision inputs")
        + (f": {', '.join(fields)} differ" if fields else ""),
        extra={"fields": fields},
    )


def _answer_from_record(
    record: PcsRecord,
    pcs: dict[str, Any],
    digest: str,
    inputs: str,
    tenant: Tenant,
    claim: Claim,
    from_wal: bool,
) -> IngestResult:
    """Answer from the stored decision, and put it back into the hot store."""
    outcome = StoredOutcome(
        record.payload_digest, record.status_code, json.loads(record.response), record.inputs_digest
    )
    try:
        get_dedup_store().complete(claim, outcome)
    except DedupUnavailable:
        logger.warning("ingest.dedup_backfill_failed pcs_id=%s", pcs["pcs_id"])
    return _answer_stored(outcome, pcs, digest, inputs, tenant, from_wal, record)


def _count_decision(tenant: Tenant, status: int, policy_version: str) -> None:
    metrics.ingest_by_tenant.labels(tenant.slug).inc()
    outcome = {200: "accepted", 202: "escalated"}.get(status, "rejected")
    metrics.decisions_by_policy.labels(tenant.slug, policy_version, outcome).inc()
    if status == 202:
        metrics.escalated.inc()
        metrics.escalated_by_tenant.labels(tenant.slug).inc()
    elif status == 200:
        metrics.accepted.inc()
        metrics.accepted_by_tenant.labels(tenant.slug).inc()
