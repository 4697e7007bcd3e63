"""Against a real vault (`evault up`): appends, receipts that the `evault`
command line accepts and writes, reads of the log, and errors."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import socket
import time

import grpc
import pytest

from evault_client import (AppendError, Client, EvaultError, ProofError, Receipt, RpcError,
                           Statement, VerificationError, verify_consistency, verify_receipt)
from evault_client.merkle import leaf_hash, verify_inclusion


def unique(tag: str) -> bytes:
    """Evidence no other test (or earlier run of this one) has logged."""
    return f"{tag} {os.getpid()} {time.time_ns()}\n".encode()


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_append_a_file_and_evault_verify_accepts_the_receipt(client, vault, evault, tmp_path):
    evidence = write(tmp_path / "report.txt", unique("incident report, first draft"))
    receipt = client.append(evidence)
    assert not receipt.duplicate
    entry = receipt.entry
    assert entry.sha256 == hashlib.sha256(evidence.read_bytes()).digest()
    assert entry.size == len(evidence.read_bytes())
    assert (entry.name, entry.media_type, entry.principal) == \
        ("report.txt", "application/octet-stream", "dev")
    assert receipt.checkpoint.origin == vault.origin
    assert receipt.index < receipt.checkpoint.size
    proof_file = write(tmp_path / "report.txt.tlog-proof", receipt.to_tlog_proof())
    done = evault("verify", "--vkey-file", vault.vkey_file, "--evidence", evidence, proof_file)
    assert "receipt verified" in done.stdout
    assert f"index      {receipt.index}" in done.stdout
    assert "name       report.txt" in done.stdout
    # And offline here, with the evidence as bytes or as a path.
    verify_receipt(proof_file.read_bytes(), vault.vkey, evidence=evidence.read_bytes())
    verify_receipt(proof_file.read_bytes(), vault.vkey, evidence=evidence, origin=vault.origin)


def test_statements_are_the_ones_evault_append_sends(client, vault, evault, tmp_path):
    """The same file appended by `evault append` right after this client is a
    retry of the same statement: the vault answers with the same entry, and
    the receipt file `evault append` writes is byte for byte this client's
    (no entry was logged in between, so the checkpoint is the same)."""
    for flags, kwargs in [
        ([], {}),
        (["--media-type", "text/plain", "--label", "case=IR-7", "--label", "severity=high"],
         dict(media_type="text/plain", labels={"severity": "high", "case": "IR-7"})),
    ]:
        evidence = write(tmp_path / f"exhibit {len(flags)}.bin", unique("exhibit") * 5000)
        mine = client.append(str(evidence), **kwargs)
        out = tmp_path / f"receipts{len(flags)}"
        done = evault("append", "--server", vault.url, "--token-file", vault.token_file,
                      "--receipts", out, *flags, evidence)
        assert "(logged before)" in done.stdout, done.stdout
        theirs = (out / f"{evidence.name}.tlog-proof").read_bytes()
        assert theirs == mine.to_tlog_proof()
        assert Receipt.from_tlog_proof(theirs) == mine
        # The receipt `evault append` wrote verifies here.
        verified = verify_receipt(theirs, vault.vkey, evidence=evidence.read_bytes())
        assert verified.entry.name == evidence.name
        assert verified.entry.labels == kwargs.get("labels", {})


def test_a_receipt_written_by_evault_append_verifies_and_tampering_is_caught(
        client, vault, evault, tmp_path):
    evidence = write(tmp_path / "memo.txt", unique("memo"))
    # A few more entries first, so the receipt has a proof to tamper with.
    for i in range(3):
        client.append(unique(f"padding {i}"))
    evault("append", "--server", vault.url, "--token-file", vault.token_file, evidence)
    data = (tmp_path / "memo.txt.tlog-proof").read_bytes()
    receipt = verify_receipt(data, vault.vkey, evidence=evidence.read_bytes())
    assert receipt.proof, "expected a non-empty inclusion proof"
    assert Receipt.from_tlog_proof(data).to_tlog_proof() == data

    cp = receipt.checkpoint
    body, signatures = cp.note.split(b"\n\n", 1)
    line = signatures.split(b"\n")[0].decode()
    prefix, b64sig = line.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(b64sig))
    blob[10] ^= 0x01  # a byte of the signature proper (after the 4-byte key ID)
    bad_note = body + b"\n\n" + (prefix + " " + base64.b64encode(bytes(blob)).decode()).encode() \
        + b"\n" + b"\n".join(signatures.split(b"\n")[1:])
    cases = {
        "flipped signature byte": (
            data.replace(cp.note, bad_note), None, r"^checkpoint: invalid signature by "),
        "wrong index": (
            data.replace(b"index %d\n" % receipt.index, b"index %d\n" % (receipt.index + 1)),
            None, r"^inclusion proof: "),
        "altered proof hash": (
            data.replace(base64.b64encode(receipt.proof[0]),
                         base64.b64encode(bytes([receipt.proof[0][0] ^ 0x80])
                                          + receipt.proof[0][1:])),
            None, r"^inclusion proof: the proof leads to root "),
        "wrong evidence bytes": (
            data, evidence.read_bytes() + b"!", r"^evidence: SHA-256 [0-9a-f]{64} does not "
                                                r"match the logged [0-9a-f]{64}$"),
    }
    for what, (bad, other_evidence, reason) in cases.items():
        assert bad != data or other_evidence is not None, what
        with pytest.raises(VerificationError) as caught:
            verify_receipt(bad, vault.vkey, evidence=other_evidence or evidence.read_bytes())
        assert re.search(reason, caught.value.reason), f"{what}: {caught.value.reason}"
        # The vault's own verifier refuses the same receipt.
        bad_file = write(tmp_path / "bad.tlog-proof", bad)
        evidence_file = write(tmp_path / "bad-evidence", other_evidence) if other_evidence \
            else evidence
        done = evault("verify", "--vkey-file", vault.vkey_file, "--evidence", evidence_file,
                      bad_file, check=False)
        assert done.returncode == 1, f"{what}: evault verify said {done.stdout}{done.stderr}"


def test_append_many_yields_1000_receipts_in_order(client, vault, tmp_path):
    evidence = [unique(f"stream item {i}") for i in range(1000)]
    start = client.checkpoint().size
    receipts = list(client.append_many(evidence, media_type="text/plain",
                                       labels={"batch": "1000"}))
    assert len(receipts) == 1000
    assert [r.index for r in receipts] == list(range(start, start + 1000))
    for data, receipt in zip(evidence, receipts):
        assert receipt.entry.sha256 == hashlib.sha256(data).digest()
        assert receipt.entry.labels == {"batch": "1000"}
        assert not receipt.duplicate
    for receipt in receipts[::97] + receipts[-1:]:
        verify_receipt(receipt.to_tlog_proof(), vault.vkey, evidence=evidence[
            receipt.index - start])
    # The same statements again: every receipt is the original entry's.
    again = list(client.append_many(
        Statement(e, media_type="text/plain", labels={"batch": "1000"}) for e in evidence[:50]))
    assert [r.index for r in again] == [r.index for r in receipts[:50]]
    assert all(r.duplicate for r in again)


def test_append_many_reports_a_refused_statement_in_its_place(client, tmp_path):
    good = [unique(f"mixed {i}") for i in range(4)]
    items = [good[0], good[1], Statement(good[2], media_type="bad\ttype"), good[3]]
    with pytest.raises(AppendError) as caught:
        list(client.append_many(items))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.position == 2
    assert "media" in caught.value.details.lower()
    # Without raising: the stream goes on past the refused statement.
    outcomes = list(client.append_many(items, raise_errors=False))
    assert [type(o).__name__ for o in outcomes] == ["Receipt", "Receipt", "AppendError",
                                                    "Receipt"]
    # Those before it were logged by the first stream; whether the one after
    # it was depends on how far the vault got before that stream was cancelled.
    assert outcomes[0].duplicate and outcomes[1].duplicate
    assert outcomes[2].position == 2 and outcomes[3].entry.sha256 == \
        hashlib.sha256(good[3]).digest()
    # An unreadable file ends the stream after the receipts before it.
    got = []
    with pytest.raises(FileNotFoundError):
        for receipt in client.append_many([unique("before"), tmp_path / "missing.bin"]):
            got.append(receipt)
    assert len(got) == 1


def test_upload_sends_the_bytes(client, vault, evault, tmp_path):
    data = unique("memory image") * 1000
    path = write(tmp_path / "memory.img", data)
    receipt = client.append(path, upload=True)
    assert client.get_evidence(receipt.entry.sha256) == data
    assert client.get_evidence(receipt.entry.sha256_hex) == data
    # `evault append --upload` sends the same statement: the same entry.
    out = tmp_path / "r"
    evault("append", "--server", vault.url, "--token-file", vault.token_file, "--upload",
           "--receipts", out, path)
    assert Receipt.from_tlog_proof((out / "memory.img.tlog-proof").read_bytes()).index \
        == receipt.index
    # Without upload, nothing is stored for the digest.
    other = client.append(unique("kept by the client"))
    with pytest.raises(RpcError) as caught:
        client.get_evidence(other.entry.sha256)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND


def test_checkpoint_proofs_and_find(client, vault):
    first = client.append(unique("first of three"), name="one.txt")
    old = client.checkpoint().verify(vault.vkey, origin=vault.origin)
    assert old.size >= first.index + 1
    # Asked while `old` is the latest: the vault keeps only the latest
    # checkpoint (and a few recently asked for), not every one it published.
    proof = client.inclusion_proof(first.index, old.size)
    assert (proof.index, proof.tree_size, proof.checkpoint) == (first.index, old.size, old)
    verify_inclusion(first.index, old.size, first.leaf_hash, proof.hashes, old.root_hash)

    data = unique("second of three")
    second = client.append(data, name="two.txt")
    client.append(unique("third of three"))
    new = client.checkpoint().verify(vault.vkey)
    assert new.size >= old.size + 2
    latest = client.inclusion_proof(second.index)
    assert latest.checkpoint.verify(vault.vkey) == new
    verify_inclusion(second.index, latest.tree_size, second.leaf_hash, latest.hashes,
                     new.root_hash)

    consistency = client.consistency_proof(old.size)
    assert consistency.second_size == new.size
    assert verify_consistency(old, consistency.checkpoint, consistency, vault.vkey) == new
    verify_consistency(old.note, new.note, client.consistency_proof(old.size, new.size).hashes,
                       vault.vkey)
    hashes = list(consistency.hashes)
    hashes[0] = bytes(32)
    with pytest.raises(ProofError, match=f"does not extend the checkpoint of size {old.size}"):
        verify_consistency(old, new, hashes, vault.vkey)
    with pytest.raises(VerificationError, match="the proof is from size"):
        verify_consistency(old, new, dataclasses.replace(consistency, first_size=old.size + 1),
                           vault.vkey)

    found = client.find(hashlib.sha256(data).hexdigest())
    assert [e.index for e in found] == [second.index]
    assert found[0].entry.name == "two.txt"
    assert leaf_hash(found[0].entry_bytes) == second.leaf_hash
    assert client.find(hashlib.sha256(b"never logged " + unique("x")).digest()) == []

    receipt = client.receipt(second.index)
    verify_receipt(receipt.to_tlog_proof(), vault.vkey, evidence=data)
    entries = client.entries(first.index, 3)
    assert [e.index for e in entries] == [first.index, first.index + 1, first.index + 2]
    assert entries[0].entry_bytes == first.entry_bytes
    assert client.verifier_keys() == [k for k in vault.vkey.splitlines()
                                      if k and not k.startswith("#")]


def test_the_receipt_evault_proof_writes_is_the_clients(client, vault, evault, tmp_path):
    receipt = client.append(unique("proof by index"))
    out = tmp_path / "by-index.tlog-proof"
    evault("proof", "--server", vault.url, "--index", receipt.index, "-o", out)
    assert out.read_bytes() == client.receipt(receipt.index).to_tlog_proof()


def test_errors_carry_the_grpc_status_and_the_vaults_message(client, vault, tmp_path):
    with pytest.raises(RpcError) as caught:
        client.append(b"x", media_type="")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.method == "IngestService.Append"
    assert str(caught.value).startswith("IngestService.Append: INVALID_ARGUMENT: ")
    assert "media" in caught.value.details.lower()

    with pytest.raises(RpcError) as caught:
        client.append(b"x", labels=[("k", "1"), ("k", "2")])
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT

    size = client.checkpoint().size
    with pytest.raises(RpcError) as caught:
        client.inclusion_proof(size + 10)
    assert caught.value.code == grpc.StatusCode.OUT_OF_RANGE

    with pytest.raises(RpcError) as caught:
        client.consistency_proof(size + 10, size)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT

    with Client(vault.target, token="not-a-valid-token") as stranger:
        with pytest.raises(RpcError) as caught:
            stranger.append(b"x")
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(RpcError) as caught:
            list(stranger.append_many([b"x"]))
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(ValueError, match="not a SHA-256 digest"):
        client.find("abc")
    with pytest.raises(TypeError, match="bytes or a file path"):
        client.append(12345)
    with pytest.raises(FileNotFoundError):
        client.append(tmp_path / "no such file")
    with pytest.raises(ValueError, match="not both"):
        Client(vault.target, token="a", token_file=vault.token_file)


def test_an_unreachable_vault_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with Client(f"127.0.0.1:{port}", timeout=10) as nobody:
            with pytest.raises(RpcError) as caught:
                nobody.checkpoint()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(caught.value, EvaultError)
