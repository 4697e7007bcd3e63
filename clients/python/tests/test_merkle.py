"""RFC 9162 proofs: the transparency-dev/merkle RFC 6962 vectors, and
proofs from an independent implementation of the RFC."""

from __future__ import annotations

import base64
import json

import pytest

import reference
from conftest import TESTDATA, shared_file
from evault_client import ProofError
from evault_client.merkle import EMPTY_ROOT, leaf_hash, tree_root, verify_consistency, \
    verify_inclusion

INCLUSION = sorted((TESTDATA / "rfc6962" / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((TESTDATA / "rfc6962" / "consistency").rglob("*.json"))
# The reference tree behind the numbered vector folders.
LEAVES = [bytes.fromhex(h) for h in
          ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
           "606162636465666768696a6b6c6d6e6f"]]


def b64(text):
    return base64.b64decode(text)


def name(path):
    return str(path.relative_to(TESTDATA / "rfc6962"))


def test_the_vectors_are_there():
    # Parametrized tests over an empty list would pass by running nothing.
    shared_file("rfc6962")
    assert len(INCLUSION) >= 80, INCLUSION
    assert len(CONSISTENCY) >= 80, CONSISTENCY
    wanted = [json.loads(p.read_text())["wantErr"] for p in INCLUSION + CONSISTENCY]
    assert wanted.count(True) > 50 and wanted.count(False) > 10


@pytest.mark.parametrize("path", INCLUSION, ids=name)
def test_inclusion_vector(path):
    v = json.loads(path.read_text())
    args = (v["leafIdx"], v["treeSize"], b64(v["leafHash"]),
            [b64(p) for p in v["proof"] or []], b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=name)
def test_consistency_vector(path):
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], [b64(p) for p in v["proof"] or []],
            b64(v["root1"]), b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_reference_tree_roots():
    assert tree_root([]) == EMPTY_ROOT == reference.mth([])
    root8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert tree_root([leaf_hash(x) for x in LEAVES]).hex() == root8
    for n in range(1, 40):
        entries = [b"e%d" % i for i in range(n)]
        assert tree_root([leaf_hash(e) for e in entries]) == reference.mth(entries)


def test_every_proof_of_an_independent_tree_verifies_and_any_change_fails():
    entries = [b"entry %d" % i for i in range(33)]
    for n in range(1, len(entries) + 1):
        root = reference.mth(entries[:n])
        for i in range(n):
            proof = reference.path(i, entries[:n])
            verify_inclusion(i, n, leaf_hash(entries[i]), proof, root)
            if proof:
                bad = list(proof)
                bad[-1] = bytes([bad[-1][0] ^ 1]) + bad[-1][1:]
                with pytest.raises(ProofError, match="leads to root"):
                    verify_inclusion(i, n, leaf_hash(entries[i]), bad, root)
                with pytest.raises(ProofError, match="hashes, .* expected"):
                    verify_inclusion(i, n, leaf_hash(entries[i]), proof[:-1], root)
        for m in range(1, n):
            old = reference.mth(entries[:m])
            proof = reference.consistency(m, entries[:n])
            verify_consistency(m, n, proof, old, root)
            with pytest.raises(ProofError):
                verify_consistency(m, n, proof, root, root)


def test_reasons_are_precise():
    leaf = leaf_hash(b"x")
    with pytest.raises(ProofError, match="index 3 is not below tree size 3"):
        verify_inclusion(3, 3, leaf, [], leaf)
    with pytest.raises(ProofError, match="leaf hash is 31 bytes long, not 32"):
        verify_inclusion(0, 1, leaf[:31], [], leaf)
    with pytest.raises(ProofError, match="proof hash 0 is 3 bytes long"):
        verify_inclusion(0, 2, leaf, [b"abc"], leaf)
    with pytest.raises(ProofError, match="smaller than the earlier size"):
        verify_consistency(5, 4, [leaf], leaf, leaf)
    with pytest.raises(ProofError, match="from the empty tree"):
        verify_consistency(0, 4, [], EMPTY_ROOT, leaf)
