"""ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, suite 0x03): prove in the agent, verify on the server.

The group arithmetic is libsodium's (Ed25519 point addition, scalar multiplication and scalar
arithmetic through PyNaCl); this module only composes it as RFC 9381 §5 describes. Used by FLK
(DESIGN §2) so an agent cannot choose its own projection directions: alpha is the ASCII of
``merkle_root|epoch|shard_id`` and the PCS seed must be the first 8 bytes of beta, big-endian.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from nacl import bindings as sodium
from nacl import exceptions as sodium_errors

SUITE = b"\x03"
PROOF_LEN = 80  # Gamma (32) || c (16) || s (32)
_C_LEN = 16
_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493  # the prime order of the base point
_SODIUM_ERRORS = (sodium_errors.RuntimeError, sodium_errors.ValueError, sodium_errors.TypeError)


class VrfError(ValueError):
    """A proof, key or input the VRF refuses."""


class VrfSeedMismatch(VrfError):
    """The proof holds, but the PCS's seed is not the one the VRF output fixes."""


def _decodes(point: bytes) -> bool:
    """RFC 8032 §5.1.3 canonical encoding: y < p, and no sign bit on x = 0 (y = ±1)."""
    y = int.from_bytes(point, "little") & ((1 << 255) - 1)
    sign = point[31] >> 7
    return y < _P and not (sign and y in (1, _P - 1))


def _times_cofactor(point: bytes) -> bytes:
    doubled = point
    for _ in range(3):
        doubled = sodium.crypto_core_ed25519_add(doubled, doubled)
    return doubled


def _scalar(value: int) -> bytes:
    return value.to_bytes(32, "little")


def _expand_secret(secret_key: bytes) -> tuple[bytes, bytes]:
    """RFC 8032 §5.1.5: the clamped secret scalar (reduced mod q) and the nonce prefix."""
    if len(secret_key) != 32:
        raise VrfError("a VRF secret key is 32 bytes")
    digest = bytearray(hashlib.sha512(secret_key).digest())
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    x = sodium.crypto_core_ed25519_scalar_reduce(bytes(digest[:32]) + b"\x00" * 32)
    return x, bytes(digest[32:])


def public_key(secret_key: bytes) -> bytes:
    """The VRF public key Y = x·B of a 32-byte secret key (the same as its Ed25519 public key)."""
    x, _ = _expand_secret(secret_key)
    return sodium.crypto_scalarmult_ed25519_base_noclamp(x)


def public_key_is_valid(public: bytes) -> bool:
    """True for a canonical encoding of a point of the prime-order group (not of low order)."""
    return len(public) == 32 and bool(sodium.crypto_core_ed25519_is_valid_point(public))


def _encode_to_curve(public: bytes, alpha: bytes) -> bytes:
    """RFC 9381 §5.4.1.1 try-and-increment: the first hash that decodes to a point, times the cofactor."""
    for ctr in range(256):
        candidate = hashlib.sha512(SUITE + b"\x01" + public + alpha + bytes([ctr]) + b"\x00").digest()[:32]
        if not _decodes(candidate):
            continue
        try:
            point = _times_cofactor(candidate)
        except _SODIUM_ERRORS:
            continue  # not on the curve
        if point != _scalar(1):  # the identity: a small-order candidate, try the next one
            return point
    raise VrfError("no counter value gave a curve point")  # probability 2^-256


def _challenge(*points: bytes) -> bytes:
    return hashlib.sha512(SUITE + b"\x02" + b"".join(points) + b"\x00").digest()[:_C_LEN]


def prove(secret_key: bytes, alpha: bytes) -> bytes:
    """The 80-byte proof pi for ``alpha`` under ``secret_key`` (RFC 9381 §5.1)."""
    x, prefix = _expand_secret(secret_key)
    public = sodium.crypto_scalarmult_ed25519_base_noclamp(x)
    h = _encode_to_curve(public, alpha)
    gamma = sodium.crypto_scalarmult_ed25519_noclamp(x, h)
    k = sodium.crypto_core_ed25519_scalar_reduce(hashlib.sha512(prefix + h).digest())
    c = _challenge(
        public,
        h,
        gamma,
        sodium.crypto_scalarmult_ed25519_base_noclamp(k),
        sodium.crypto_scalarmult_ed25519_noclamp(k, h),
    )
    s = sodium.crypto_core_ed25519_scalar_add(k, sodium.crypto_core_ed25519_scalar_mul(c + b"\x00" * 16, x))
    return gamma + c + s


def proof_to_hash(proof: bytes) -> bytes:
    """beta, the 64-byte VRF output of a proof (RFC 9381 §5.2); the proof itself is not verified here."""
    if len(proof) != PROOF_LEN or not _decodes(proof[:32]):
        raise VrfError("malformed VRF proof")
    try:
        gamma8 = _times_cofactor(proof[:32])
    except _SODIUM_ERRORS as exc:
        raise VrfError("malformed VRF proof") from exc
    return hashlib.sha512(SUITE + b"\x03" + gamma8 + b"\x00").digest()


def verify(public: bytes, alpha: bytes, proof: bytes) -> bytes:
    """beta when ``proof`` is ``public``'s proof for ``alpha`` (RFC 9381 §5.3); else raise VrfError."""
    if not public_key_is_valid(public):
        raise VrfError("the VRF public key is not a valid point of the prime-order group")
    if len(proof) != PROOF_LEN:
        raise VrfError(f"a VRF proof is {PROOF_LEN} bytes")
    gamma, c, s = proof[:32], proof[32:48], proof[48:]
    if int.from_bytes(s, "little") >= _Q or not _decodes(gamma):
        raise VrfError("malformed VRF proof")
    c_scalar = c + b"\x00" * 16
    try:
        h = _encode_to_curve(public, alpha)
        u = sodium.crypto_core_ed25519_sub(
            sodium.crypto_scalarmult_ed25519_base_noclamp(s),
            sodium.crypto_scalarmult_ed25519_noclamp(c_scalar, public),
        )
        v = sodium.crypto_core_ed25519_sub(
            sodium.crypto_scalarmult_ed25519_noclamp(s, h),
            sodium.crypto_scalarmult_ed25519_noclamp(c_scalar, gamma),
        )
    except _SODIUM_ERRORS as exc:
        raise VrfError("the VRF proof does not verify") from exc
    if _challenge(public, h, gamma, u, v) != c:
        raise VrfError("the VRF proof does not verify")
    return proof_to_hash(proof)


def pcs_alpha(merkle_root: str, epoch: int, shard_id: str) -> bytes:
    """The VRF input of a PCS: the ASCII of ``merkle_root|epoch|shard_id`` (DESIGN §2)."""
    return f"{merkle_root}|{epoch}|{shard_id}".encode()


def seed_from_beta(beta: bytes) -> int:
    """The PCS seed a VRF output fixes: its first 8 bytes, big-endian."""
    return int.from_bytes(beta[:8], "big")


def verify_pcs(public: bytes, pcs: Mapping[str, Any]) -> None:
    """Check a PCS's ``vrf_proof`` under ``public`` and that its ``seed`` is the VRF's; raise if not."""
    try:
        proof = bytes.fromhex(pcs["vrf_proof"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VrfError("vrf_proof is missing or not hex") from exc
    beta = verify(public, pcs_alpha(pcs["merkle_root"], pcs["epoch"], pcs["shard_id"]), proof)
    if seed_from_beta(beta) != pcs["seed"]:
        raise VrfSeedMismatch("seed is not the first 8 bytes of the VRF output")
