"""Control-plane snapshots: a tenant created, a key rotated, a policy activated and an API token issued
in A work in B after one shipment, with the HMAC secrets still encrypted; applying B's echo changes
nothing in A; a token revoked in A is refused in B after the next one."""

from __future__ import annotations

import json

from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs.services import pcs_submit
from apps.policy.services import policy_activate, policy_create
from apps.regions.reader import crr_pull
from apps.regions.shipping import crr_ship
from apps.tenants.models import SigningKey
from apps.tenants.services import key_rotate, tenant_create, token_issue, token_revoke
from flk_agent.signing import HmacSigner
from tests.support.pcs_factory import make_pcs

MULTI_TENANT_IN_B = "from django.conf import settings; settings.MULTI_TENANT = {on}; result = True"
# Region B's own authentication class, in B's process, on a request carrying the raw token.
AUTHENTICATE_IN_B = """
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from apps.tenants.auth import TenantTokenAuthentication
request = Request(APIRequestFactory().get("/v1/pcs", HTTP_AUTHORIZATION="Bearer {raw}"))
try:
    principal, _ = TenantTokenAuthentication().authenticate(request)
    result = f"{{principal.tenant.slug}}:{{principal.scope}}"
except AuthenticationFailed:
    result = "refused"
"""


def test_a_new_tenant_a_rotated_key_and_a_policy_replicate_and_verify_in_b(regions, settings):
    _, b = regions
    settings.MULTI_TENANT = True
    b.shell.run("exec", MULTI_TENANT_IN_B.format(on=True))
    try:
        tenant, _ = tenant_create(slug="acme", name="ACME", actor="ops@a")
        rotated = key_rotate(tenant=tenant, actor="ops@a")
        policy = policy_create(
            tenant=tenant, name="acme", version="1.1.0", params={}, rules=[], actor="ops@a"
        )
        policy_activate(policy=policy, actor="ops@a")
        token, raw_token = token_issue(tenant=tenant, name="reviewers", actor="ops@a", scope="review")
        pcs = make_pcs(HmacSigner(rotated.secret.encode()), epoch=1, key_id=rotated.key.key_id)
        answer = pcs_submit(body=json.dumps(pcs).encode(), tenant_header="acme", received_at=timezone.now())
        assert answer.status == 200, answer.body

        crr_ship()
        pulled = b.crr("pull")
        assert (pulled["controls_applied"], pulled["chunks"], pulled["stopped"]) == (1, 1, [])

        keys_a = sorted(
            SigningKey.objects.filter(tenant=tenant).values_list("key_id", "secret_encrypted", "not_after")
        )
        keys_b = b.query(
            "SELECT k.key_id, k.secret_encrypted, k.not_after FROM tenants_signingkey k "
            "JOIN tenants_tenant t ON t.id = k.tenant_id WHERE t.slug = 'acme' ORDER BY k.key_id"
        )
        assert keys_b == keys_a and len(keys_b) == 2  # the rotated-out key keeps its overlap window
        assert all(secret.startswith("gAAAA") for _, secret, _ in keys_b)  # still Fernet tokens
        assert b.query("SELECT version, status FROM policy_policy") == [("1.1.0", "active")]
        # The PCS signed with the rotated key verified in B, under the replicated policy.
        assert b.query("SELECT pcs_id, status_code, policy_version FROM pcs_pcsrecord") == [
            (pcs["pcs_id"], 200, "1.1.0")
        ]
        replicated = b.query(
            "SELECT e.actor, e.details FROM audit_auditentry e JOIN tenants_tenant t ON t.id = e.tenant_id "
            "WHERE e.kind = 'control_replicated' AND t.slug = 'acme'"
        )
        assert [actor for actor, _ in replicated] == ["region:a"]
        # The token issued in A authenticates in B, for its tenant and scope; B never saw the raw value.
        assert b.shell.run("exec", AUTHENTICATE_IN_B.format(raw=raw_token)) == "acme:review"

        # B publishes its control plane back; applying it in A is a no-op (nothing flips back and forth).
        b.crr("ship")
        before = AuditEntry.objects.count()
        report = crr_pull()
        assert report.controls_applied == 1 and report.stopped == []
        assert AuditEntry.objects.filter(kind="control_replicated").count() == 0
        assert AuditEntry.objects.count() == before

        # Revoked in A: refused in B after the next shipment.
        token_revoke(token=token, actor="ops@a")
        crr_ship()
        assert b.crr("pull")["controls_applied"] == 1
        assert b.shell.run("exec", AUTHENTICATE_IN_B.format(raw=raw_token)) == "refused"
    finally:
        b.shell.run("exec", MULTI_TENANT_IN_B.format(on=False))
