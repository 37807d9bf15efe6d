"""Secrets at rest and in transit: encrypted columns, nothing in logs, admin pages or API answers."""

from __future__ import annotations

import logging

from django.contrib.auth.models import User
from django.db import connection

from apps.tenants.crypto import decrypt_secret
from apps.tenants.models import SigningKey
from apps.tenants.services import key_rotate, secrets_reencrypt, tenant_create, token_issue
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs


def _all_text_in(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        return " ".join(str(v) for row in cursor.fetchall() for v in row)


def test_the_database_holds_no_plain_secret_or_token(tenant_a):
    rotated = key_rotate(tenant=tenant_a.tenant, actor="test")
    for table in ("tenants_signingkey", "tenants_apitoken", "tenants_tenant", "audit_auditentry"):
        text = _all_text_in(table)
        for secret in (tenant_a.secret, rotated.secret, tenant_a.token):
            assert secret not in text, table
    stored = SigningKey.objects.get(key_id=rotated.key.key_id).secret_encrypted
    assert decrypt_secret(stored) == rotated.secret.encode()


def test_reencryption_under_a_new_key_keeps_secrets_readable(tenant_a, settings):
    from cryptography.fernet import Fernet

    old_token = SigningKey.objects.get(tenant=tenant_a.tenant).secret_encrypted
    settings.FLK_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FLK_ENCRYPTION_KEYS]
    assert secrets_reencrypt() == 1
    new_token = SigningKey.objects.get(tenant=tenant_a.tenant).secret_encrypted
    assert new_token != old_token
    settings.FLK_ENCRYPTION_KEYS = settings.FLK_ENCRYPTION_KEYS[:1]  # the old key is gone
    assert decrypt_secret(new_token) == tenant_a.secret.encode()


def test_no_secret_in_logs(http, multi_tenant, transactional_db, caplog):
    caplog.set_level(logging.DEBUG)
    tenant, new = tenant_create(slug="initech", name="Initech", actor="test")
    _, token = token_issue(tenant=tenant, name="r", actor="test")
    rotated = key_rotate(tenant=tenant, actor="test")
    from flk_agent.signing import HmacSigner

    submit(http, make_pcs(HmacSigner(new.secret.encode()), epoch=1), **{"X-Tenant-Id": "initech"})
    http.get("/v1/pcs", headers={"Authorization": f"Bearer {token}"})
    for secret in (new.secret, rotated.secret, token):
        assert secret not in caplog.text


def test_no_secret_in_admin_pages_or_api_answers(client, http, tenant_a):
    rotated = key_rotate(tenant=tenant_a.tenant, actor="test")
    submit(http, make_pcs(tenant_a.signer, epoch=1), **{"X-Tenant-Id": "acme"})
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    pages = [
        client.get(url).content.decode()
        for url in (
            "/admin/tenants/tenant/",
            f"/admin/tenants/tenant/{tenant_a.tenant.pk}/change/",
            "/admin/tenants/signingkey/",
            "/admin/tenants/apitoken/",
            "/admin/audit/auditentry/",
        )
    ]
    auth = {"Authorization": f"Bearer {tenant_a.token}"}
    answers = [http.get(url, headers=auth).text for url in ("/v1/pcs", "/v1/tenants/me/usage")]
    for text in pages + answers:
        for secret in (tenant_a.secret, rotated.secret, tenant_a.token):
            assert secret not in text
    assert tenant_a.token[:10] in pages[3]  # the token's prefix is shown, to recognise it
