"""Fixtures of the report tests: a tenant with a ``reports`` token, and its decisions made through ingest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.audit.services import audit_append
from apps.pcs.services import pcs_ingest, pcs_ingest_batch
from apps.tenants.models import Tenant
from apps.tenants.services import key_rotate, tenant_create, token_issue
from flk_agent.signing import HmacSigner
from tests.support.pcs_factory import make_pcs

BATCH = 1_000  # BATCH_MAX_ITEMS' default
ESCALATE_EVERY = 50  # one PCS in 50 claims a D_hat the server recomputes differently: 202


@dataclass
class ReportsKit:
    tenant: Tenant
    signer: HmacSigner
    token: str  # scope reports
    read_token: str  # scope read

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_kit(slug: str) -> ReportsKit:
    tenant, new = tenant_create(slug=slug, name=f"{slug.title()} Corp", actor="admin:carol")
    _, token = token_issue(tenant=tenant, name="auditor", actor="admin:carol", scope="reports")
    _, read = token_issue(tenant=tenant, name="reader", actor="admin:carol", scope="read")
    return ReportsKit(tenant, HmacSigner(new.secret.encode()), token, read)


@pytest.fixture(autouse=True)
def _reports_dir(settings, tmp_path) -> None:
    """Bundles and anchors of a test go to its own directories, never the project's var/."""
    settings.REPORTS_DIR = tmp_path / "reports"
    settings.AUDIT_ANCHOR_DIR = tmp_path / "anchors"


@pytest.fixture
def kit(transactional_db, multi_tenant) -> ReportsKit:
    return make_kit("acme")


def decide_many(kit: ReportsKit, count: int, *, first_epoch: int = 1, shard: str = "shard-r") -> list[str]:
    """Decide ``count`` PCS through the batch pipeline; return the pcs_ids it escalated."""
    escalated = []
    for start in range(first_epoch, first_epoch + count, BATCH):
        items = []
        for epoch in range(start, min(start + BATCH, first_epoch + count)):
            extra = {"D_hat": 0.2} if epoch % ESCALATE_EVERY == 0 else {}
            items.append(make_pcs(kit.signer, epoch=epoch, shard_id=shard, **extra))
        result = pcs_ingest_batch(
            body=json.dumps({"items": items}).encode(),
            tenant_header=kit.tenant.slug,
            received_at=timezone.now(),
        )
        assert result.status == 200, result.body
        for item, answer in zip(items, result.body["results"], strict=True):
            assert answer["status"] in (200, 202), answer
            if answer["status"] == 202:
                escalated.append(item["pcs_id"])
    return escalated


def review(kit: ReportsKit, pcs_id: str, *, outcome: str, reviewer: str, seconds: float) -> None:
    """A reviewer's decision, appended in the review contract's shape (DESIGN §7)."""
    now = timezone.now()
    audit_append(
        tenant_id=kit.tenant.pk,
        kind="review",
        actor=f"user:{reviewer}",
        pcs_id=pcs_id,
        reason=f"{outcome} after review",
        details={
            "outcome": outcome,
            "reviewer": reviewer,
            "reason": f"checked the shard's logs ({outcome})",
            "supersedes_seq": 0,
            "escalated_at": (now - timedelta(seconds=seconds)).isoformat(),
            "seconds_to_decision": seconds,
        },
    )


def fail_signatures(kit: ReportsKit, count: int) -> None:
    """Submissions with a wrong signature: counted by the failed-authentication limiter, never logged."""
    for epoch in range(count):
        pcs = make_pcs(kit.signer, epoch=900_000 + epoch, shard_id="forger")
        pcs["sig"] = "AAAA" + pcs["sig"][4:]
        result = pcs_ingest(
            body=json.dumps(pcs).encode(),
            tenant_header=kit.tenant.slug,
            received_at=timezone.now(),
            client_addr="127.0.0.9",
        )
        assert result.status in (401, 429), result.body


def rotate_key(kit: ReportsKit) -> None:
    """Rotate the tenant's key and keep signing with the new secret."""
    new = key_rotate(tenant=kit.tenant, actor="admin:bob", overlap=timedelta(hours=1))
    kit.signer = HmacSigner(new.secret.encode())


def today_period() -> tuple[datetime, datetime]:
    """Today in UTC: the period the tests' evidence falls in."""
    start = datetime.combine(timezone.now().date(), datetime.min.time(), UTC)
    return start, start + timedelta(days=1)
