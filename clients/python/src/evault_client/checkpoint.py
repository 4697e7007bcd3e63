"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the log's signed tree
head.

The note text is the origin line, the tree size in decimal, the root hash
in base64, then optional extension lines. A checkpoint is trusted only when
a trusted key whose name is its origin signed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ._text import b64decode_strict, b64encode, parse_decimal
from .errors import MalformedError, VerificationError
from .note import Note, VerifierKeys


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint: its signed note, verbatim, and the body parsed from it.

    Parsing does not verify anything; `verify` does. Values read before
    `verify` succeeded are only claims."""

    note: bytes = field(repr=False)
    origin: str
    size: int
    root_hash: bytes
    extensions: Tuple[str, ...] = ()

    @classmethod
    def parse(cls, note: bytes) -> "Checkpoint":
        """Parses a checkpoint note (the signed note's body must be a
        checkpoint); raises `MalformedError`."""
        note = bytes(note)
        text = Note.parse(note).text
        return cls(note, *_parse_body(text))

    def verify(self, vkey: VerifierKeys, origin: Optional[str] = None) -> "Checkpoint":
        """Checks that a trusted key named after the checkpoint's origin
        signed it (and, with `origin`, that it is that log's). Returns the
        checkpoint; raises `VerificationError` saying why not."""
        if origin is not None and self.origin != origin:
            raise VerificationError(
                f"checkpoint is for origin {self.origin!r}, expected {origin!r}")
        signers = Note.parse(self.note).verify(vkey)
        if not any(k.name == self.origin for k in signers):
            raise VerificationError(
                f"checkpoint for {self.origin!r} is not signed by a trusted key of that name")
        return self

    def body(self) -> str:
        """The checkpoint body, as signed."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)


def _parse_body(text: str):
    if not text.endswith("\n"):
        raise MalformedError("malformed checkpoint: text does not end in a newline")
    lines = text[:-1].split("\n")
    origin = lines[0]
    if not origin:
        raise MalformedError("malformed checkpoint: empty origin line")
    size = parse_decimal(lines[1]) if len(lines) > 1 else None
    if size is None:
        raise MalformedError(
            "malformed checkpoint: tree size is not a decimal without leading zeros")
    root = b64decode_strict(lines[2]) if len(lines) > 2 else None
    if root is None or len(root) != 32:
        raise MalformedError("malformed checkpoint: root is not a base64 SHA-256 hash")
    extensions = tuple(lines[3:])
    if any(not e for e in extensions):
        raise MalformedError("malformed checkpoint: empty extension line")
    return origin, size, root, extensions


def open_checkpoint(note: bytes, vkey: VerifierKeys,
                    origin: Optional[str] = None) -> Checkpoint:
    """Parses and verifies a checkpoint note in one step; raises
    `VerificationError` (a malformed note included) saying why not."""
    try:
        checkpoint = Checkpoint.parse(note)
    except MalformedError as e:
        raise VerificationError(str(e)) from e
    return checkpoint.verify(vkey, origin)
