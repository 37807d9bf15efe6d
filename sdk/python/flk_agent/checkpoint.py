"""Transparency-log checkpoints as C2SP signed notes, and their offline verification.

A checkpoint (C2SP tlog-checkpoint) is the text ``<origin>\\n<tree size>\\n<base64 root hash>\\n``; a
signed note (C2SP signed-note) appends a blank line and one line per signature,
``— <key name> <base64(4-byte key id || Ed25519 signature of the text)>``. The key id is the first four
bytes of SHA-256(key name || 0x0A || 0x01 || public key). Anyone holding the log's public key can check
a checkpoint and the proofs against it without asking the server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flk_agent import merkle

_ED25519 = b"\x01"
_DASH = "\u2014 "


class CheckpointError(ValueError):
    """A note or proof that does not verify; the message says which part."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified tree head."""

    origin: str
    size: int
    root: bytes


def note_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id C2SP assigns to an Ed25519 key called ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """The ``name+hex id+base64 key`` string that publishes a note verifier key."""
    key_id = note_key_id(name, public_key).hex()
    return f"{name}+{key_id}+{base64.b64encode(_ED25519 + public_key).decode()}"


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The checkpoint text that gets signed."""
    if not origin or "\n" in origin:
        raise ValueError("the origin is one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``body`` (which ends with a newline) as a C2SP signed note."""
    if not body.endswith("\n") or "\n\n" in body:
        raise ValueError("a note body ends with a newline and has no blank line")
    public = private_key.public_key().public_bytes_raw()
    blob = note_key_id(name, public) + private_key.sign(body.encode())
    return f"{body}\n{_DASH}{name} {base64.b64encode(blob).decode()}\n"


def open_checkpoint(note: str, *, name: str, public_key: bytes) -> Checkpoint:
    """Verify a signed checkpoint with the log's key and return what it says; raise ``CheckpointError``."""
    split = note.find("\n\n")
    if split < 0:
        raise CheckpointError("not a signed note: no blank line before the signatures")
    body, signatures = note[: split + 1], note[split + 2 :]
    wanted = note_key_id(name, public_key)
    verified = False
    for line in signatures.splitlines():
        if not line.startswith(_DASH):
            raise CheckpointError(f"malformed signature line {line!r}")
        signer, _, blob_b64 = line[len(_DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(blob_b64, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("a signature is not base64") from exc
        if signer != name or blob[:4] != wanted:
            continue  # someone else's signature (a witness, say): not ours to check
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(blob[4:], body.encode())
        except (InvalidSignature, ValueError) as exc:
            raise CheckpointError(f"the signature of {name} does not verify") from exc
        verified = True
    if not verified:
        raise CheckpointError(f"the note carries no signature by {name}")
    lines = body.splitlines()
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has an origin, a size and a root hash")
    try:
        size, root = int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CheckpointError("the checkpoint's size or root hash is malformed") from exc
    if size < 0 or len(root) != 32:
        raise CheckpointError("the checkpoint's size or root hash is out of range")
    return Checkpoint(lines[0], size, root)


def _hashes(values: list[str]) -> list[bytes]:
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, TypeError) as exc:
        raise CheckpointError("proof hashes must be base64") from exc


def check_inclusion(checkpoint: Checkpoint, proof: dict) -> None:
    """Raise ``CheckpointError`` unless ``proof`` places its leaf in the checkpoint's tree.

    ``proof`` is ``{"leaf_index", "tree_size", "leaf_hash", "hashes"}`` with base64 hashes, and may
    carry the ``entry`` itself, ``{"seq", "prev_hash", "content"}``: its hash,
    SHA-256(prev_hash || SHA-256(RFC 8785 of content)), must be the leaf's data, so an entry edited after
    it was logged is caught even when its proof still verifies.
    """
    if proof.get("tree_size") != checkpoint.size:
        raise CheckpointError(
            f"the proof is for tree size {proof.get('tree_size')}, the checkpoint for {checkpoint.size}"
        )
    [leaf] = _hashes([proof.get("leaf_hash", "")])
    if "entry" in proof:
        entry = proof["entry"]
        try:
            content_hash = hashlib.sha256(rfc8785.dumps(entry["content"])).digest()
            entry_hash = hashlib.sha256(bytes.fromhex(entry["prev_hash"]) + content_hash).digest()
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError("the proof's entry is malformed") from exc
        if merkle.leaf_hash(entry_hash) != leaf:
            raise CheckpointError("the entry's content does not match its leaf hash (it was edited)")
    if not merkle.verify_inclusion(
        leaf,
        int(proof.get("leaf_index", -1)),
        checkpoint.size,
        _hashes(proof.get("hashes", [])),
        checkpoint.root,
    ):
        raise CheckpointError("the inclusion proof does not lead to the checkpoint's root")


def check_consistency(old: Checkpoint, new: Checkpoint, proof: dict) -> None:
    """Raise ``CheckpointError`` unless ``proof`` shows ``old`` is a prefix of ``new``.

    ``proof`` is ``{"first", "second", "hashes"}`` with base64 hashes.
    """
    if (proof.get("first"), proof.get("second")) != (old.size, new.size):
        raise CheckpointError("the proof's sizes do not match the two checkpoints")
    if old.origin != new.origin:
        raise CheckpointError("the checkpoints come from different logs")
    if not merkle.verify_consistency(
        old.size, new.size, old.root, new.root, _hashes(proof.get("hashes", []))
    ):
        raise CheckpointError("the consistency proof does not connect the two checkpoints")
