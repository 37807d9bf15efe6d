"""``manage.py tenant create | list | rotate-key | set-quota | deactivate | issue-token | revoke-token |
reencrypt``."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.tenants.models import ApiToken, Tenant
from apps.tenants.selectors import tenant_usage
from apps.tenants.services import (
    TenantError,
    key_rotate,
    secrets_reencrypt,
    tenant_create,
    tenant_deactivate,
    tenant_set_limits,
    token_issue,
    token_revoke,
)

ACTOR = "cli"


class Command(BaseCommand):
    help = "Manage tenants from scripts. Secrets and tokens are printed once and never stored readable."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("slug")
        create.add_argument("--name")
        create.add_argument("--alg", choices=["hmac", "ed25519"], default="hmac")
        create.add_argument("--public-key", help="Ed25519 public key, base64 (ed25519 tenants)")
        create.add_argument("--quota", type=int, default=0)
        create.add_argument("--rate", type=float, default=0.0)
        create.add_argument("--burst", type=int, default=0)
        sub.add_parser("list")
        rotate = sub.add_parser("rotate-key")
        rotate.add_argument("slug")
        rotate.add_argument("--overlap-hours", type=float)
        rotate.add_argument("--public-key")
        quota = sub.add_parser("set-quota")
        quota.add_argument("slug")
        quota.add_argument("--quota", type=int)
        quota.add_argument("--rate", type=float)
        quota.add_argument("--burst", type=int)
        deactivate = sub.add_parser("deactivate")
        deactivate.add_argument("slug")
        token = sub.add_parser("issue-token")
        token.add_argument("slug")
        token.add_argument("--name", default="cli")
        token.add_argument("--scope", choices=[c for c, _ in ApiToken.SCOPE_CHOICES], default="read")
        revoke = sub.add_parser(
            "revoke-token", help="revoke a tenant's API token by its prefix or its name (audited)"
        )
        revoke.add_argument("slug")
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--prefix", help="the token's first characters, as listed (flk_…)")
        which.add_argument("--name", help="the token's name; refused when several active tokens share it")
        sub.add_parser("reencrypt", help="re-encrypt stored secrets under the newest FLK_ENCRYPTION_KEYS key")

    def _tenant(self, slug: str) -> Tenant:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant {slug!r}")
        return tenant

    def _out(self, data: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(data, default=str))

    def handle(self, *args: Any, action: str, **opts: Any) -> None:
        try:
            getattr(self, "_" + action.replace("-", "_"))(opts)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc

    def _create(self, opts: dict[str, Any]) -> None:
        tenant, new = tenant_create(
            slug=opts["slug"],
            name=opts["name"] or opts["slug"],
            actor=ACTOR,
            sign_alg=opts["alg"],
            public_key_b64=opts["public_key"],
            daily_quota=opts["quota"],
            rate_per_second=opts["rate"],
            burst=opts["burst"],
        )
        self._out({"tenant": tenant.slug, "key_id": new.key.key_id, "secret": new.secret})

    def _list(self, opts: dict[str, Any]) -> None:
        for tenant in Tenant.objects.all():
            self._out(
                {
                    "tenant": tenant.slug,
                    "name": tenant.name,
                    "active": tenant.active,
                    "sign_alg": tenant.sign_alg,
                    **tenant_usage(tenant=tenant),
                }
            )

    def _rotate_key(self, opts: dict[str, Any]) -> None:
        hours = opts["overlap_hours"]
        new = key_rotate(
            tenant=self._tenant(opts["slug"]),
            actor=ACTOR,
            public_key_b64=opts["public_key"],
            overlap=timedelta(hours=hours) if hours is not None else None,
        )
        self._out({"tenant": opts["slug"], "key_id": new.key.key_id, "secret": new.secret})

    def _set_quota(self, opts: dict[str, Any]) -> None:
        tenant = tenant_set_limits(
            tenant=self._tenant(opts["slug"]),
            actor=ACTOR,
            daily_quota=opts["quota"],
            rate_per_second=opts["rate"],
            burst=opts["burst"],
        )
        self._out(
            {
                "tenant": tenant.slug,
                "daily_quota": tenant.daily_quota,
                "rate_per_second": tenant.rate_per_second,
                "burst": tenant.burst,
            }
        )

    def _deactivate(self, opts: dict[str, Any]) -> None:
        tenant_deactivate(tenant=self._tenant(opts["slug"]), actor=ACTOR)
        self._out({"tenant": opts["slug"], "active": False})

    def _issue_token(self, opts: dict[str, Any]) -> None:
        token, raw = token_issue(
            tenant=self._tenant(opts["slug"]), name=opts["name"], actor=ACTOR, scope=opts["scope"]
        )
        self._out({"tenant": opts["slug"], "name": token.name, "scope": token.scope, "token": raw})

    def _revoke_token(self, opts: dict[str, Any]) -> None:
        tenant = self._tenant(opts["slug"])
        tokens = ApiToken.objects.filter(tenant=tenant)
        if opts["prefix"]:
            # The stored prefix is the first 10 characters; a longer value (the whole token) also names it.
            tokens = tokens.filter(prefix=opts["prefix"][:10])
        else:
            tokens = tokens.filter(name=opts["name"])
        found = list(tokens.order_by("created_at"))
        active = [t for t in found if t.revoked_at is None]
        if not found:
            raise CommandError(
                f"tenant {tenant.slug!r} has no token matching {opts['prefix'] or opts['name']!r}"
            )
        if len(active) > 1:
            listed = ", ".join(t.prefix for t in active)
            raise CommandError(f"{len(active)} active tokens match; revoke one by --prefix: {listed}")
        for token in active or found[:1]:
            changed = token_revoke(token=token, actor=ACTOR)
            self._out(
                {
                    "tenant": tenant.slug,
                    "name": token.name,
                    "prefix": token.prefix,
                    "scope": token.scope,
                    "revoked_at": token.revoked_at,
                    "already_revoked": not changed,
                }
            )

    def _reencrypt(self, opts: dict[str, Any]) -> None:
        self._out({"reencrypted": secrets_reencrypt()})
