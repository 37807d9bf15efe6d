"""PCS signatures: HMAC-SHA256 or Ed25519 over the payload digest, standard base64 with padding."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_HMAC = "hmac"
ALG_ED25519 = "ed25519"
ALGORITHMS = (ALG_HMAC, ALG_ED25519)


class Signer(Protocol):
    """Anything that turns a 32-byte digest into a base64 signature."""

    alg: str
    key_id: str | None

    def sign(self, digest: bytes) -> str: ...


@dataclass
class HmacSigner:
    """HMAC-SHA256 with a shared secret."""

    secret: bytes = field(repr=False)
    key_id: str | None = None
    alg: str = ALG_HMAC

    def sign(self, digest: bytes) -> str:
        """Return base64(HMAC-SHA256(secret, digest))."""
        return base64.b64encode(hmac.new(self.secret, digest, hashlib.sha256).digest()).decode()


@dataclass
class Ed25519Signer:
    """Ed25519 with a private key; the server holds only the public key."""

    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: str | None = None
    alg: str = ALG_ED25519

    @classmethod
    def from_seed(cls, seed: bytes, key_id: str | None = None) -> Ed25519Signer:
        """Build a signer from a 32-byte RFC 8032 private key seed."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed), key_id)

    def public_key_bytes(self) -> bytes:
        """The raw 32-byte public key to register with the server."""
        return self.private_key.public_key().public_bytes_raw()

    def sign(self, digest: bytes) -> str:
        """Return base64(Ed25519-sign(private key, digest))."""
        return base64.b64encode(self.private_key.sign(digest)).decode()


def decode_signature(sig: str) -> bytes | None:
    """Strictly decode standard base64 with padding; None when it is not."""
    try:
        return base64.b64decode(sig.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def verify_signature(alg: str, key: bytes, digest: bytes, sig: str) -> bool:
    """Check ``sig`` over ``digest``: ``key`` is the HMAC secret or the raw Ed25519 public key."""
    raw = decode_signature(sig)
    if raw is None:
        return False
    if alg == ALG_HMAC:
        expected = hmac.new(key, digest, hashlib.sha256).digest()
        return hmac.compare_digest(expected, raw)
    if alg == ALG_ED25519:
        if len(raw) != 64 or len(key) != 32:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(raw, digest)
        except (InvalidSignature, ValueError):
            return False
        return True
    raise ValueError(f"unknown signing algorithm {alg!r}")
