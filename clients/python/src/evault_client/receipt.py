"""Receipts as C2SP tlog-proof files (c2sp.org/tlog-proof@v1), and their
offline verification.

A receipt file is:

    c2sp.org/tlog-proof@v1
    extra <base64 of the logged entry>
    index <decimal>
    <base64 proof hash, leaf's sibling first>...
    <blank line>
    <the checkpoint note, verbatim>

The vault puts the logged entry in the `extra` line, so a receipt alone
shows what was logged; `evault append` writes exactly these bytes.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

from . import _evidence
from ._text import b64decode_strict, b64encode, parse_decimal
from .checkpoint import Checkpoint
from .entry import Entry, decode_entry
from .errors import EntryError, MalformedError, ProofError, VerificationError
from .merkle import leaf_hash, verify_consistency as _merkle_consistency, verify_inclusion
from .note import VerifierKeys

RECEIPT_HEADER = b"c2sp.org/tlog-proof@v1"
#: An inclusion proof in a tree of 2^64 leaves has at most 64 hashes.
MAX_PROOF_HASHES = 64


@dataclass(frozen=True)
class Receipt:
    """An entry's index, its inclusion proof and the checkpoint it is
    proven against, with the entry itself.

    `entry_bytes` is the logged entry as the vault holds it (None for a
    tlog-proof without an `extra` line); `entry` decodes it. `duplicate` is
    True when the vault answered an append with the receipt of an earlier,
    identical submission. Nothing here is verified until `verify` (or
    `verify_receipt`) says so."""

    index: int
    entry_bytes: Optional[bytes]
    proof: Tuple[bytes, ...]
    checkpoint: Checkpoint
    duplicate: bool = field(default=False, compare=False)

    @functools.cached_property
    def entry(self) -> Entry:
        """The decoded evidence entry; raises `EntryError` when the receipt
        carries none or carries bytes that are not an evidence entry."""
        if self.entry_bytes is None:
            raise EntryError("the receipt carries no entry")
        return decode_entry(self.entry_bytes)

    @property
    def leaf_hash(self) -> bytes:
        if self.entry_bytes is None:
            raise EntryError("the receipt carries no entry")
        return leaf_hash(self.entry_bytes)

    def to_tlog_proof(self) -> bytes:
        """The receipt file: byte for byte what `evault append` writes."""
        out = [RECEIPT_HEADER, b"\n"]
        if self.entry_bytes is not None:
            out += [b"extra ", b64encode(self.entry_bytes).encode("ascii"), b"\n"]
        out.append(b"index %d\n" % self.index)
        for h in self.proof:
            out += [b64encode(h).encode("ascii"), b"\n"]
        out.append(b"\n")
        out.append(self.checkpoint.note)
        return b"".join(out)

    @classmethod
    def from_tlog_proof(cls, data: bytes) -> "Receipt":
        """Parses a receipt file; raises `MalformedError` saying what is
        wrong. Parsing verifies nothing."""
        lines = _Lines(bytes(data))
        if lines.next() != RECEIPT_HEADER:
            raise MalformedError("malformed receipt: first line is not c2sp.org/tlog-proof@v1")
        line = lines.next()
        if line is None:
            raise MalformedError("malformed receipt: missing index line")
        extra = None
        if line.startswith(b"extra "):
            extra = b64decode_strict(line[len(b"extra "):])
            if extra is None:
                raise MalformedError("malformed receipt: extra data is not base64")
            line = lines.next()
            if line is None:
                raise MalformedError("malformed receipt: missing index line")
        index = parse_decimal(line[len(b"index "):]) if line.startswith(b"index ") else None
        if index is None:
            raise MalformedError("malformed receipt: index line is not `index <decimal>`")
        proof = []
        while True:
            line = lines.next()
            if line is None:
                raise MalformedError("malformed receipt: no blank line before the checkpoint")
            if not line:
                break
            if len(proof) == MAX_PROOF_HASHES:
                raise MalformedError("malformed receipt: more than 64 proof hashes")
            h = b64decode_strict(line)
            if h is None or len(h) != 32:
                raise MalformedError(
                    "malformed receipt: proof line is not a base64 SHA-256 hash")
            proof.append(h)
        rest = lines.rest()
        if not rest:
            raise MalformedError("malformed receipt: no checkpoint")
        try:
            checkpoint = Checkpoint.parse(rest)
        except MalformedError as e:
            raise MalformedError(f"checkpoint: {e}") from e
        return cls(index, extra, tuple(proof), checkpoint)

    def verify(self, vkey: VerifierKeys, evidence=None,
               origin: Optional[str] = None) -> "Receipt":
        """See `verify_receipt`."""
        return verify_receipt(self, vkey, evidence=evidence, origin=origin)


class _Lines:
    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def next(self) -> Optional[bytes]:
        end = self.data.find(b"\n", self.at)
        if end < 0:
            return None
        line = self.data[self.at:end]
        self.at = end + 1
        return line

    def rest(self) -> bytes:
        return self.data[self.at:]


def verify_receipt(data: Union[bytes, Receipt], vkey: VerifierKeys, evidence=None,
                   origin: Optional[str] = None) -> Receipt:
    """Verifies a receipt offline and returns it, parsed.

    `data` is the receipt file's bytes (or a `Receipt`); `vkey` the trusted
    verifier key(s): one key string, the text of a verifier-key file
    (e.g. DATA_DIR/verifier-key of `evault up`), or a list of keys.
    Checks that a trusted key named after the log's origin signed the
    checkpoint (and, with `origin`, that the log is that one), that the
    inclusion proof places the entry in that checkpoint's tree and, with
    `evidence` (its bytes or a file path), that the entry records the
    evidence's SHA-256 digest and size. Raises `VerificationError` saying
    why not; a key that cannot be parsed raises `MalformedError`."""
    if isinstance(data, Receipt):
        receipt = data
    else:
        try:
            receipt = Receipt.from_tlog_proof(data)
        except MalformedError as e:
            raise VerificationError(str(e)) from e
    try:
        receipt.checkpoint.verify(vkey, origin)
    except VerificationError as e:
        raise VerificationError(f"checkpoint: {e.reason}") from e
    if receipt.entry_bytes is None:
        raise VerificationError(
            "receipt carries no entry (no extra line), so its leaf hash cannot be computed")
    cp = receipt.checkpoint
    try:
        verify_inclusion(receipt.index, cp.size, receipt.leaf_hash, receipt.proof, cp.root_hash)
    except ProofError as e:
        raise ProofError(f"inclusion proof: {e.reason}") from e
    if evidence is not None:
        try:
            entry = receipt.entry
        except EntryError as e:
            raise VerificationError(
                f"the logged entry is not an evidence entry ({e})") from e
        got_digest, got_size, _ = _evidence.digest(evidence)
        what = f"evidence {evidence}" if _evidence.is_path(evidence) else "evidence"
        if not hmac.compare_digest(got_digest, entry.sha256):
            raise VerificationError(
                f"{what}: SHA-256 {got_digest.hex()} does not match the logged "
                f"{entry.sha256.hex()}")
        if got_size != entry.size:
            raise VerificationError(f"{what}: {got_size} bytes, the entry logged {entry.size}")
    return receipt


def verify_consistency(old_checkpoint, new_checkpoint, proof, vkey: VerifierKeys) -> Checkpoint:
    """Verifies that the log of `new_checkpoint` extends that of
    `old_checkpoint`: both signed by a trusted key named after the same
    origin, and `proof` (a list of hashes, or what
    `Client.consistency_proof` returns) an RFC 9162 consistency proof
    between them. Checkpoints are note bytes or `Checkpoint`s. Returns the
    new checkpoint; raises `VerificationError` saying why not."""
    old = _open(old_checkpoint, vkey, None, "old checkpoint")
    new = _open(new_checkpoint, vkey, old.origin, "new checkpoint")
    hashes: Sequence[bytes]
    if hasattr(proof, "hashes"):
        if (proof.first_size, proof.second_size) != (old.size, new.size):
            raise VerificationError(
                f"the proof is from size {proof.first_size} to {proof.second_size}, "
                f"not from {old.size} to {new.size}")
        hashes = list(proof.hashes)
    else:
        hashes = list(proof or [])
    if new.size < old.size:
        raise VerificationError(f"the log shrank from {old.size} to {new.size} entries")
    if old.size == 0:
        # Every tree extends the empty one; there is nothing to prove.
        if hashes:
            raise ProofError("a proof from the empty tree must be empty")
        return new
    try:
        _merkle_consistency(old.size, new.size, hashes, old.root_hash, new.root_hash)
    except ProofError as e:
        raise ProofError(
            f"the log does not extend the checkpoint of size {old.size}: {e.reason}") from e
    return new


def _open(checkpoint, vkey: VerifierKeys, origin: Optional[str], what: str) -> Checkpoint:
    if not isinstance(checkpoint, Checkpoint):
        try:
            checkpoint = Checkpoint.parse(checkpoint)
        except MalformedError as e:
            raise VerificationError(f"{what}: {e}") from e
    try:
        return checkpoint.verify(vkey, origin)
    except VerificationError as e:
        raise VerificationError(f"{what}: {e.reason}") from e
