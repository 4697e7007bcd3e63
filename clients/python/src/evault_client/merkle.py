"""RFC 9162 section 2.1 Merkle tree hashing and proof verification.

Verification has the exact semantics of transparency-dev/merkle (and of
the vault's Rust core), checked against its RFC 6962 vectors: hashes of any
length other than 32 bytes are refused with a precise reason rather than
failing later, a consistency proof from the empty tree is refused, and
equal sizes with an empty proof and equal roots are accepted.
"""

from __future__ import annotations

import hashlib
from typing import List, Sequence, Tuple

from .errors import ProofError
from ._text import b64encode

HASH_SIZE = 32
#: Root of the empty tree: SHA-256 of nothing.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(what: str, value: bytes) -> bytes:
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes long, not {HASH_SIZE}")
    return value


def _proof_hashes(proof: Sequence[bytes]) -> List[bytes]:
    return [_check_hash(f"proof hash {i}", p) for i, p in enumerate(proof)]


def _expect_root(calculated: bytes, root: bytes) -> None:
    if calculated != bytes(root):
        raise ProofError(
            f"the proof leads to root {b64encode(calculated)}, not the expected one")


def _decompose(index: int, size: int) -> Tuple[int, int]:
    """How many proof hashes are interior (below the point where the paths
    of `index` and the last leaf meet) and how many lie on the right
    border."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def root_from_inclusion_proof(index: int, size: int, leaf: bytes,
                              proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to for leaf `index` (with leaf hash
    `leaf`) in a tree of `size` leaves."""
    if index < 0 or size < 0:
        raise ProofError("index and size must not be negative")
    if index >= size:
        raise ProofError(f"index {index} is not below tree size {size}")
    leaf = _check_hash("leaf hash", leaf)
    inner, border = _decompose(index, size)
    proof = list(proof or [])
    if len(proof) != inner + border:
        raise ProofError(f"proof has {len(proof)} hashes, {inner + border} expected")
    hashes = _proof_hashes(proof)
    acc = _chain_inner(leaf, hashes[:inner], index)
    return _chain_border_right(acc, hashes[inner:])


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Checks that `proof` proves leaf `index`, with leaf hash `leaf`, is in
    the tree of `size` leaves whose root is `root`; raises `ProofError`
    saying why not."""
    _expect_root(root_from_inclusion_proof(index, size, leaf, proof), root)


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes],
                       root1: bytes, root2: bytes) -> None:
    """Checks that `proof` proves the tree of `size2` leaves with root
    `root2` extends the tree of `size1` leaves with root `root1`; raises
    `ProofError` saying why not."""
    proof = list(proof or [])
    root1, root2 = bytes(root1), bytes(root2)
    if size1 < 0 or size2 < 0:
        raise ProofError("tree sizes must not be negative")
    if size2 < size1:
        raise ProofError(f"tree size {size2} is smaller than the earlier size {size1}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("tree sizes are equal but the proof is not empty")
        # Equal trees are consistent exactly when their roots are equal,
        # whatever those roots look like.
        if root1 != root2:
            raise ProofError(f"the proof leads to root {root1.hex()}, not the expected one")
        return
    if not proof:
        raise ProofError("the proof is empty")
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zeros of size1
    inner -= shift
    hashes = _proof_hashes(proof)
    # The proof starts with the root of the largest perfect subtree ending
    # at size1, unless that subtree is the whole first tree, whose root is
    # known.
    if size1 == 1 << shift:
        seed, rest = _check_hash("first root", root1), hashes
    else:
        seed, rest = hashes[0], hashes[1:]
    want = len(hashes) - len(rest) + inner + border
    if len(hashes) != want:
        raise ProofError(f"proof has {len(hashes)} hashes, {want} expected")
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    _expect_root(hash1, root1)
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    _expect_root(hash2, root2)


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH of the given leaf hashes (for small trees: tests,
    mirrors of a few entries)."""
    if not leaves:
        return EMPTY_ROOT
    level = [bytes(x) for x in leaves]
    # Hash pairs level by level; an odd last node moves up unchanged,
    # which is the same tree as the RFC's largest-power-of-two split.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
