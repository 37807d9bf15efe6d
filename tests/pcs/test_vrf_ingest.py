"""Tenants that require a VRF: the seed must come from a valid ECVRF proof, or the PCS is refused (401)."""

from __future__ import annotations

import numpy as np
import pytest

from apps.audit.models import AuditCursor, AuditDeadLetter
from apps.audit.reverify import audit_pending
from apps.pcs.models import PcsRecord
from apps.tenants.services import TenantError, tenant_set_vrf
from flk_agent import vrf
from flk_agent.builder import build_pcs, sign_pcs
from tests.conftest import submit

VRF_SECRET = bytes.fromhex("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7")
OTHER_SECRET = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")


@pytest.fixture
def vrf_tenant(tenant):
    tenant_set_vrf(tenant=tenant, public_key_hex=vrf.public_key(VRF_SECRET).hex(), required=True, actor="ops")
    return tenant


def _pcs(signer, *, epoch: int = 1, vrf_secret: bytes | None = VRF_SECRET, seed: int | None = None) -> dict:
    rng = np.random.default_rng(epoch)
    return build_pcs(
        points=rng.random((300, 2)),
        raw=rng.bytes(2048),
        shard_id="vrf-shard",
        epoch=epoch,
        seed=seed,
        signer=signer,
        vrf_secret_key=vrf_secret,
    )


def test_a_pcs_whose_seed_comes_from_the_vrf_is_accepted(api, vrf_tenant, signer):
    pcs = _pcs(signer)
    beta = vrf.verify(
        vrf.public_key(VRF_SECRET),
        vrf.pcs_alpha(pcs["merkle_root"], 1, "vrf-shard"),
        bytes.fromhex(pcs["vrf_proof"]),
    )
    assert pcs["seed"] == vrf.seed_from_beta(beta)
    response = submit(api, pcs)
    assert response.status_code == 200, response.text


def _flip_one_bit(pcs: dict, signer) -> dict:
    proof = bytearray.fromhex(pcs["vrf_proof"])
    proof[40] ^= 0x01
    return {**pcs, "vrf_proof": proof.hex()}


def _without_proof(pcs: dict, signer) -> dict:
    return {k: v for k, v in pcs.items() if k != "vrf_proof"}


def _chosen_seed(pcs: dict, signer) -> dict:
    # The agent keeps a valid proof but picks its own directions (and signs what it sends).
    return sign_pcs({**pcs, "seed": pcs["seed"] ^ 1}, signer)


def _other_key(pcs: dict, signer) -> dict:
    return _pcs(signer, vrf_secret=OTHER_SECRET)


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (_without_proof, "vrf_missing"),
        (_flip_one_bit, "invalid_vrf_proof"),
        (_other_key, "invalid_vrf_proof"),
        (_chosen_seed, "vrf_seed_mismatch"),
    ],
)
def test_a_missing_invalid_or_ignored_proof_is_refused_and_nothing_is_stored(
    api, vrf_tenant, signer, damage, error
):
    response = submit(api, damage(_pcs(signer), signer))
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert not PcsRecord.objects.exists()


def test_without_the_requirement_a_pcs_without_proof_is_accepted(api, tenant, signer):
    assert submit(api, _pcs(signer, vrf_secret=None, seed=11)).status_code == 200


def test_requiring_vrf_needs_a_valid_public_key(tenant):
    with pytest.raises(TenantError, match="required when VRF"):
        tenant_set_vrf(tenant=tenant, public_key_hex="", required=True, actor="ops")
    with pytest.raises(TenantError, match="prime-order group"):
        tenant_set_vrf(tenant=tenant, public_key_hex="01" + "00" * 31, required=True, actor="ops")


def test_the_async_audit_checks_proofs_with_the_key_in_effect_when_decided(api, vrf_tenant, signer):
    for epoch in (1, 2):
        assert submit(api, _pcs(signer, epoch=epoch)).status_code == 200
    # The tenant moves to a new VRF key: old decisions stay valid under the key of their time.
    tenant_set_vrf(
        tenant=vrf_tenant, public_key_hex=vrf.public_key(OTHER_SECRET).hex(), required=True, actor="ops"
    )
    assert submit(api, _pcs(signer, epoch=3, vrf_secret=OTHER_SECRET)).status_code == 200
    assert audit_pending()["dead_lettered"] == 0
    # seed and vrf_proof are not signed: only the proof vouches for the seed, and the audit re-checks it.
    record = PcsRecord.objects.get(epoch=2)
    forged = _pcs(signer, epoch=2, vrf_secret=OTHER_SECRET)  # a valid proof, of the wrong key for its time
    PcsRecord.objects.filter(pk=record.pk).update(
        pcs={**record.pcs, "seed": forged["seed"], "vrf_proof": forged["vrf_proof"]}
    )
    AuditCursor.objects.all().delete()  # audit the whole log again
    assert audit_pending()["dead_lettered"] == 1
    letter = AuditDeadLetter.objects.get()
    assert (letter.problem, letter.pcs_id) == ("vrf_invalid", record.pcs_id)
