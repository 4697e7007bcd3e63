"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, and
their verifier keys.

A note is UTF-8 text ending in a newline, a blank line, then one line per
signature: `— <key name> <base64(key ID || signature)>`. Verification
follows golang.org/x/mod/sumdb/note, as the vault does: signatures by
unknown keys are ignored (a witness may add its own), a bad signature by a
known key rejects the whole note, and a note no known key signed is
rejected.

Verifier keys are `<name>+<hex key ID>+<base64(0x01 || public key)>`; the
key ID is the first four bytes of SHA-256(name || 0x0A || 0x01 || public
key), so a key cannot claim another key's name or ID.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, List, Sequence, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._text import b64decode_strict, b64encode
from .errors import MalformedError, VerificationError

ALG_ED25519 = 0x01
#: The most bytes a note may have: far above any checkpoint.
MAX_NOTE_SIZE = 1 << 20
#: The most signature lines a note may have.
MAX_SIGNATURES = 100
SIGNATURE_PREFIX = "\u2014 "


def is_valid_key_name(name: str) -> bool:
    """Non-empty, without white space or `+`."""
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def key_id(name: str, key: bytes) -> int:
    """The 32-bit key ID of `key` (algorithm byte first) under `name`."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes(key)).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class VerifierKey:
    """An Ed25519 public key that checks note signatures under a name."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> "VerifierKey":
        """Parses `<name>+<hex key ID>+<base64(0x01 || public key)>`,
        checking that the ID is the one the name and key give."""
        text = text.rstrip("\r\n")
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise MalformedError(f"malformed key {text!r}: expected <name>+<key ID>+<key>")
        name, hex_id, b64 = parts
        if not is_valid_key_name(name):
            raise MalformedError(f"malformed key {text!r}: invalid key name")
        if len(hex_id) != 8 or not all(c in "0123456789abcdefABCDEF" for c in hex_id):
            raise MalformedError(f"malformed key {text!r}: key ID is not 8 hexadecimal digits")
        key = b64decode_strict(b64)
        if key is None:
            raise MalformedError(f"malformed key {text!r}: key is not base64")
        claimed, computed = int(hex_id, 16), key_id(name, key)
        if claimed != computed:
            raise MalformedError(
                f"key {text!r}: key ID {claimed:08x} does not match the key "
                f"(expected {computed:08x})")
        if not key:
            raise MalformedError(f"malformed key {text!r}: empty key")
        if key[0] != ALG_ED25519:
            raise MalformedError(f"key {text!r}: unsupported key algorithm 0x{key[0]:02x}")
        if len(key) != 33:
            raise MalformedError(f"malformed key {text!r}: Ed25519 key is not 32 bytes")
        return cls(name, computed, key[1:])

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                bytes(signature), bytes(message))
        except (InvalidSignature, ValueError):
            return False
        return True

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([ALG_ED25519]) + self.public_key)}"


VerifierKeys = Union[str, bytes, VerifierKey, Iterable[Union[str, VerifierKey]]]


def parse_verifier_keys(keys: VerifierKeys) -> List[VerifierKey]:
    """Trusted keys from what a caller has at hand: one key, the text of a
    verifier-key file (one key a line, `#` starts a comment line, as
    `evault up` writes DATA_DIR/verifier-key), or a list of keys."""
    if isinstance(keys, VerifierKey):
        return [keys]
    if isinstance(keys, (bytes, bytearray)):
        try:
            keys = bytes(keys).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedError("verifier keys are not UTF-8") from e
    if isinstance(keys, str):
        lines = [line.strip() for line in keys.splitlines()]
        items: List[Union[str, VerifierKey]] = [
            line for line in lines if line and not line.startswith("#")]
    else:
        items = list(keys)
    parsed = [k if isinstance(k, VerifierKey) else VerifierKey.parse(k.strip()) for k in items]
    if not parsed:
        raise MalformedError("no verifier key given")
    return parsed


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(blob)}\n"


def _has_control_characters(text: str) -> bool:
    return any(c < " " and c != "\n" for c in text)


@dataclass(frozen=True)
class Note:
    """A signed note: its text (final newline included) and signatures."""

    text: str
    signatures: Sequence[NoteSignature]

    @classmethod
    def parse(cls, data: bytes) -> "Note":
        """Parses a signed note without checking any signature."""
        data = bytes(data)
        if len(data) > MAX_NOTE_SIZE:
            raise MalformedError("malformed note: note too large")
        try:
            msg = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedError("malformed note: not UTF-8") from e
        if _has_control_characters(msg):
            raise MalformedError("malformed note: control character")
        split = msg.rfind("\n\n")
        if split < 0:
            raise MalformedError("malformed note: no blank line before the signatures")
        text, block = msg[:split + 1], msg[split + 2:]
        if not block.endswith("\n"):
            raise MalformedError("malformed note: signature block does not end in a newline")
        signatures = [_parse_signature(line) for line in block[:-1].split("\n")]
        if len(signatures) > MAX_SIGNATURES:
            raise MalformedError("malformed note: too many signatures")
        return cls(text, tuple(signatures))

    def verify(self, keys: VerifierKeys) -> List[VerifierKey]:
        """Checks the signatures against the trusted `keys` and returns the
        keys that signed; raises `VerificationError` for a bad signature by
        a trusted key or when no trusted key signed."""
        trusted = parse_verifier_keys(keys)
        message = self.text.encode("utf-8")
        signed: List[VerifierKey] = []
        for sig in self.signatures:
            key = next((k for k in trusted
                        if k.name == sig.name and k.key_id == sig.key_id), None)
            if key is None:
                continue
            if not key.verify(message, sig.signature):
                raise VerificationError(f"invalid signature by {sig.name}+{sig.key_id:08x}")
            if key not in signed:
                signed.append(key)
        if not signed:
            names = ", ".join(s.name for s in self.signatures)
            raise VerificationError(f"no signature by a trusted key (signed by: {names})")
        return signed

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedError("malformed note: signature line does not start with an em dash")
    rest = line[len(SIGNATURE_PREFIX):]
    name, sep, b64 = rest.partition(" ")
    if not sep:
        raise MalformedError("malformed note: signature line without a signature")
    if not is_valid_key_name(name):
        raise MalformedError("malformed note: invalid key name on a signature line")
    blob = b64decode_strict(b64)
    if blob is None:
        raise MalformedError("malformed note: signature is not base64")
    if len(blob) < 5:
        raise MalformedError("malformed note: signature too short")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])
