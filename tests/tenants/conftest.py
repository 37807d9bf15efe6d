"""Fixtures for multi-tenant tests: two tenants with their own HMAC keys, and tokens."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.tenants.models import Tenant
from apps.tenants.services import tenant_create, token_issue
from flk_agent.signing import HmacSigner


@dataclass
class TenantKit:
    tenant: Tenant
    secret: str
    signer: HmacSigner
    token: str


def _kit(slug: str) -> TenantKit:
    tenant, new = tenant_create(slug=slug, name=slug.upper(), actor="test")
    _, token = token_issue(tenant=tenant, name="reader", actor="test")
    return TenantKit(tenant, new.secret, HmacSigner(new.secret.encode()), token)


@pytest.fixture
def multi_tenant(settings):
    settings.MULTI_TENANT = True


@pytest.fixture
def tenant_a(transactional_db, multi_tenant) -> TenantKit:
    return _kit("acme")


@pytest.fixture
def tenant_b(transactional_db, multi_tenant) -> TenantKit:
    return _kit("globex")


@pytest.fixture
def http(live_server, transactional_db):
    import httpx

    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        yield client
