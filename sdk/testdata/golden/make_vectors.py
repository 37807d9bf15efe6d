"""Regenerate vectors.json: ``python sdk/testdata/golden/make_vectors.py``.

The inputs below are the contract; the outputs are what flk-agent produces for them. Every SDK must
reproduce each case byte for byte (payload, digest, signature). A change to vectors.json is a protocol
change and needs a version bump (DESIGN §2).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flk_agent.pcs import compute_pcs_id, payload_digest, signing_payload
from flk_agent.signing import Ed25519Signer, HmacSigner

HMAC_SECRET = b"flk-golden-hmac-secret-v1"
# RFC 8032 section 7.1, TEST 1 secret key: a published key, never used outside tests.
ED25519_SEED_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

CASES = [
    # name, alg, key_id, shard_id, epoch, D_hat, coh_star, r, budget, note
    ("hmac-typical", "hmac", None, "shard-001", 1, 1.41, 0.73, 0.87, 0.42, "ordinary values"),
    ("ed25519-typical", "ed25519", None, "shard-001", 1, 1.41, 0.73, 0.87, 0.42, "ordinary values"),
    (
        "integer-valued-floats",
        "hmac",
        None,
        "shard-int",
        7,
        2.0,
        1.0,
        1.0,
        0.0,
        "2.0, 1.0, 1.0 and 0.0 serialise as 2, 1, 1 and 0",
    ),
    (
        "tie-to-even-down",
        "hmac",
        None,
        "shard-tie",
        3,
        1.5048828125,
        0.9541015625,
        0.5,
        0.5,
        "x = k/1024 with 10 decimals: ...625 rounds to the even ...62",
    ),
    (
        "tie-to-even-up",
        "ed25519",
        None,
        "shard-tie",
        4,
        1.0029296875,
        0.0029296875,
        0.5,
        0.5,
        "...875 has an odd 9th digit: rounds up to ...88",
    ),
    (
        "needs-rounding",
        "hmac",
        None,
        "shard-round",
        5,
        1.23456789123456,
        0.9999999996,
        0.1234567894999,
        0.3333333333333333,
        "non-tie rounding, including up to 1",
    ),
    (
        "small-exponent",
        "hmac",
        None,
        "shard-small",
        6,
        0.00000015,
        0.5,
        0.00000002,
        1e-10,
        "JCS writes 1.5e-7 and 2e-8; 1e-10 rounds to 0",
    ),
    (
        "non-ascii-shard",
        "hmac",
        None,
        "шард-東京-🛰",
        8,
        1.41,
        0.73,
        0.87,
        0.42,
        "UTF-8 in shard_id, pcs_id and payload",
    ),
    (
        "non-ascii-ed25519-key-id",
        "ed25519",
        "agent-key-2026",
        "capteur-à-Zürich",
        9,
        2.61,
        0.12,
        0.95,
        0.3,
        "key_id is not signed; non-ASCII shard with Ed25519",
    ),
    (
        "escapes-in-shard",
        "hmac",
        "k1",
        'quote"back\\slash',
        10,
        1.0,
        0.5,
        0.5,
        0.5,
        "JCS escapes quote and backslash",
    ),
    (
        "max-epoch",
        "hmac",
        None,
        "shard-max",
        2**53 - 1,
        3.0000000004,
        0.0,
        1.0000000005,
        1.0,
        "largest epoch; 3.0000000004 rounds to 3",
    ),
    ("zero-epoch-ed25519", "ed25519", None, "s", 0, 0.0, 0.0, 0.0, 0.0, "all zeros"),
    (
        "decimal-half-not-binary-tie",
        "ed25519",
        "k2",
        "shard-high",
        12,
        2.9999999995,
        0.7000000005,
        0.0000000005,
        0.9999999995,
        "ties at the 10th digit written in decimal are not binary ties",
    ),
    # Added with the TypeScript and Go SDKs (tests/sdk/test_cross_language.py): the edges of RFC 8785's
    # ECMAScript number form and of string escaping. Outside the server's bounds, but signing is total.
    (
        "es-exponent-form-large",
        "hmac",
        None,
        "shard-big",
        13,
        1e21,
        123456789012345680000.0,
        1e22,
        9.999999999999999e20,
        "1e21 and above are exponent form (1e+21, 1e+22); just below 1e21 is plain digits",
    ),
    (
        "es-exponent-form-small",
        "ed25519",
        None,
        "shard-tiny",
        14,
        1e-7,
        1e-6,
        1.5e-9,
        5e-10,
        "1e-7 and 1e-9 are exponent form, 0.000001 plain; 1.5e-9 is just below its half, 5e-10 just above",
    ),
    (
        "negative-zero-and-negative-tie",
        "hmac",
        None,
        "shard-neg",
        15,
        -0.0,
        -977 / 1024,
        -1e-10,
        -1.5,
        "-0 and a negative that rounds to -0 serialise as 0; a negative tie rounds to even",
    ),
    (
        "control-characters-in-shard",
        "ed25519",
        None,
        "tab\there\nnl\r\x00\x01\x1f\x7f\u2028</script>&\ufeff",
        2**32,
        1.41,
        0.73,
        0.87,
        0.42,
        "tab, newline, CR: short escapes; other controls: u00xx; DEL, U+2028, <, & as they are",
    ),
    (
        "utf16-order-shard",
        "hmac",
        "k3",
        "\U0001f600\ufb33\U0010ffff",
        2**53 - 2,
        63.999999999,
        0.0500000005,
        1.9999999995,
        0.9999999999,
        "astral and BMP characters in shard_id; values near the server's bounds",
    ),
]


def build() -> list[dict[str, object]]:
    """Compute every case."""
    hmac_signer = HmacSigner(HMAC_SECRET)
    ed_signer = Ed25519Signer.from_seed(bytes.fromhex(ED25519_SEED_HEX))
    out = []
    for name, alg, key_id, shard, epoch, d_hat, coh, r, budget, note in CASES:
        root = hashlib.sha256(name.encode()).hexdigest()
        pcs = {
            "pcs_id": compute_pcs_id(root, epoch, shard),
            "merkle_root": root,
            "epoch": epoch,
            "shard_id": shard,
            "D_hat": d_hat,
            "coh_star": coh,
            "r": r,
            "budget": budget,
        }
        payload = signing_payload(pcs)
        digest = payload_digest(pcs)
        signer = hmac_signer if alg == "hmac" else ed_signer
        out.append(
            {
                "name": name,
                "note": note,
                "alg": alg,
                "key_id": key_id,
                "input": pcs,
                "payload_utf8": payload.decode("utf-8"),
                "payload_hex": payload.hex(),
                "digest_hex": digest.hex(),
                "sig": signer.sign(digest),
            }
        )
    return out


def main() -> None:
    """Write vectors.json beside this file."""
    doc = {
        "description": "PCS v0.1 signing vectors: canonical payload bytes, SHA-256 digest, signature",
        "hmac_secret_utf8": HMAC_SECRET.decode(),
        "ed25519_seed_hex": ED25519_SEED_HEX,
        "ed25519_public_hex": Ed25519Signer.from_seed(bytes.fromhex(ED25519_SEED_HEX))
        .public_key_bytes()
        .hex(),
        "cases": build(),
    }
    path = Path(__file__).with_name("vectors.json")
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
