"""An independent RFC 9162 section 2.1 Merkle tree, written straight from
the RFC's recursive definitions (MTH, PATH, SUBPROOF), to make proofs the
client's verifier has never seen, and functions that sign test notes."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import List, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: Sequence[bytes]) -> bytes:
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return _leaf(entries[0])
    k = _split(n)
    return _node(mth(entries[:k]), mth(entries[k:]))


def path(m: int, entries: Sequence[bytes]) -> List[bytes]:
    n = len(entries)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return path(m, entries[:k]) + [mth(entries[k:])]
    return path(m - k, entries[k:]) + [mth(entries[:k])]


def _subproof(m: int, entries: Sequence[bytes], whole: bool) -> List[bytes]:
    n = len(entries)
    if m == n:
        return [] if whole else [mth(entries)]
    k = _split(n)
    if m <= k:
        return _subproof(m, entries[:k], whole) + [mth(entries[k:])]
    return _subproof(m - k, entries[k:], False) + [mth(entries[:k])]


def consistency(m: int, entries: Sequence[bytes]) -> List[bytes]:
    """PROOF(m, D[n]) for 0 < m < n."""
    return _subproof(m, entries, True)


# --- the Tessera log of the shared vectors ---------------------------------------

TESSERA_VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
# A published test key (shared/testdata/README.md), for signing test notes.
TESSERA_SKEY = "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg"
TESSERA_ORIGIN = "example.com/log/testdata"


def read_bundle(data: bytes) -> List[bytes]:
    """A C2SP entry bundle: big-endian uint16 length-prefixed entries."""
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack(">H", data[i:i + 2])
        out.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return out


def sign_note(text: str, signer_key: str) -> bytes:
    """Signs `text` with a Go-style `PRIVATE+KEY+name+id+base64` key."""
    _, _, name, hex_id, b64 = signer_key.split("+", 4)
    seed = base64.b64decode(b64)[1:]
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(text.encode("utf-8"))
    blob = bytes.fromhex(hex_id) + signature
    return (text + "\n\u2014 " + name + " " + base64.b64encode(blob).decode() + "\n").encode()


def make_keys(name: str):
    """A Go-style signer key and its verifier key for `name`, derived from
    the name (tests only)."""
    seed = hashlib.sha256(name.encode()).digest()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    digest = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()
    kid = digest[:4].hex()
    secret = base64.b64encode(b"\x01" + seed).decode()
    key = base64.b64encode(b"\x01" + public).decode()
    return f"PRIVATE+KEY+{name}+{kid}+{secret}", f"{name}+{kid}+{key}"


def checkpoint_note(origin: str, entries: Sequence[bytes], signer_key: str = TESSERA_SKEY) -> bytes:
    root = base64.b64encode(mth(entries)).decode()
    return sign_note(f"{origin}\n{len(entries)}\n{root}\n", signer_key)
