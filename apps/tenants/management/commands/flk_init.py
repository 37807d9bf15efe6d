"""``manage.py flk_init``: the default tenant and, when none is configured, a local signing key."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.tenants.models import Tenant
from apps.tenants.seeding import pii_mode_apply, tenants_apply, tenants_parse
from apps.tenants.services import TenantError, tenant_ensure_default


class Command(BaseCommand):
    help = (
        "Create the default tenant, the tenants of TENANTS (created or updated) and a local HMAC "
        "signing key if no key is configured."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        new = not Tenant.objects.filter(slug=settings.DEFAULT_TENANT_ID).exists()
        tenant = tenant_ensure_default()
        self.stdout.write(f"default tenant: {tenant.slug}")
        try:
            if new and pii_mode_apply(tenant, actor="system"):
                self.stdout.write(f"default tenant: PII mode {settings.TENANT_PII_MODE}")
            changes = tenants_apply(tenants_parse(settings.TENANTS)) if settings.TENANTS else []
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        for line in changes:
            self.stdout.write(line)
        if settings.TENANTS and not changes:
            self.stdout.write("TENANTS: every tenant is up to date")
        if settings.PCS_SIGN_ALG != "hmac" or settings.PCS_HMAC_KEY:
            self.stdout.write(f"signing key: from the environment ({settings.PCS_SIGN_ALG})")
            return
        path = settings.PCS_HMAC_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
            self.stdout.write(f"signing key: created {path} (HMAC, mode 0600)")
        else:
            self.stdout.write(f"signing key: {path} (HMAC)")
