"""Shared fixtures: the default tenant, a signer, a clean WAL and dedup store, live servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from apps.tenants.models import Tenant
from apps.tenants.services import tenant_create, tenant_ensure_default, token_issue
from flk_agent.signing import HmacSigner
from flk_project import caches
from tests.support.pcs_factory import make_pcs


@pytest.fixture(autouse=True)
def _isolated_stores(settings, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own WAL directory, an empty Redis database and fresh store clients.

    Every process-wide cache and client (WAL writer, dedup store, limiters, key and tenant caches,
    anomaly history store) registers its reset in ``flk_project.caches``; one call forgets them all.
    """
    settings.WAL_DIR = tmp_path / "wal"
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    caches.reset_all()
    yield
    caches.reset_all()


@pytest.fixture
def tenant(db) -> Tenant:
    """The default tenant of a single-tenant installation."""
    return tenant_ensure_default()


@pytest.fixture
def signer() -> HmacSigner:
    """Signs with the default tenant's HMAC secret from the test settings."""
    return HmacSigner(settings.PCS_HMAC_KEY.encode())


@pytest.fixture
def pcs_factory(signer: HmacSigner):
    """Build signed PCS: ``pcs_factory(epoch=2, D_hat=...)``."""

    def build(**kwargs: Any) -> dict[str, Any]:
        return make_pcs(signer, **kwargs)

    return build


@pytest.fixture
def api(live_server, transactional_db, tenant) -> Iterator[httpx.Client]:
    """An HTTP client to the live test server (real sockets, the same process)."""
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        yield client


def submit(client: httpx.Client, pcs: dict[str, Any] | bytes, **headers: str) -> httpx.Response:
    """POST a PCS (dict or raw bytes) to /v1/pcs/submit."""
    body = pcs if isinstance(pcs, bytes) else json.dumps(pcs).encode()
    return client.post(
        "/v1/pcs/submit", content=body, headers={"Content-Type": "application/json", **headers}
    )


# -- several tenants ---------------------------------------------------------------------------


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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The endpoint of a real S3 API (moto server) shared by the session; tests use their own buckets."""
    from tests.support.s3 import moto_s3_server

    with moto_s3_server() as url:
        yield url


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """A boto3 S3 client on the test S3 server, with the credentials exported for the code under test."""
    import boto3

    from tests.support.s3 import S3_CREDENTIALS, S3_REGION

    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=S3_REGION)


@pytest.fixture
def page(live_server, transactional_db, monkeypatch):
    """A headless chromium page on the live test server (Playwright, Debian's chromium)."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes between
    # browser steps are ordinary blocking calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection; close it here, or
        # it keeps the test database busy at teardown.
        connections.close_all()
