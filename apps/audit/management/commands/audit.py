"""``manage.py audit verify [--tenant SLUG]``: prove the audit log was not changed."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.audit.selectors import audit_chain_verify
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Walk each tenant's hash chain and Merkle log; exit non-zero naming the first broken entry."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify")
        verify.add_argument("--tenant", help="only this tenant's log")

    def handle(self, *args: Any, action: str, tenant: str | None = None, **opts: Any) -> None:
        tenants = Tenant.objects.all() if tenant is None else Tenant.objects.filter(slug=tenant)
        if tenant is not None and not tenants.exists():
            raise CommandError(f"no tenant {tenant!r}")
        broken = []
        for row in tenants:
            report = audit_chain_verify(tenant_id=row.pk)
            status = "ok" if report.ok else "BROKEN: " + "; ".join(report.problems)
            self.stdout.write(f"{row.slug}: {report.entries} entries verified, {status}")
            if not report.ok:
                broken.append(row.slug)
        if broken:
            raise CommandError(f"audit log broken for: {', '.join(broken)}")
