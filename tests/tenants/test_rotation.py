"""Key rotation with an overlap window: both keys verify during it, the old one fails after."""

from __future__ import annotations

import time
from datetime import timedelta

from apps.audit.models import AuditEntry
from apps.tenants.services import key_rotate
from flk_agent.signing import HmacSigner
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs

AS_ACME = {"X-Tenant-Id": "acme"}


def test_both_keys_verify_during_the_overlap_and_the_old_one_fails_after(http, tenant_a):
    old = tenant_a.signer
    new_key = key_rotate(tenant=tenant_a.tenant, actor="alice", overlap=timedelta(seconds=2))
    new = HmacSigner(new_key.secret.encode())
    assert submit(http, make_pcs(old, epoch=1), **AS_ACME).status_code == 200
    assert submit(http, make_pcs(new, epoch=2), **AS_ACME).status_code == 200
    time.sleep(2.2)  # past the old key's not_after
    refused = submit(http, make_pcs(old, epoch=3), **AS_ACME)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_signature"
    assert submit(http, make_pcs(new, epoch=4), **AS_ACME).status_code == 200


def test_key_id_selects_the_key_and_an_unknown_key_id_is_401(http, tenant_a):
    new_key = key_rotate(tenant=tenant_a.tenant, actor="alice", overlap=timedelta(hours=1))
    signer = HmacSigner(new_key.secret.encode(), key_id=new_key.key.key_id)
    assert submit(http, make_pcs(signer, epoch=5), **AS_ACME).status_code == 200
    ghost = HmacSigner(new_key.secret.encode(), key_id="no-such-key")
    response = submit(http, make_pcs(ghost, epoch=6), **AS_ACME)
    assert response.status_code == 401 and response.json()["error"] == "unknown_key"


def test_every_key_event_is_audited_with_its_actor(tenant_a):
    key_rotate(tenant=tenant_a.tenant, actor="alice", overlap=timedelta(hours=1))
    events = list(
        AuditEntry.objects.filter(tenant=tenant_a.tenant)
        .exclude(kind="decision")
        .values_list("kind", "actor")
    )
    assert ("key_created", "test") in events
    assert ("key_rotated", "alice") in events
    rotated = AuditEntry.objects.get(tenant=tenant_a.tenant, kind="key_rotated")
    assert "retiring=" in rotated.reason and tenant_a.secret not in rotated.reason
