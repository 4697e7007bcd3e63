"""Receipts and consistency checked offline: receipts for the log Tessera
wrote, with proofs from an independent implementation, and receipts of
evidence entries under a checkpoint signed with the vectors' test key."""

from __future__ import annotations

import hashlib

import pytest

import reference
from conftest import shared_file
from evault_client import (Entry, MalformedError, ProofError, Receipt, VerificationError,
                           verify_consistency, verify_receipt)
from evault_client.checkpoint import Checkpoint

VKEY = reference.TESSERA_VKEY
ORIGIN = reference.TESSERA_ORIGIN


@pytest.fixture(scope="module")
def tessera():
    log = shared_file("tessera-log")
    entries = reference.read_bundle((log / "tile" / "entries" / "000.p" / "15").read_bytes())
    checkpoints = [(log / f"checkpoint.{n}").read_bytes() for n in range(16)]
    return entries, checkpoints


def tessera_receipt(tessera, index: int, size: int = 15) -> Receipt:
    entries, checkpoints = tessera
    return Receipt(index, entries[index], tuple(reference.path(index, entries[:size])),
                   Checkpoint.parse(checkpoints[size]))


def test_receipts_for_another_implementations_log_verify(tessera):
    entries, _ = tessera
    for size in (1, 2, 7, 8, 15):
        for i in range(size):
            data = tessera_receipt(tessera, i, size).to_tlog_proof()
            receipt = verify_receipt(data, VKEY, origin=ORIGIN)
            assert receipt.index == i
            assert receipt.entry_bytes == entries[i]
            assert receipt.checkpoint.size == size
            assert Receipt.from_tlog_proof(data).to_tlog_proof() == data


def test_every_single_bit_change_to_a_receipt_is_rejected(tessera):
    for index in range(0, 15, 4):
        data = tessera_receipt(tessera, index).to_tlog_proof()
        for i in range(len(data)):
            for bit in range(8):
                bad = bytearray(data)
                bad[i] ^= 1 << bit
                with pytest.raises(VerificationError):
                    verify_receipt(bytes(bad), VKEY)


def test_reasons_for_receipts_that_fail(tessera):
    good = tessera_receipt(tessera, 3)
    with pytest.raises(VerificationError, match="checkpoint: checkpoint is for origin"):
        verify_receipt(good.to_tlog_proof(), VKEY, origin="example.com/other")
    no_entry = Receipt(3, None, good.proof, good.checkpoint)
    assert b"extra" not in no_entry.to_tlog_proof()
    with pytest.raises(VerificationError, match="carries no entry"):
        verify_receipt(no_entry.to_tlog_proof(), VKEY)
    with pytest.raises(VerificationError, match="not an evidence entry"):
        verify_receipt(good.to_tlog_proof(), VKEY, evidence=b"four")
    wrong_index = Receipt(4, good.entry_bytes, good.proof, good.checkpoint)
    with pytest.raises(ProofError, match="^inclusion proof: the proof leads to root"):
        verify_receipt(wrong_index.to_tlog_proof(), VKEY)
    beyond = Receipt(15, good.entry_bytes, good.proof, good.checkpoint)
    with pytest.raises(ProofError, match="index 15 is not below tree size 15"):
        verify_receipt(beyond.to_tlog_proof(), VKEY)
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        verify_receipt(good.to_tlog_proof(),
                       "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


@pytest.mark.parametrize("text", [
    b"c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n",
    b"c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n",
    b"c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n",
    b"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n",
    b"c2sp.org/tlog-proof@v1\nindex 1\n" + b"A" * 43 + b"=\n",
    b"c2sp.org/tlog-proof@v1\nindex 1\n\n",
    b"c2sp.org/tlog-proof@v1\n",
    b"c2sp.org/tlog-proof@v1\nindex 1\n\nnot a checkpoint\n",
])
def test_malformed_receipts_are_refused(text):
    with pytest.raises(MalformedError):
        Receipt.from_tlog_proof(text)
    with pytest.raises(VerificationError, match="malformed|checkpoint"):
        verify_receipt(text, VKEY)


def test_consistency_between_every_pair_of_tessera_checkpoints(tessera):
    entries, checkpoints = tessera
    for new in range(1, 16):
        for old in range(1, new + 1):
            proof = reference.consistency(old, entries[:new]) if old < new else []
            cp = verify_consistency(checkpoints[old], checkpoints[new], proof, VKEY)
            assert cp.size == new
            if proof:
                bad = list(proof)
                bad[0] = bytes(32)
                with pytest.raises(ProofError, match=f"does not extend the checkpoint of "
                                                     f"size {old}"):
                    verify_consistency(checkpoints[old], checkpoints[new], bad, VKEY)
        # Every tree extends the empty one, with nothing to prove.
        verify_consistency(checkpoints[0], checkpoints[new], [], VKEY)
    with pytest.raises(VerificationError, match="shrank from 9 to 4"):
        verify_consistency(checkpoints[9], checkpoints[4], [], VKEY)
    with pytest.raises(ProofError, match="from the empty tree must be empty"):
        verify_consistency(checkpoints[0], checkpoints[3], [bytes(32)], VKEY)


def test_consistency_refuses_another_log_and_untrusted_checkpoints(tessera):
    entries, checkpoints = tessera
    other_skey, other_vkey = reference.make_keys("example.com/other")
    other = reference.checkpoint_note("example.com/other", entries[:5], signer_key=other_skey)
    with pytest.raises(VerificationError, match="^new checkpoint: .*expected "
                                                "'example.com/log/testdata'"):
        verify_consistency(checkpoints[3], other, reference.consistency(3, entries[:5]),
                           [VKEY, other_vkey])
    with pytest.raises(VerificationError, match="^old checkpoint: no signature by a trusted"):
        verify_consistency(other, checkpoints[5], [], VKEY)


# --- evidence entries under a test checkpoint ------------------------------------


def test_evidence_must_match_the_entry_digest_and_size():
    evidence = [b"first exhibit", b"second exhibit", b""]
    entries = [Entry(hashlib.sha256(e).digest(), len(e), 1_795_960_341_123 + i, "text/plain",
                     f"e{i}.txt", "dev", {"case": "7"}).encode()
               for i, e in enumerate(evidence)]
    # An entry that names the first exhibit's digest with another size.
    entries.append(Entry(hashlib.sha256(evidence[0]).digest(), 99, 0, "text/plain", None,
                         "dev", {}).encode())
    note = reference.checkpoint_note(ORIGIN, entries)
    receipts = [Receipt(i, e, tuple(reference.path(i, entries)), Checkpoint.parse(note))
                for i, e in enumerate(entries)]
    for i, data in enumerate(evidence):
        receipt = verify_receipt(receipts[i].to_tlog_proof(), VKEY, evidence=data)
        assert receipt.entry.name == f"e{i}.txt"
        assert receipt.entry.labels == {"case": "7"}
    with pytest.raises(VerificationError, match=r"^evidence: SHA-256 [0-9a-f]{64} does not "
                                                r"match the logged [0-9a-f]{64}$"):
        verify_receipt(receipts[0].to_tlog_proof(), VKEY, evidence=evidence[1])
    with pytest.raises(VerificationError, match="^evidence: 13 bytes, the entry logged 99$"):
        verify_receipt(receipts[3].to_tlog_proof(), VKEY, evidence=evidence[0])
