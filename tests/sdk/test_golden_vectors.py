"""Every golden vector reproduces byte for byte, signs identically and verifies."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from flk_agent.pcs import compute_pcs_id, payload_digest, round9, signing_payload
from flk_agent.signing import Ed25519Signer, HmacSigner, verify_signature

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "sdk/testdata/golden/vectors.json").read_text("utf-8")
)
SEED = bytes.fromhex(VECTORS["ed25519_seed_hex"])
PUBLIC = bytes.fromhex(VECTORS["ed25519_public_hex"])
SECRET = VECTORS["hmac_secret_utf8"].encode()


def test_there_are_enough_vectors_covering_both_algorithms():
    algs = [case["alg"] for case in VECTORS["cases"]]
    assert len(algs) >= 12
    assert {"hmac", "ed25519"} <= set(algs)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector_payload_digest_and_signature(case):
    pcs = case["input"]
    assert pcs["pcs_id"] == compute_pcs_id(pcs["merkle_root"], pcs["epoch"], pcs["shard_id"])
    payload = signing_payload(pcs)
    assert payload == bytes.fromhex(case["payload_hex"])
    assert payload.decode("utf-8") == case["payload_utf8"]
    digest = payload_digest(pcs)
    assert digest.hex() == case["digest_hex"]
    if case["alg"] == "hmac":
        assert HmacSigner(SECRET).sign(digest) == case["sig"]
        assert verify_signature("hmac", SECRET, digest, case["sig"])
    else:
        assert Ed25519Signer.from_seed(SEED).sign(digest) == case["sig"]
        assert verify_signature("ed25519", PUBLIC, digest, case["sig"])


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector_signature_fails_for_a_flipped_bit(case):
    raw = bytearray(base64.b64decode(case["sig"]))
    raw[0] ^= 0x01
    bad = base64.b64encode(bytes(raw)).decode()
    key = SECRET if case["alg"] == "hmac" else PUBLIC
    assert not verify_signature(case["alg"], key, bytes.fromhex(case["digest_hex"]), bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (977 / 1024, 0.954101562),  # DESIGN §2: a real tie, to even
        (3 / 1024, 0.002929688),  # tie with an odd 9th digit: up
        (2.0, 2.0),
        (0.1234567894999, 0.123456789),
        (1e-10, 0.0),
    ],
)
def test_round9_rounds_ties_to_even(value, expected):
    assert round9(value) == expected


def test_payload_is_exactly_the_eight_signed_keys_sorted():
    case = VECTORS["cases"][0]
    payload = json.loads(case["payload_utf8"])
    assert list(payload) == sorted(
        ["pcs_id", "merkle_root", "epoch", "shard_id", "D_hat", "coh_star", "r", "budget"]
    )


def test_signature_must_be_padded_standard_base64():
    case = next(c for c in VECTORS["cases"] if c["alg"] == "hmac")
    digest = bytes.fromhex(case["digest_hex"])
    assert not verify_signature("hmac", SECRET, digest, case["sig"].rstrip("="))
    assert not verify_signature(
        "hmac",
        SECRET,
        digest,
        case["sig"].replace("+", "-").replace("/", "_")
        if ("+" in case["sig"] or "/" in case["sig"])
        else "not base64!",
    )
