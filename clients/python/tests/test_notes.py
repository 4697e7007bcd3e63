"""Signed notes and checkpoints: the golang.org/x/mod/sumdb/note vectors
and the checkpoints Tessera signed."""

from __future__ import annotations

import base64

import pytest

import reference
from conftest import shared_file
from evault_client import (Checkpoint, MalformedError, Note, VerificationError, VerifierKey,
                           open_checkpoint, parse_verifier_keys)
from evault_client.merkle import tree_root, leaf_hash


def _block(text: str, start: str, end: str) -> str:
    at = text.index(start) + len(start)
    return text[at:text.index(end, at) + 1]


@pytest.fixture(scope="module")
def notes():
    text = shared_file("notes/signed-notes.txt").read_text(encoding="utf-8")

    def values(name):
        prefix = name + ": "
        return [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]

    return dict(
        signer=values("signer-key")[0],
        verifiers=values("verifier-key"),
        bad=values("bad-verifier-key"),
        text=_block(text, "\ntext:\n", "\nnote:\n"),
        note=_block(text, "\nnote:\n", "\nend\n").encode("utf-8"),
    )


def test_note_with_two_signatures_verifies_with_either_key(notes):
    assert len(notes["verifiers"]) == 2
    note = Note.parse(notes["note"])
    assert note.text == notes["text"]
    assert note.to_bytes() == notes["note"]
    keys = [VerifierKey.parse(k) for k in notes["verifiers"]]
    assert [str(k) for k in keys] == notes["verifiers"]
    assert note.verify(keys) == keys
    for key in keys:
        assert note.verify(str(key)) == [key]


def test_signing_the_text_reproduces_the_published_signature(notes):
    # Ed25519 is deterministic: our reading of key IDs and signature lines
    # must give the very line the vectors hold.
    signed = reference.sign_note(notes["text"].rstrip("\n") + "\n", notes["signer"])
    assert Note.parse(signed).signatures[0] == Note.parse(notes["note"]).signatures[0]


def test_malformed_verifier_keys_are_refused(notes):
    assert len(notes["bad"]) == 3
    for text in notes["bad"]:
        with pytest.raises(MalformedError):
            VerifierKey.parse(text)
    with pytest.raises(MalformedError, match="does not match the key"):
        VerifierKey.parse(notes["bad"][2])
    with pytest.raises(MalformedError, match="no verifier key"):
        parse_verifier_keys("# only a comment\n\n")


def test_unknown_keys_are_ignored_but_not_enough(notes):
    note = Note.parse(notes["note"])
    with pytest.raises(VerificationError,
                       match=r"no signature by a trusted key \(signed by: PeterNeumann, EnochRoot\)"):
        note.verify(reference.TESSERA_VKEY)
    assert len(note.verify([reference.TESSERA_VKEY, notes["verifiers"][1]])) == 1


def test_an_altered_text_fails_with_the_key_named(notes):
    altered = notes["note"].replace(b"cryptography", b"cryptoGraphy")
    with pytest.raises(VerificationError, match=r"invalid signature by PeterNeumann\+c74f20a3"):
        Note.parse(altered).verify(notes["verifiers"][0])


@pytest.mark.parametrize("note", [
    b"no blank line\n\xe2\x80\x94 a AAAAAAA=\n",
    b"text\n\n\xe2\x80\x94 a AAAAAAA=",  # no final newline
    b"text\n\n- a AAAAAAA=\n",  # a hyphen, not an em dash
    b"text\n\n\xe2\x80\x94 a AAAA\n",  # too short
    b"text\n\n\xe2\x80\x94 a not-base64\n",
    b"te\x01xt\n\n\xe2\x80\x94 a AAAAAAA=\n",
    b"\xff\n\n\xe2\x80\x94 a AAAAAAA=\n",
])
def test_malformed_notes_are_refused(note):
    with pytest.raises(MalformedError, match="malformed note"):
        Note.parse(note)


def test_every_tessera_checkpoint_verifies_and_matches_its_tree():
    log = shared_file("tessera-log")
    entries = reference.read_bundle((log / "tile" / "entries" / "000.p" / "15").read_bytes())
    words = "one two three four five six seven eit nain ten ileven twelf threeten fourten fivten"
    assert entries == [w.encode() for w in words.split()]
    for n in range(16):
        note = (log / f"checkpoint.{n}").read_bytes()
        cp = open_checkpoint(note, reference.TESSERA_VKEY, origin=reference.TESSERA_ORIGIN)
        assert (cp.origin, cp.size) == (reference.TESSERA_ORIGIN, n)
        assert cp.root_hash == tree_root([leaf_hash(e) for e in entries[:n]])
        assert cp.body() + "\n" == note.decode().split("\n\n")[0] + "\n\n"
    assert (log / "checkpoint").read_bytes() == (log / "checkpoint.15").read_bytes()


def test_checkpoint_reasons():
    note = shared_file("tessera-log/checkpoint.3").read_bytes()
    with pytest.raises(VerificationError, match="is for origin 'example.com/log/testdata', "
                                                "expected 'other'"):
        open_checkpoint(note, reference.TESSERA_VKEY, origin="other")
    # Signed by a trusted key, but one named after another log.
    foreign = reference.sign_note("another.example/log\n1\n" + base64.b64encode(
        b"\x00" * 32).decode() + "\n", reference.TESSERA_SKEY)
    with pytest.raises(VerificationError, match="not signed by a trusted key of that name"):
        open_checkpoint(foreign, reference.TESSERA_VKEY)
    for body in ["o\n01\nAAAA\n", "o\n1\nAAAA\n", "\n1\n" + "A" * 43 + "=\n",
                 "o\n1\n" + "A" * 43 + "=\n\n"]:
        with pytest.raises(MalformedError, match="malformed"):
            Checkpoint.parse(reference.sign_note(body, reference.TESSERA_SKEY))
