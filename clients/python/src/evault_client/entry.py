"""The evidence entry, version 1: the bytes the vault logs for one
submission (docs/entry-format.md).

The encoding is canonical: a record has exactly one encoding and the
decoder refuses anything else, so equal records have equal leaf hashes and
nobody can log two byte strings that read as the same record.

    u8      version (1)
    [32]u8  SHA-256 of the evidence
    u64     evidence size in bytes
    u64     received at, milliseconds since the Unix epoch (UTC)
    str     media type
    str     name ("" when none)
    str     submitting principal
    u16     label count, then that many (str key, str value), keys strictly ascending

Integers are big-endian; `str` is a u16 byte length and UTF-8 bytes.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, Optional

from .errors import EntryError

ENTRY_VERSION = 1
#: The most bytes an entry may have: what a C2SP entry bundle can frame.
MAX_ENTRY_SIZE = 65535
_DEDUP_PREFIX = b"evault dedup v1\n"


def _has_control(text: str) -> bool:
    # Unicode category Cc, as Rust's char::is_control: these characters
    # could rewrite what a terminal or browser shows.
    return any(unicodedata.category(c) == "Cc" for c in text)


def _check_text(field_name: str, value: str, allow_empty: bool) -> None:
    if not allow_empty and not value:
        raise EntryError(f"invalid {field_name}: must not be empty")
    if _has_control(value):
        raise EntryError(f"invalid {field_name}: must not contain control characters")


@dataclass(frozen=True)
class Entry:
    """One decoded evidence entry."""

    sha256: bytes
    size: int
    received_ms: int
    media_type: str
    name: Optional[str]
    principal: str
    labels: Dict[str, str] = field(default_factory=dict)

    @property
    def sha256_hex(self) -> str:
        return self.sha256.hex()

    @property
    def received(self) -> datetime.datetime:
        """When the vault received the statement, in UTC."""
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return epoch + datetime.timedelta(milliseconds=self.received_ms)

    def validate(self) -> None:
        """Checks every field rule of the format; raises `EntryError`."""
        if len(self.sha256) != 32:
            raise EntryError("invalid digest: must be 32 bytes")
        if not (0 <= self.size < 1 << 64) or not (0 <= self.received_ms < 1 << 64):
            raise EntryError("invalid size or time: must fit an unsigned 64-bit integer")
        if not self.media_type:
            raise EntryError("invalid media type: must not be empty")
        if not all(0x20 <= ord(c) < 0x7F for c in self.media_type):
            raise EntryError("invalid media type: must be printable ASCII")
        if self.name is not None:
            _check_text("name", self.name, False)
        _check_text("principal", self.principal, False)
        for key, value in self.labels.items():
            _check_text("label key", key, False)
            _check_text("label value", value, True)

    def encode(self) -> bytes:
        """The canonical encoding; raises `EntryError` for a record the
        format cannot hold."""
        self.validate()
        out = bytearray([ENTRY_VERSION])
        out += self.sha256
        out += struct.pack(">QQ", self.size, self.received_ms)
        _put_str(out, "media type", self.media_type)
        _put_str(out, "name", self.name or "")
        _put_str(out, "principal", self.principal)
        if len(self.labels) > 0xFFFF:
            raise EntryError("invalid labels: more than 65535")
        out += struct.pack(">H", len(self.labels))
        for key in sorted(self.labels, key=lambda k: k.encode("utf-8")):
            _put_str(out, "label key", key)
            _put_str(out, "label value", self.labels[key])
        if len(out) > MAX_ENTRY_SIZE:
            raise EntryError(f"entry is {len(out)} bytes; at most {MAX_ENTRY_SIZE} are allowed")
        return bytes(out)

    def dedup_key(self) -> bytes:
        """The key that makes a retried append the same entry: SHA-256 of
        `evault dedup v1\\n` and the encoding with the time received set
        to 0."""
        timeless = Entry(self.sha256, self.size, 0, self.media_type, self.name,
                         self.principal, dict(self.labels))
        return hashlib.sha256(_DEDUP_PREFIX + timeless.encode()).digest()


def _put_str(out: bytearray, what: str, value: str) -> None:
    raw = value.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise EntryError(f"invalid {what}: longer than 65535 bytes")
    out += struct.pack(">H", len(raw)) + raw


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.data):
            raise EntryError(f"entry is truncated in {what}")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def u16(self, what: str) -> int:
        return struct.unpack(">H", self.take(2, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack(">Q", self.take(8, what))[0]

    def string(self, what: str) -> str:
        raw = self.take(self.u16(what), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise EntryError(f"invalid {what}: is not UTF-8") from e


def decode_entry(data: bytes) -> Entry:
    """Decodes a canonical evidence entry; anything else raises
    `EntryError` saying why."""
    data = bytes(data)
    if len(data) > MAX_ENTRY_SIZE:
        raise EntryError(f"entry is {len(data)} bytes; at most {MAX_ENTRY_SIZE} are allowed")
    r = _Reader(data)
    version = r.take(1, "version")[0]
    if version != ENTRY_VERSION:
        raise EntryError(f"unsupported entry version {version}")
    digest = r.take(32, "digest")
    size = r.u64("size")
    received_ms = r.u64("received time")
    media_type = r.string("media type")
    name = r.string("name")
    principal = r.string("principal")
    count = r.u16("label count")
    labels: Dict[str, str] = {}
    last: Optional[bytes] = None
    for _ in range(count):
        key = r.string("label key")
        value = r.string("label value")
        raw_key = key.encode("utf-8")
        if last is not None and last >= raw_key:
            raise EntryError("label keys are not unique and in ascending byte order")
        last = raw_key
        labels[key] = value
    if r.at != len(data):
        raise EntryError(f"entry has {len(data) - r.at} trailing bytes")
    entry = Entry(digest, size, received_ms, media_type, name or None, principal, labels)
    entry.validate()
    return entry
