"""What the console shows, read from the apps that own it. Reads only; every figure is for all tenants.

The tiering and regions apps are optional here: their figures appear when the app is installed and its
tables answer, and the console says what is missing otherwise (never an error page).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.apps import apps as django_apps
from django.db import DatabaseError
from django.db.models import Count, Q, Sum, TextField
from django.db.models.functions import Cast, Length, Trunc
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditDeadLetter
from apps.audit.reverify import audit_backlog
from apps.console.models import ScheduleDefault, TaskRun
from apps.console.schedules import periodic_task_schedule_text
from apps.pcs.models import PcsRecord
from apps.review.selectors import review_backlog
from apps.review.services import review_queue_sync_all
from apps.tenants.models import Tenant
from apps.tenants.selectors import tenant_usage

logger = logging.getLogger("flk.console")

# The range selector: span shown, and the bucket each bar covers.
RANGES: dict[str, tuple[timedelta, str, str]] = {
    "6h": (timedelta(hours=6), "hour", "last 6 hours, by hour"),
    "24h": (timedelta(hours=24), "hour", "last 24 hours, by hour"),
    "7d": (timedelta(days=7), "day", "last 7 days, by day"),
    "30d": (timedelta(days=30), "day", "last 30 days, by day"),
}
DEFAULT_RANGE = "24h"


def _floor(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment


@dataclass
class TenantDecisions:
    """One tenant's decisions per bucket: [accepted, escalated, rejected] in bucket order."""

    slug: str
    name: str
    counts: list[list[int]]

    @property
    def totals(self) -> list[int]:
        """Accepted, escalated and rejected over the whole range."""
        return [sum(c[i] for c in self.counts) for i in range(3)]


def decisions_over_time(
    *, range_key: str, now: datetime | None = None
) -> tuple[list[datetime], list[TenantDecisions]]:
    """Bucket starts and, per tenant with decisions in the range, accepted/escalated/rejected per bucket.

    Rejected is every stored decision neither accepted (200) nor escalated (202): a 400 the policy or
    the sanity checks gave. Reviews do not rewrite a decision, so they are not counted here.
    """
    span, unit, _ = RANGES[range_key]
    now = now or timezone.now()
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    first = _floor(now - span, unit) + step
    buckets = []
    at = first
    while at <= now:
        buckets.append(at)
        at += step
    index = {b: i for i, b in enumerate(buckets)}
    rows = (
        PcsRecord.objects.filter(decided_at__gte=first)
        .annotate(bucket=Trunc("decided_at", unit, tzinfo=UTC))
        .values("tenant_id", "bucket")
        .annotate(
            # Not named like the model's fields: a filter would read the annotation instead.
            n_accepted=Count("pk", filter=Q(accepted=True)),
            n_escalated=Count("pk", filter=Q(escalated=True)),
            n_rejected=Count("pk", filter=Q(accepted=False, escalated=False)),
        )
    )
    per_tenant: dict[int, list[list[int]]] = {}
    for row in rows:
        i = index.get(row["bucket"].astimezone(UTC))
        if i is None:
            continue
        counts = per_tenant.setdefault(row["tenant_id"], [[0, 0, 0] for _ in buckets])
        counts[i] = [row["n_accepted"], row["n_escalated"], row["n_rejected"]]
    tenants = Tenant.objects.filter(pk__in=per_tenant).order_by("slug")
    return buckets, [TenantDecisions(t.slug, t.name, per_tenant[t.pk]) for t in tenants]


@dataclass
class QuotaUse:
    """A tenant's admitted submissions today (UTC) against its daily quota (None: no quota)."""

    slug: str
    name: str
    used: int
    quota: int | None


def quota_use() -> tuple[list[QuotaUse], str]:
    """Today's use per active tenant; the second value explains a figure that could not be read."""
    rows, problem = [], ""
    for tenant in Tenant.objects.filter(active=True).order_by("slug"):
        try:
            usage = tenant_usage(tenant=tenant)
        except Exception as exc:  # the counter store (Redis) may be down; the console must still show
            logger.warning("console.quota_unavailable tenant=%s error=%s", tenant.slug, exc)
            problem = f"usage counters unavailable: {type(exc).__name__}"
            continue
        rows.append(QuotaUse(tenant.slug, tenant.name, int(usage["used_today"]), usage["daily_quota"]))
    return rows, problem


@dataclass
class Backlogs:
    """Per tenant slug: review items waiting, audit entries not yet re-verified, open dead letters."""

    review: dict[str, int]
    audit: dict[str, int]
    dead_letters: dict[str, int]


def backlogs() -> Backlogs:
    """The three backlogs an operator watches; the review queue first takes in new escalations."""
    try:
        # As the review admin and the metrics scrape do: escalations decided since the last sync join.
        review_queue_sync_all()
    except DatabaseError as exc:
        logger.warning("console.review_sync_failed error=%s", exc)
    letters: dict[str, int] = dict(
        AuditDeadLetter.objects.filter(resolved_at__isnull=True)
        .values_list("tenant__slug")
        .annotate(n=Count("pk"))
        .values_list("tenant__slug", "n")
    )
    return Backlogs(review=review_backlog(), audit=audit_backlog(), dead_letters=letters)


@dataclass
class Tier:
    """One storage tier's size: records and bytes, overall and decided today."""

    name: str
    records: int | None
    bytes: int | None
    records_today: int | None = None
    bytes_today: int | None = None
    note: str = ""


def _warm_bytes() -> Any:
    # What a row costs beyond its fixed columns: the parsed PCS and the stored answer.
    return Sum(Length("response") + Length(Cast("pcs", TextField())))


def tier_sizes(*, now: datetime | None = None) -> list[Tier]:
    """Warm (PcsRecord) always; cold when ``apps.tiering`` has its index tables."""
    now = now or timezone.now()
    midnight = _floor(now, "day")
    warm_all = PcsRecord.objects.aggregate(n=Count("pk"), b=_warm_bytes())
    warm_today = PcsRecord.objects.filter(decided_at__gte=midnight).aggregate(n=Count("pk"), b=_warm_bytes())
    tiers = [
        Tier(
            "warm (PostgreSQL: PcsRecord)",
            warm_all["n"],
            warm_all["b"] or 0,
            warm_today["n"],
            warm_today["b"] or 0,
        )
    ]
    tiers.append(_cold_tier(midnight))
    return tiers


def _cold_tier(midnight: datetime) -> Tier:
    name = "cold (object storage)"
    if not django_apps.is_installed("apps.tiering"):
        return Tier(name, None, None, note="tiering not installed: warm tier only")
    try:
        cold_record = django_apps.get_model("tiering", "ColdRecord")
        batch = django_apps.get_model("tiering", "DemotionBatch")
    except LookupError:
        return Tier(name, None, None, note="no cold tier tables yet: warm tier only")
    try:
        records = cold_record.objects.count()
        today = cold_record.objects.filter(batch__created_at__gte=midnight).count()
        sizes = batch.objects.filter(state="deleted").aggregate(b=Sum("object_bytes"))
        sizes_today = batch.objects.filter(state="deleted", created_at__gte=midnight).aggregate(
            b=Sum("object_bytes")
        )
    except DatabaseError as exc:
        logger.warning("console.cold_tier_unavailable error=%s", exc)
        return Tier(name, None, None, note="cold tier tables not readable (migrations not applied?)")
    return Tier(
        name,
        records,
        sizes["b"] or 0,
        today,
        sizes_today["b"] or 0,
        note="records demoted; bytes are compressed objects; 'today' = demoted today",
    )


@dataclass
class RegionLink:
    """Replication from one peer region into this one: lag, and the last divergence comparison."""

    peer: str
    lag_seconds: float | None = None
    covered_at: datetime | None = None
    state: str = ""
    error: str = ""
    divergence_share: float | None = None
    differing_cells: int | None = None
    conflicts: int | None = None
    compared_at: datetime | None = None


@dataclass
class Regions:
    """Cross-region replication as this region sees it; ``configured`` False says why not."""

    configured: bool
    note: str = ""
    links: list[RegionLink] = field(default_factory=list)


def region_status(*, now: datetime | None = None) -> Regions:
    """Lag per source region (now minus the time up to which its WAL is replayed here, as the
    ``wal_replication_lag_seconds`` gauge) and the last divergence comparison per peer."""
    now = now or timezone.now()
    if not django_apps.is_installed("apps.regions"):
        return Regions(False, "regions not configured")
    try:
        cursor_model = django_apps.get_model("regions", "SourceCursor")
        divergence_model = django_apps.get_model("regions", "DivergenceStatus")
    except LookupError:
        return Regions(False, "regions not configured")
    links: dict[str, RegionLink] = {}
    try:
        for cursor in cursor_model.objects.all():
            link = links.setdefault(cursor.source_region, RegionLink(cursor.source_region))
            covered = getattr(cursor, "covered_at", None)
            link.covered_at = covered
            if covered is not None:
                link.lag_seconds = max(0.0, (now - covered).total_seconds())
            link.state = getattr(cursor, "state", "")
            link.error = getattr(cursor, "error", "")
        for status in divergence_model.objects.all():
            link = links.setdefault(status.peer_region, RegionLink(status.peer_region))
            link.divergence_share = getattr(status, "share", None)
            link.differing_cells = getattr(status, "differing_cells", None)
            link.conflicts = getattr(status, "conflicts", None)
            link.compared_at = getattr(status, "computed_at", None)
    except DatabaseError as exc:
        logger.warning("console.regions_unavailable error=%s", exc)
        return Regions(False, "regions not configured (replication tables not readable)")
    if not links:
        return Regions(False, "regions not configured: no peer region has shipped or been compared yet")
    return Regions(True, links=[links[k] for k in sorted(links)])


@dataclass
class ScheduledTask:
    """A beat entry with its schedule, the code's default, and its last run."""

    name: str
    task: str
    enabled: bool
    schedule: str
    default: str | None
    last_sent_at: datetime | None
    run: TaskRun | None
    overdue: bool

    @property
    def changed(self) -> bool:
        """An operator's schedule, different from the code's default."""
        return self.default is not None and self.schedule != self.default


def _interval_seconds(text: str) -> float | None:
    if text.startswith("every ") and text.endswith(" s"):
        try:
            return float(text[6:-2])
        except ValueError:
            return None
    return None


def scheduled_tasks(*, now: datetime | None = None) -> list[ScheduledTask]:
    """Every periodic task of beat's database with the last run a worker recorded for its task."""
    now = now or timezone.now()
    defaults = dict(ScheduleDefault.objects.values_list("name", "schedule"))
    runs = {run.task: run for run in TaskRun.objects.all()}
    rows = []
    for entry in PeriodicTask.objects.select_related("interval", "crontab").order_by("name"):
        text = periodic_task_schedule_text(entry)
        run = runs.get(entry.task)
        seconds = _interval_seconds(text)
        # Overdue: an enabled interval task with no finished run for three intervals (and a minute).
        last = run.last_finished_at if run else None
        overdue = bool(
            entry.enabled
            and seconds is not None
            and entry.last_run_at is not None
            and (last is None or (now - last).total_seconds() > 3 * seconds + 60)
        )
        rows.append(
            ScheduledTask(
                entry.name,
                entry.task,
                entry.enabled,
                text,
                defaults.get(entry.name),
                entry.last_run_at,
                run,
                overdue,
            )
        )
    return rows
