"""RFC 9162 inclusion and consistency proofs: published vectors, every shape, and forgeries refused.

The vectors are the Certificate Transparency reference ones (google/certificate-transparency
cpp/merkletree/merkle_tree_test.cc, repeated in transparency-dev/merkle testonly/reference_test.go),
over the eight leaves "", 00, 10, 2021, 3031, 40414243, 5051525354555657, 606162…6e6f.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flk_agent import merkle
from tests.sdk.test_signals import CT_LEAVES, CT_ROOTS

H = bytes.fromhex
LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in CT_LEAVES]

INCLUSION = [  # (0-based leaf index, tree size, path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [  # (first size, second size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_reference(index, size, path):
    proof = merkle.inclusion_proof(LEAF_HASHES[:size], index)
    assert [p.hex() for p in proof] == path
    assert merkle.verify_inclusion(LEAF_HASHES[index], index, size, proof, H(CT_ROOTS[size]))


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_reference(first, second, path):
    proof = merkle.consistency_proof(LEAF_HASHES[:second], first)
    assert [p.hex() for p in proof] == path
    assert merkle.verify_consistency(first, second, H(CT_ROOTS[first]), H(CT_ROOTS[second]), proof)


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_no_forgery_does(size_and_index):
    size, index = size_and_index
    leaves = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(size)]
    root = merkle.root_from_leaf_hashes(leaves)
    proof = merkle.inclusion_proof(leaves, index)
    assert merkle.verify_inclusion(leaves[index], index, size, proof, root)
    assert not merkle.verify_inclusion(_flip(leaves[index]), index, size, proof, root)
    assert not merkle.verify_inclusion(leaves[index], index, size, proof, _flip(root))
    if proof:
        assert not merkle.verify_inclusion(leaves[index], index, size, proof[:-1], root)  # truncated
        assert not merkle.verify_inclusion(leaves[index], index, size, [_flip(proof[0]), *proof[1:]], root)
        assert not merkle.verify_inclusion(leaves[index], index, size, [*proof, proof[-1]], root)  # padded
    if size > 1:
        other = (index + 1) % size
        assert not merkle.verify_inclusion(leaves[index], other, size, proof, root)


@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_consistency_proof_verifies_and_no_forgery_does(sizes):
    first, second = sizes
    leaves = [merkle.leaf_hash(bytes([i % 256, 7])) for i in range(second)]
    r1 = merkle.root_from_leaf_hashes(leaves[:first])
    r2 = merkle.root_from_leaf_hashes(leaves)
    proof = merkle.consistency_proof(leaves, first)
    assert merkle.verify_consistency(first, second, r1, r2, proof)
    assert not merkle.verify_consistency(first, second, _flip(r1), r2, proof)
    assert not merkle.verify_consistency(first, second, r1, _flip(r2), proof)
    if proof:
        assert not merkle.verify_consistency(first, second, r1, r2, proof[:-1])
        assert not merkle.verify_consistency(first, second, r1, r2, [_flip(proof[0]), *proof[1:]])
    # A rewritten history: change one of the first leaves and the old root no longer matches.
    forged = [_flip(leaves[0]), *leaves[1:]]
    assert not merkle.verify_consistency(
        first, second, r1, merkle.root_from_leaf_hashes(forged), merkle.consistency_proof(forged, first)
    )
