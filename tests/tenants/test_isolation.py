"""Tenants are isolated through HTTP: keys, reads and records never cross."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.tenants.services import tenant_deactivate
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs


def test_a_valid_signature_of_tenant_a_sent_as_tenant_b_is_401(http, tenant_a, tenant_b):
    pcs = make_pcs(tenant_a.signer, epoch=1)
    response = submit(http, pcs, **{"X-Tenant-Id": "globex"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_signature"
    assert not PcsRecord.objects.exists()
    assert submit(http, pcs, **{"X-Tenant-Id": "acme"}).status_code == 200


@pytest.mark.parametrize("header", [None, "nobody", "globex-inactive"])
def test_missing_unknown_or_inactive_tenant_is_401(http, tenant_a, tenant_b, header):
    tenant_deactivate(tenant=tenant_b.tenant, actor="test")
    headers = {"X-Tenant-Id": "globex" if header == "globex-inactive" else header} if header else {}
    response = submit(http, make_pcs(tenant_b.signer, epoch=2), **headers)
    assert response.status_code == 401 and response.json()["error"] == "unknown_tenant"


def test_a_token_of_tenant_a_cannot_read_tenant_b(http, tenant_a, tenant_b):
    pcs_b = make_pcs(tenant_b.signer, epoch=3)
    assert submit(http, pcs_b, **{"X-Tenant-Id": "globex"}).status_code == 200
    as_a = {"Authorization": f"Bearer {tenant_a.token}"}
    as_b = {"Authorization": f"Bearer {tenant_b.token}"}
    assert http.get(f"/v1/pcs/{pcs_b['pcs_id']}", headers=as_a).status_code == 404
    assert http.get("/v1/pcs", headers=as_a).json()["results"] == []
    mine = http.get(f"/v1/pcs/{pcs_b['pcs_id']}", headers=as_b)
    assert mine.status_code == 200 and mine.json()["tenant"] == "globex"


def test_the_same_pcs_id_in_two_tenants_is_two_records_and_two_decisions(http, tenant_a, tenant_b):
    # Both agents computed the same data: same merkle_root, epoch and shard, so the same pcs_id.
    pcs_a = make_pcs(tenant_a.signer, epoch=4)
    pcs_b = make_pcs(tenant_b.signer, epoch=4)
    assert pcs_a["pcs_id"] == pcs_b["pcs_id"]
    first = submit(http, pcs_a, **{"X-Tenant-Id": "acme"})
    second = submit(http, pcs_b, **{"X-Tenant-Id": "globex"})
    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in second.headers
    assert PcsRecord.objects.filter(pcs_id=pcs_a["pcs_id"]).count() == 2
    assert AuditEntry.objects.filter(kind="decision", pcs_id=pcs_a["pcs_id"]).count() == 2


def test_bad_or_missing_tokens_are_401(http, tenant_a):
    assert http.get("/v1/pcs").status_code in (401, 403)
    bad = http.get("/v1/pcs", headers={"Authorization": "Bearer flk_not-a-token"})
    assert bad.status_code == 401
    assert (
        http.get("/v1/tenants/me/usage", headers={"Authorization": f"Bearer {tenant_a.token}"}).status_code
        == 200
    )
