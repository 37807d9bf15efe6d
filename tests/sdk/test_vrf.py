"""ECVRF-EDWARDS25519-SHA512-TAI against RFC 9381's own test vectors, and against damaged proofs.

Vectors: RFC 9381 Appendix B.3, Examples 16–18 (sdk/testdata/rfc9381_ecvrf_edwards25519_sha512_tai.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flk_agent import vrf

VECTORS = json.loads(
    (
        Path(__file__).resolve().parents[2] / "sdk/testdata/rfc9381_ecvrf_edwards25519_sha512_tai.json"
    ).read_text()
)["vectors"]
IDS = [f"example-{v['example']}" for v in VECTORS]


def _bytes(vector: dict, *names: str) -> list[bytes]:
    return [bytes.fromhex(vector[name]) for name in names]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_prove_gives_the_rfc_proof_and_output(vector):
    sk, pk, alpha, pi, beta = _bytes(vector, "sk", "pk", "alpha", "pi", "beta")
    assert vrf.public_key(sk) == pk
    assert vrf.prove(sk, alpha) == pi
    assert vrf.proof_to_hash(pi) == beta


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_verify_accepts_the_rfc_proof(vector):
    pk, alpha, pi, beta = _bytes(vector, "pk", "alpha", "pi", "beta")
    assert vrf.verify(pk, alpha, pi) == beta


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_single_flipped_bit_of_the_proof_fails(vector):
    pk, alpha, pi = _bytes(vector, "pk", "alpha", "pi")
    for bit in range(len(pi) * 8):
        damaged = bytearray(pi)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(vrf.VrfError):
            vrf.verify(pk, alpha, bytes(damaged))


def test_a_proof_for_another_input_or_key_fails():
    first, second = VECTORS[0], VECTORS[1]
    pk, alpha, pi = _bytes(first, "pk", "alpha", "pi")
    with pytest.raises(vrf.VrfError):
        vrf.verify(pk, b"another input", pi)
    with pytest.raises(vrf.VrfError):
        vrf.verify(bytes.fromhex(second["pk"]), alpha, pi)


@pytest.mark.parametrize(
    ("key", "proof_edit"),
    [
        ("01" + "00" * 31, None),  # the identity: a low-order key
        ("ee" + "ff" * 30 + "7f", None),  # y >= p: not canonical
        (None, lambda pi: pi[:48] + b"\xff" * 32),  # s not below the group order
        (None, lambda pi: pi[:-1]),  # 79 bytes
    ],
    ids=["low-order-key", "non-canonical-key", "s-not-reduced", "short-proof"],
)
def test_malformed_keys_and_proofs_are_refused(key, proof_edit):
    pk, alpha, pi = _bytes(VECTORS[0], "pk", "alpha", "pi")
    with pytest.raises(vrf.VrfError):
        vrf.verify(bytes.fromhex(key) if key else pk, alpha, proof_edit(pi) if proof_edit else pi)


def test_the_pcs_seed_is_the_first_eight_bytes_of_beta_big_endian():
    beta = bytes.fromhex(VECTORS[0]["beta"])
    assert vrf.seed_from_beta(beta) == 0x90CF1DF3B703CCE5
    assert vrf.pcs_alpha("ab" * 32, 7, "shard-1") == ("ab" * 32 + "|7|shard-1").encode()
