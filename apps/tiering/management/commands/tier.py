"""``manage.py tier status | demote [--dry-run] | verify``: the operator's handle on the tiers."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.pcs.tiers import TierUnavailable
from apps.tenants.models import Tenant
from apps.tiering.models import DemotionBatch
from apps.tiering.selectors import demotion_lag_seconds, eviction_totals, tenant_tiers
from apps.tiering.services import tier_demote, tier_verify
from apps.tiering.store import get_cold_store


class Command(BaseCommand):
    help = "Tiering: status per tenant, a demotion run now, or a verification of every cold object."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="records and bytes per tier and tenant, the last batches, the lag")
        demote = sub.add_parser("demote", help="run one demotion now (what the beat task runs)")
        demote.add_argument("--dry-run", action="store_true", help="only count the warm records due")
        demote.add_argument("--max-batches", type=int, default=None)
        verify = sub.add_parser("verify", help="re-read every cold object and check every digest")
        verify.add_argument("--tenant", help="only this tenant (slug)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "status":
            self._status()
        elif action == "demote":
            self._demote(options["dry_run"], options["max_batches"])
        else:
            self._verify(options.get("tenant"))

    def _status(self) -> None:
        store = get_cold_store()
        where = (
            f"s3://{settings.TIER_COLD_BUCKET}/{settings.TIER_COLD_PREFIX}" if store.backend == "s3" else ""
        )
        self.stdout.write(
            f"cold store: {store.backend} {where or settings.TIER_COLD_DIR}  "
            f"codec {settings.TIER_COLD_CODEC}  "
            f"hot TTL {settings.TIER_HOT_TTL}s  warm TTL {settings.TIER_WARM_TTL}s  "
            f"cold TTL {settings.TIER_COLD_TTL or 'forever'}"
        )
        self.stdout.write(f"demotion lag: {demotion_lag_seconds():.0f}s")
        eviction = eviction_totals()
        if settings.TIER_COLD_TTL > 0:
            self.stdout.write(
                f"evictable: {eviction.due_records} records in {eviction.due_objects} objects past "
                f"TIER_COLD_TTL; evicted so far: {eviction.evicted_records} records"
            )
        else:
            self.stdout.write(
                f"evictable: none (TIER_COLD_TTL=0 keeps cold records forever); "
                f"evicted so far: {eviction.evicted_records} records"
            )
        self.stdout.write(
            f"{'tenant':20} {'hot':>10} {'warm':>10} {'warm bytes':>12} "
            f"{'cold':>10} {'cold bytes':>12}  last batch"
        )
        for tenant in Tenant.objects.order_by("slug"):
            t = tenant_tiers(tenant=tenant)
            hot = "-" if t.hot_records is None else f"{'>=' if t.hot_capped else ''}{t.hot_records}"
            last = (
                f"#{t.last_batch.pk} {t.last_batch.state} {t.last_batch.record_count} records "
                f"{t.last_batch.updated_at:%Y-%m-%d %H:%M:%S}"
                if t.last_batch
                else "none"
            )
            if t.failed_batches:
                last += f"  ({t.failed_batches} failed)"
            self.stdout.write(
                f"{tenant.slug:20} {hot:>10} {t.warm_records:>10} {t.warm_bytes:>12} "
                f"{t.cold_records:>10} {t.cold_bytes:>12}  {last}"
            )
        unfinished = DemotionBatch.objects.filter(state__in=DemotionBatch.UNFINISHED).count()
        if unfinished:
            self.stdout.write(f"{unfinished} batch(es) unfinished: the next run resumes them")

    def _demote(self, dry_run: bool, max_batches: int | None) -> None:
        try:
            run = tier_demote(dry_run=dry_run, max_batches=max_batches)
        except TierUnavailable as exc:
            raise CommandError(f"the cold store is unavailable: {exc}; nothing was deleted") from exc
        if dry_run:
            slugs = dict(Tenant.objects.values_list("pk", "slug"))
            for tenant_id, due in run.due.items():
                self.stdout.write(f"{slugs.get(tenant_id, tenant_id)}: {due} warm records past TIER_WARM_TTL")
            self.stdout.write(f"dry run: {sum(run.due.values())} records would be demoted")
            return
        self.stdout.write(json.dumps(run.as_dict()))
        if run.busy:
            raise CommandError("another demotion is running")
        if run.failed:
            raise CommandError(f"{run.failed} batch(es) failed; see `manage.py tier status` and the logs")

    def _verify(self, slug: str | None) -> None:
        tenant_id = None
        if slug:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                raise CommandError(f"no tenant {slug!r}")
            tenant_id = tenant.pk
        batches = DemotionBatch.objects.filter(state=DemotionBatch.DELETED)
        if tenant_id is not None:
            batches = batches.filter(tenant_id=tenant_id)
        total = sum(batches.values_list("record_count", flat=True))
        with tqdm(total=total, unit="rec", desc="verify", file=self.stderr._out) as bar:
            report = tier_verify(tenant_id=tenant_id, progress=bar.update)
        for key, pcs_id, detail in report.problems:
            self.stdout.write(f"MISMATCH {key} {pcs_id or '-'}: {detail}")
        self.stdout.write(
            f"checked {report.objects} objects, {report.records} records: {len(report.problems)} problem(s)"
        )
        if report.problems:
            raise CommandError("cold objects failed verification; they are never served (reads answer 503)")
