"""Signed checkpoints (C2SP signed notes) and the offline verifier of flk-agent.

The log side here is built from the protocol package's own Merkle code and a test key; the server's
audit log will serve the same formats.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flk_agent import merkle
from flk_agent.checkpoint import (
    CheckpointError,
    checkpoint_body,
    note_key_id,
    open_checkpoint,
    sign_note,
    verifier_key,
)
from flk_agent.cli import main

NAME = "flk.example/audit/acme"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes_raw()
PUBLIC_B64 = base64.b64encode(PUBLIC).decode()
ENTRIES = [f"entry {i}".encode() for i in range(13)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]


def b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def note_for(size: int, key: Ed25519PrivateKey = KEY) -> str:
    return sign_note(checkpoint_body(NAME, size, merkle.root_from_leaf_hashes(LEAVES[:size])), NAME, key)


def test_note_format_and_key_id_follow_c2sp():
    note = note_for(5)
    body, signature = note.split("\n\n")
    assert body.split("\n") == [NAME, "5", b64(merkle.root_from_leaf_hashes(LEAVES[:5]))]
    assert signature.startswith(f"\u2014 {NAME} ")
    blob = base64.b64decode(signature.rsplit(" ", 1)[1])
    assert blob[:4] == note_key_id(NAME, PUBLIC) and len(blob) == 68
    assert verifier_key(NAME, PUBLIC).startswith(f"{NAME}+{blob[:4].hex()}+")
    checkpoint = open_checkpoint(note, name=NAME, public_key=PUBLIC)
    assert (checkpoint.origin, checkpoint.size) == (NAME, 5)


@pytest.mark.parametrize("tamper", ["size", "root", "signature", "other-key", "unsigned"])
def test_a_tampered_or_foreign_checkpoint_is_refused(tamper):
    note = note_for(5)
    if tamper == "size":
        note = note.replace("\n5\n", "\n6\n", 1)
    elif tamper == "root":
        good = b64(merkle.root_from_leaf_hashes(LEAVES[:5]))
        note = note.replace(good, b64(merkle.root_from_leaf_hashes(LEAVES[:4])))
    elif tamper == "signature":
        head, sig = note.rsplit(" ", 1)
        raw = bytearray(base64.b64decode(sig))
        raw[10] ^= 1
        note = f"{head} {b64(bytes(raw))}\n"
    elif tamper == "other-key":
        note = note_for(5, Ed25519PrivateKey.generate())
    else:
        note = note.split("\n\n")[0] + "\n\n"
    with pytest.raises(CheckpointError):
        open_checkpoint(note, name=NAME, public_key=PUBLIC)


@pytest.fixture
def files(tmp_path):
    def write(name: str, content: str | dict) -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


def _verify_inclusion(files, note: str, proof: dict) -> int:
    return main(
        [
            "audit",
            "verify-inclusion",
            "--log-name",
            NAME,
            "--public-key",
            PUBLIC_B64,
            "--checkpoint",
            files("cp.txt", note),
            "--proof",
            files("proof.json", proof),
        ]
    )


def test_verify_inclusion_offline(files, capsys):
    proof = {
        "leaf_index": 7,
        "tree_size": 13,
        "leaf_hash": b64(LEAVES[7]),
        "hashes": [b64(h) for h in merkle.inclusion_proof(LEAVES, 7)],
    }
    assert _verify_inclusion(files, note_for(13), proof) == 0
    assert "OK: leaf 7" in capsys.readouterr().out
    forged = dict(proof, leaf_hash=b64(merkle.leaf_hash(b"entry 7, edited")))
    assert _verify_inclusion(files, note_for(13), forged) == 6
    truncated = dict(proof, hashes=proof["hashes"][:-1])
    assert _verify_inclusion(files, note_for(13), truncated) == 6
    assert _verify_inclusion(files, note_for(12), proof) == 6  # a proof for another tree size
    assert "NOT VERIFIED" in capsys.readouterr().out


def test_verify_consistency_offline(files, capsys):
    proof = {"first": 5, "second": 13, "hashes": [b64(h) for h in merkle.consistency_proof(LEAVES, 5)]}
    args = [
        "audit",
        "verify-consistency",
        "--log-name",
        NAME,
        "--public-key",
        PUBLIC_B64,
        "--json",
        "--old",
        files("old.txt", note_for(5)),
        "--new",
        files("new.txt", note_for(13)),
    ]
    assert main([*args, "--proof", files("p.json", proof)]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    # A log that rewrote entry 2 after checkpoint 5 cannot prove consistency with it.
    rewritten = [*LEAVES[:2], merkle.leaf_hash(b"entry 2, rewritten"), *LEAVES[3:]]
    forged_new = sign_note(checkpoint_body(NAME, 13, merkle.root_from_leaf_hashes(rewritten)), NAME, KEY)
    forged_proof = dict(proof, hashes=[b64(h) for h in merkle.consistency_proof(rewritten, 5)])
    args[-1] = files("new.txt", forged_new)
    assert main([*args, "--proof", files("p.json", forged_proof)]) == 6
    assert json.loads(capsys.readouterr().out)["verified"] is False
