"""Escalated PCS and reviewers' tokens for the review tests.

Escalations are made the way agents make them: signed PCS whose claimed D̂ is far outside the policy's
tolerance of the recomputed one, submitted through the real ingest pipeline (HTTP or one batch).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.pcs.services import pcs_ingest_batch
from apps.tenants.models import ApiToken, Tenant
from apps.tenants.services import token_issue
from flk_agent.signing import Signer
from tests.support.pcs_factory import make_pcs

ESCALATING = {"D_hat": 0.2}  # the recomputed D̂ is about 1.4: outside tolerance, so 202


def escalate(
    signer: Signer, *, epochs: range | list[int], tenant_header: str | None = None, **overrides: Any
) -> list[dict[str, Any]]:
    """Submit one PCS per epoch in one batch through the ingest pipeline; each must be escalated."""
    items = [make_pcs(signer, epoch=epoch, **{**ESCALATING, **overrides}) for epoch in epochs]
    result = pcs_ingest_batch(
        body=json.dumps({"items": items}).encode(), tenant_header=tenant_header, received_at=timezone.now()
    )
    statuses = [r["status"] for r in result.body["results"]]
    assert statuses == [202] * len(items), statuses
    return items


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def review_token(tenant: Tenant) -> Callable[..., str]:
    """Issue a token of the default tenant: ``review_token()`` (scope review) or another scope."""

    def issue(scope: str = ApiToken.SCOPE_REVIEW, name: str = "reviewer") -> str:
        return token_issue(tenant=tenant, name=name, actor="test", scope=scope)[1]

    return issue


@pytest.fixture
def reviewer(http: httpx.Client, review_token: Callable[..., str]) -> httpx.Client:
    """An HTTP client of the live server acting with a review-scope token of the default tenant."""
    http.headers.update(bearer(review_token()))
    return http


@pytest.fixture
def review_groups(transactional_db) -> None:
    """The ``reviewers`` and ``auditors`` groups, made by the app's own data migration.

    Transactional tests empty every table after them, so the rows the migration wrote when the test
    database was created are gone by the time a later test runs; running its function again here
    also tests it a second time (it must be safe to repeat).
    """
    migration = importlib.import_module("apps.review.migrations.0002_reviewer_and_auditor_groups")
    migration.create_groups(apps, None)
    migration.create_groups(apps, None)
    assert set(Group.objects.values_list("name", flat=True)) >= {"reviewers", "auditors"}
    reviewers = set(Group.objects.get(name="reviewers").permissions.values_list("codename", flat=True))
    auditors = set(Group.objects.get(name="auditors").permissions.values_list("codename", flat=True))
    assert {"claim_reviewitem", "decide_reviewitem", "view_reviewitem", "view_pcsrecord"} <= reviewers
    assert {"view_reviewitem", "view_pcsrecord", "view_auditentry"} == auditors - {
        "view_checkpoint",
        "view_anchor",
    }
    assert not any(p.startswith(("add_", "change_", "delete_")) for p in reviewers | auditors)
