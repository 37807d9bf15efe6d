"""An Ed25519 tenant: the server holds only the public key; HMAC signatures do not pass for it."""

from __future__ import annotations

import base64
import secrets

from apps.tenants.services import tenant_create
from flk_agent.signing import Ed25519Signer, HmacSigner
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs


def test_ed25519_tenant_verifies_with_its_public_key(http, multi_tenant):
    signer = Ed25519Signer.from_seed(secrets.token_bytes(32))
    public = base64.b64encode(signer.public_key_bytes()).decode()
    _, new = tenant_create(
        slug="stark", name="Stark", actor="test", sign_alg="ed25519", public_key_b64=public
    )
    assert new.secret is None
    headers = {"X-Tenant-Id": "stark"}
    assert submit(http, make_pcs(signer, epoch=1), **headers).status_code == 200
    forged = submit(http, make_pcs(HmacSigner(public.encode()), epoch=2), **headers)
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_signature"
