"""Hashing evidence: its SHA-256 and size, as `evault append` computes them."""

from __future__ import annotations

import hashlib
import os
from typing import Optional, Tuple, Union

# `evault append` reads files in 64 KiB chunks; any chunking gives the same
# digest, this one just keeps memory flat for large files.
_CHUNK = 1 << 16

Evidence = Union[bytes, bytearray, memoryview, "os.PathLike[str]", str]


def is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def digest(evidence, keep: bool = False) -> Tuple[bytes, int, Optional[bytes]]:
    """SHA-256 digest and size of `evidence` (bytes, or a file path); with
    `keep`, also its bytes."""
    if isinstance(evidence, (bytes, bytearray, memoryview)):
        data = bytes(evidence)
        return hashlib.sha256(data).digest(), len(data), data if keep else None
    if not is_path(evidence):
        raise TypeError(
            f"evidence must be bytes or a file path, not {type(evidence).__name__}")
    hasher = hashlib.sha256()
    size = 0
    kept = bytearray() if keep else None
    with open(evidence, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            hasher.update(chunk)
            size += len(chunk)
            if kept is not None:
                kept += chunk
    return hasher.digest(), size, bytes(kept) if kept is not None else None


def file_name(path) -> str:
    """The name `evault append` records for a file: its last path
    component, with bytes that are not UTF-8 replaced by U+FFFD (as Rust's
    `to_string_lossy` does)."""
    raw = os.fsencode(path)
    base = os.path.basename(raw.rstrip(b"/")) if raw.rstrip(b"/") else b""
    if base in (b".", b".."):
        # Rust's Path::file_name has no name for these.
        return ""
    return base.decode("utf-8", "replace")
