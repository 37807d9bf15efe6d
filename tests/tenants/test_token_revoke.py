"""Revoking API tokens: the service, ``manage.py tenant revoke-token`` and the admin action's permission.

A revoked token gets 401 on its next request; the revocation is an audit entry like the issuance; a
refused or ambiguous revocation changes nothing.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client

from apps.audit.models import AuditEntry
from apps.tenants.models import ApiToken
from apps.tenants.services import token_issue, token_revoke

pytestmark = pytest.mark.django_db


def usage(raw: str) -> int:
    return Client().get("/v1/tenants/me/usage", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code


def revocations() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(kind="token_revoked").order_by("seq"))


def test_a_revoked_token_gets_401_and_the_revocation_is_audited_once(tenant):
    token, raw = token_issue(tenant=tenant, name="ci", actor="test", scope=ApiToken.SCOPE_REPORTS)
    assert usage(raw) == 200
    assert token_revoke(token=token, actor="admin:ops") is True
    assert usage(raw) == 401
    (entry,) = revocations()
    assert entry.actor == "admin:ops"
    assert entry.details == {"prefix": token.prefix, "name": "ci", "scope": "reports"}
    # Revoking again is a no-op: no second entry, the first revocation time stays.
    first = ApiToken.objects.get(pk=token.pk).revoked_at
    assert token_revoke(token=token, actor="admin:ops") is False
    assert len(revocations()) == 1 and ApiToken.objects.get(pk=token.pk).revoked_at == first


def test_the_command_revokes_by_prefix_or_by_name(tenant, capsys):
    by_prefix, raw_a = token_issue(tenant=tenant, name="exporter", actor="test")
    _, raw_b = token_issue(tenant=tenant, name="dashboard", actor="test")
    call_command("tenant", "revoke-token", tenant.slug, "--prefix", by_prefix.prefix)
    out = json.loads(capsys.readouterr().out)
    assert (out["prefix"], out["name"], out["already_revoked"]) == (by_prefix.prefix, "exporter", False)
    call_command("tenant", "revoke-token", tenant.slug, "--name", "dashboard")
    assert json.loads(capsys.readouterr().out)["name"] == "dashboard"
    assert (usage(raw_a), usage(raw_b)) == (401, 401)
    assert [e.actor for e in revocations()] == ["cli", "cli"]


def test_an_ambiguous_or_unknown_token_is_refused_and_nothing_changes(tenant):
    first, raw_1 = token_issue(tenant=tenant, name="shared", actor="test")
    _, raw_2 = token_issue(tenant=tenant, name="shared", actor="test")
    with pytest.raises(CommandError, match=f"2 active tokens match.*{first.prefix}"):
        call_command("tenant", "revoke-token", tenant.slug, "--name", "shared")
    with pytest.raises(CommandError, match="no token matching"):
        call_command("tenant", "revoke-token", tenant.slug, "--prefix", "flk_nothere")
    with pytest.raises(CommandError, match="no tenant"):
        call_command("tenant", "revoke-token", "nobody", "--prefix", first.prefix)
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists() and revocations() == []
    assert (usage(raw_1), usage(raw_2)) == (200, 200)


def test_staff_without_the_change_permission_cannot_revoke_in_the_admin(tenant):
    token, raw = token_issue(tenant=tenant, name="ci", actor="test")
    viewer = User.objects.create_user("viewer", password="a-long-viewer-passphrase", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_apitoken"))
    client = Client()
    client.force_login(viewer)
    listing = client.get("/admin/tenants/apitoken/")
    assert listing.status_code == 200 and b'value="revoke"' not in listing.content
    # A forged POST of the action is refused the same way: nothing is revoked, nothing audited.
    forced = client.post(
        "/admin/tenants/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert forced.status_code == 200
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None and revocations() == []
    assert usage(raw) == 200
