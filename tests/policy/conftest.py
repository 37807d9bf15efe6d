"""Fixtures for policy tests: tokens of both scopes for the default tenant, and a policy helper."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from apps.tenants.services import token_issue


@pytest.fixture
def policy_token(tenant) -> str:
    return token_issue(tenant=tenant, name="policy admin", actor="test", scope="policy")[1]


@pytest.fixture
def read_token(tenant) -> str:
    return token_issue(tenant=tenant, name="reader", actor="test")[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_policy(client: httpx.Client, token: str, version: str, **fields: Any) -> httpx.Response:
    body = {
        "name": fields.pop("name", "test policy"),
        "version": version,
        "params": {},
        "rules": [],
        **fields,
    }
    return client.post("/v1/policies", json=body, headers=auth(token))


def publish(client: httpx.Client, token: str, version: str, **fields: Any) -> None:
    """Create and activate a policy; fail loudly if either step is refused."""
    created = create_policy(client, token, version, **fields)
    assert created.status_code == 201, created.text
    activated = client.post(f"/v1/policies/{version}/activate", headers=auth(token))
    assert activated.status_code == 200, activated.text
