"""The evidence entry codec against docs/vectors/evidence-entry-v1.json."""

from __future__ import annotations

import json

import pytest

from conftest import ENTRY_VECTORS
from evault_client import Entry, EntryError, decode_entry
from evault_client.merkle import leaf_hash


def test_the_vectors_are_there(entry_vectors):
    assert len(entry_vectors["valid"]) >= 4
    assert len(entry_vectors["invalid"]) >= 15


def test_valid_vectors_decode_to_their_fields_and_encode_back(entry_vectors):
    for v in entry_vectors["valid"]:
        encoding = bytes.fromhex(v["encoding"])
        fields = v["entry"]
        entry = decode_entry(encoding)
        assert entry.sha256.hex() == fields["sha256"], v["description"]
        assert entry.sha256_hex == fields["sha256"]
        assert entry.size == fields["size"]
        assert entry.received_ms == fields["received_ms"]
        assert entry.media_type == fields["media_type"]
        assert entry.name == fields["name"]
        assert entry.principal == fields["principal"]
        assert entry.labels == fields["labels"]
        assert leaf_hash(encoding).hex() == v["leaf_hash"]
        again = Entry(bytes.fromhex(fields["sha256"]), fields["size"], fields["received_ms"],
                      fields["media_type"], fields["name"], fields["principal"],
                      fields["labels"])
        assert again.encode() == encoding, v["description"]


# Read at collection: a missing file is a collection error, never a silent
# empty parametrization.
INVALID = json.loads(ENTRY_VECTORS.read_text(encoding="utf-8"))["invalid"]


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["description"])
def test_invalid_vectors_are_refused(vector):
    with pytest.raises(EntryError):
        decode_entry(bytes.fromhex(vector["encoding"]))


def test_reasons_name_the_problem(entry_vectors):
    minimal = bytes.fromhex(entry_vectors["valid"][0]["encoding"])
    with pytest.raises(EntryError, match="unsupported entry version 2"):
        decode_entry(b"\x02" + minimal[1:])
    with pytest.raises(EntryError, match="truncated in digest"):
        decode_entry(minimal[:20])
    with pytest.raises(EntryError, match="1 trailing bytes"):
        decode_entry(minimal + b"\x00")


def test_labels_encode_sorted_by_key_bytes_and_received_time_is_utc():
    entry = Entry(b"\x01" * 32, 5, 1_700_000_000_123, "text/plain", None, "dev",
                  {"z": "1", "a": "2", "\u00e4": ""})
    decoded = decode_entry(entry.encode())
    assert list(decoded.labels) == ["a", "z", "\u00e4"]
    assert decoded.received.isoformat() == "2023-11-14T22:13:20.123000+00:00"
    # The dedup key ignores the time received.
    later = Entry(entry.sha256, 5, 1, "text/plain", None, "dev", entry.labels)
    assert later.dedup_key() == entry.dedup_key()
    assert Entry(entry.sha256, 6, 1, "text/plain", None, "dev", entry.labels).dedup_key() \
        != entry.dedup_key()
