"""Fixtures of the webhook tests: policy-scope tokens, a local HTTPS receiver that FLK trusts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.tenants.models import ApiToken
from apps.tenants.services import token_issue
from tests.conftest import TenantKit
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver


def policy_token(kit: TenantKit) -> str:
    """A ``policy``-scope token of the kit's tenant: the scope that registers webhooks."""
    return token_issue(tenant=kit.tenant, name="ops", actor="test", scope=ApiToken.SCOPE_POLICY)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def private_targets(settings) -> None:
    """Let FLK call 127.0.0.1: the receiver is local (production refuses private addresses)."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def receiver(tmp_path, settings, private_targets) -> Iterator[WebhookReceiver]:
    """A real HTTPS receiver on 127.0.0.1 whose CA this process trusts through WEBHOOK_CA_BUNDLE."""
    with webhook_receiver(tmp_path) as running:
        settings.WEBHOOK_CA_BUNDLE = str(running.tls.ca_pem)
        yield running
