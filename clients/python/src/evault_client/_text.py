"""Small parsing rules shared by the formats: strict base64 and decimals."""

from __future__ import annotations

import base64
import binascii
from typing import Optional, Union

MAX_U64 = (1 << 64) - 1


def b64decode_strict(text: Union[str, bytes]) -> Optional[bytes]:
    """Standard padded base64 (RFC 4648 section 4) in its one canonical
    spelling, or None.

    The vault's own parser (Rust's base64 STANDARD engine) refuses missing
    padding and non-zero trailing bits; re-encoding and comparing refuses
    exactly those, so both sides accept the same receipts."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            return None
    else:
        raw = bytes(text)
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(decoded) != raw:
        return None
    return decoded


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def parse_decimal(text: Union[str, bytes]) -> Optional[int]:
    """A uint64 in decimal without sign or leading zeros, or None: the one
    spelling checkpoints and receipts allow for a number."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not text or not all("0" <= c <= "9" for c in text):
        return None
    if len(text) > 1 and text[0] == "0":
        return None
    value = int(text)
    return value if value <= MAX_U64 else None
