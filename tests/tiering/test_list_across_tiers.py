"""``GET /v1/pcs`` lists warm and cold records alike: same fields, filters, order and cursors.

Records are demoted to a real S3 API (moto's server) out of the middle of a tenant's history, so a
page interleaves warm rows and cold index rows by id.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from django.utils import timezone

from apps.pcs.models import PcsRecord
from apps.tiering.models import ColdRecord
from apps.tiering.services import tier_demote
from tests.support.pcs_factory import make_pcs
from tests.tiering.conftest import decide

ESCALATING = {"D_hat": 0.2}  # far outside the recomputed D̂'s tolerance: escalated (202)


def _all_pages(http: httpx.Client, path: str, token: str) -> list[list[dict[str, Any]]]:
    """Every page of a list, following ``next`` links."""
    pages = []
    url: str | None = path
    while url:
        response = http.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        pages.append(response.json()["results"])
        url = response.json()["next"]
    return pages


def _listed(http: httpx.Client, path: str, token: str) -> list[dict[str, Any]]:
    """Every record of a list, page after page."""
    return [record for page in _all_pages(http, path, token) for record in page]


def test_the_list_shows_cold_records_like_warm_ones_with_filters_and_cursors(
    http, tenant_a, tenant_b, cold_bucket, s3, settings
):
    def a_pcs(epoch: int) -> dict[str, Any]:
        return make_pcs(tenant_a.signer, epoch=epoch, **(ESCALATING if epoch in (1, 4, 6) else {}))

    sent = decide(a_pcs, range(8), tenant_header="acme")
    theirs = decide(lambda epoch: make_pcs(tenant_b.signer, epoch=epoch), range(2), tenant_header="globex")
    # Demote epochs 1, 2, 4 and 5 of acme and one of globex: cold ids sit between warm ones.
    old = [sent[i]["pcs_id"] for i in (1, 2, 4, 5)]
    two_hours_ago = timezone.now() - timedelta(hours=2)
    PcsRecord.objects.filter(tenant=tenant_a.tenant, pcs_id__in=old).update(decided_at=two_hours_ago)
    PcsRecord.objects.filter(tenant=tenant_b.tenant, pcs_id=theirs[0]["pcs_id"]).update(
        decided_at=two_hours_ago
    )
    settings.TIER_WARM_TTL = 3600

    queries = ["", "?status=escalated", "?status=accepted", "?status=rejected"]
    hour_ago = (timezone.now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    queries.append(f"?since={hour_ago}")
    listed = {q: _listed(http, f"/v1/pcs{q}", tenant_a.token) for q in queries}
    assert tier_demote().records == 5
    assert ColdRecord.objects.count() == 5
    assert not PcsRecord.objects.filter(tenant=tenant_a.tenant, pcs_id__in=old).exists()

    for query, before in listed.items():  # the same records, fields and order as while all were warm
        after = _listed(http, f"/v1/pcs{query}", tenant_a.token)
        assert after == before, query
    ids = [pcs["pcs_id"] for pcs in reversed(sent)]
    assert [r["pcs_id"] for r in listed[""]] == ids
    assert [r["pcs_id"] for r in listed["?status=escalated"]] == [sent[i]["pcs_id"] for i in (6, 4, 1)]
    assert len(listed["?status=accepted"]) == 5 and listed["?status=rejected"] == []
    assert {r["pcs_id"] for r in listed[f"?since={hour_ago}"]} == set(ids) - set(old)

    # Pages of three cross the tiers; a next link and a previous link both land where they should.
    pages = _all_pages(http, "/v1/pcs?limit=3", tenant_a.token)
    assert [len(page) for page in pages] == [3, 3, 2]
    assert [r["pcs_id"] for page in pages for r in page] == ids
    auth = {"Authorization": f"Bearer {tenant_a.token}"}
    second = http.get(http.get("/v1/pcs?limit=3", headers=auth).json()["next"], headers=auth).json()
    assert [r["pcs_id"] for r in second["results"]] == ids[3:6]
    back = http.get(second["previous"], headers=auth).json()
    assert [r["pcs_id"] for r in back["results"]] == ids[:3]

    # Each tenant sees its own cold records, never the other's.
    mine = _listed(http, "/v1/pcs", tenant_b.token)
    assert [r["pcs_id"] for r in mine] == [theirs[1]["pcs_id"], theirs[0]["pcs_id"]]
    assert {r["tenant"] for r in mine} == {"globex"} and {r["tenant"] for r in listed[""]} == {"acme"}

    # A page whose cold copies cannot be read is refused (503), never shown without them; a page of
    # warm records alone does not touch the cold store.
    for obj in s3.list_objects_v2(Bucket=cold_bucket)["Contents"]:
        s3.delete_object(Bucket=cold_bucket, Key=obj["Key"])
    gone = http.get("/v1/pcs", headers=auth)
    assert gone.status_code == 503 and gone.json()["error"] == "store_unavailable"
    assert "Retry-After" in gone.headers
    assert (
        http.get(f"/v1/pcs?since={hour_ago}", headers=auth).json()["results"] == listed[f"?since={hour_ago}"]
    )
