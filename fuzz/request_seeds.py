#!/usr/bin/env python3
"""Writes the seed corpora of the request targets (append, tree_read,
sequence, audit_record, signer, evidence) into corpus/<target>/.

The seeds are requests, valid and invalid, encoded as the targets read
them (a first byte choosing the method where a service has several, then
the protobuf message). They name what src/world.rs sets up: its origin,
its entries (encoded here as docs/entry-format.md says), their tree (RFC
9162 hashes and proofs, computed here) and its stored evidence, so a change
there is made here too, and the seeds written again with
`python3 fuzz/request_seeds.py`. Files of the same name are overwritten;
others are left alone. Standard library only.
"""
import hashlib
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
# As in src/world.rs.
ORIGIN = "vault.example/fuzz"
AUDIT = ORIGIN + "/audit"
ENTRIES = 20


def sha(b):
    return hashlib.sha256(b).digest()


# Protobuf: varint fields (wire type 0) and length-delimited ones (2).
def varint(n):
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def f_var(number, value):
    return varint(number << 3) + varint(value)


def f_len(number, value):
    if isinstance(value, str):
        value = value.encode()
    return varint((number << 3) | 2) + varint(len(value)) + value


def msg(*fields):
    """A message of the fields given, skipping those that are None."""
    return b"".join(f for f in fields if f is not None)


# Evidence entries, as `entry(i)` in src/world.rs builds them.
def text(value):
    value = value.encode()
    return struct.pack(">H", len(value)) + value


def entry(i, received=None):
    received = 1_700_000_000_000 + i if received is None else received
    return (
        b"\x01"
        + sha(bytes([i % 3]))
        + struct.pack(">QQ", 1, received)
        + text("text/plain")
        + text(f"item-{i}")
        + text("alice")
        + struct.pack(">H", 0)
    )


def dedup(i):
    return sha(b"evault dedup v1\n" + entry(i, 0))


# RFC 9162 hashes, and consistency proofs (section 2.1.4).
def leaf(e):
    return sha(b"\x00" + e)


def node(left, right):
    return sha(b"\x01" + left + right)


def split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def subproof(m, leaves, complete):
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = split(n)
    if m <= k:
        return subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


LEAVES = [leaf(entry(i)) for i in range(ENTRIES)]


def root(n):
    return mth(LEAVES[:n])


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)

# append: first byte 0 for AppendRequest, 1 for AppendStreamRequest.
def statement(
    sha256=sha(b"report"),
    size=6,
    media="application/pdf",
    name="report.pdf",
    labels=(("case", "42"), ("team", "blue")),
    content=None,
):
    return msg(
        f_len(1, sha256),
        f_var(2, size) if size else None,
        f_len(3, media) if media else None,
        f_len(4, name) if name else None,
        *[f_len(5, msg(f_len(1, k), f_len(2, v))) for k, v in labels],
        f_len(6, content) if content is not None else None,
    )


A = "append"
write(A, "unary", b"\x00" + f_len(1, statement()))
write(A, "unary-with-content", b"\x00" + f_len(1, statement(content=b"report")))
write(A, "stream", b"\x01" + msg(f_var(1, 7), f_len(2, statement(name="", labels=()))))
write(A, "no-statement", b"\x00")
write(A, "short-digest", b"\x00" + f_len(1, statement(sha256=sha(b"x")[:31])))
write(A, "repeated-label", b"\x00" + f_len(1, statement(labels=(("case", "1"), ("case", "2")))))
write(A, "bidi-override-name", b"\x00" + f_len(1, statement(name="report\u202efdp.exe")))
write(A, "content-wrong-size", b"\x00" + f_len(1, statement(size=7, content=b"report")))
write(A, "size-beyond-i64", b"\x00" + f_len(1, statement(size=1 << 63)))
write(A, "media-not-ascii", b"\x00" + f_len(1, statement(media="text/plaın")))

# tree_read: first byte 0 GetCheckpoint, 1 GetInclusionProof,
# 2 GetConsistencyProof, 3 GetEntries, 4 FindEntries, 5 GetVerifierKeys.
T = "tree_read"
write(T, "checkpoint", b"\x00")
write(T, "inclusion-index-latest", b"\x01" + f_var(1, 5))
write(T, "inclusion-index-size-20", b"\x01" + msg(f_var(1, 19), f_var(3, 20)))
write(T, "inclusion-index-out-of-range", b"\x01" + msg(f_var(1, 20), f_var(3, 20)))
write(T, "inclusion-superseded-size", b"\x01" + msg(f_var(1, 3), f_var(3, 7)))
write(T, "inclusion-leaf-hash", b"\x01" + msg(f_len(2, LEAVES[4]), f_var(3, 20)))
write(T, "inclusion-leaf-hash-short", b"\x01" + f_len(2, LEAVES[4][:31]))
write(T, "inclusion-unpublished-size", b"\x01" + msg(f_var(1, 2), f_var(3, 8)))
write(T, "inclusion-no-leaf", b"\x01" + f_var(3, 7))
write(T, "consistency-1-20", b"\x02" + msg(f_var(1, 1), f_var(2, 20)))
write(T, "consistency-superseded", b"\x02" + msg(f_var(1, 1), f_var(2, 7)))
write(T, "consistency-7-latest", b"\x02" + f_var(1, 7))
write(T, "consistency-13-latest", b"\x02" + f_var(1, 13))
write(T, "consistency-beyond", b"\x02" + msg(f_var(1, 21)))
write(T, "consistency-unpublished", b"\x02" + msg(f_var(1, 5), f_var(2, 8)))
write(T, "entries-first-five", b"\x03" + msg(f_var(1, 0), f_var(2, 5)))
write(T, "entries-past-the-end", b"\x03" + msg(f_var(1, 18), f_var(2, 10)))
write(T, "entries-start-beyond", b"\x03" + msg(f_var(1, 20), f_var(2, 1)))
write(T, "entries-count-zero", b"\x03" + f_var(1, 3))
write(T, "entries-many", b"\x03" + msg(f_var(1, 1), f_var(2, 5000)))
write(T, "find-page", b"\x04" + msg(f_len(1, sha(b"\x00")), f_var(2, 2)))
write(T, "find-next-page", b"\x04" + msg(f_len(1, sha(b"\x00")), f_var(2, 2), f_len(3, "6")))
write(T, "find-default-page", b"\x04" + f_len(1, sha(b"\x01")))
write(T, "find-bad-token", b"\x04" + msg(f_len(1, sha(b"\x00")), f_len(3, "next")))
write(T, "find-short-digest", b"\x04" + f_len(1, sha(b"\x00")[:16]))
write(T, "find-unknown-digest", b"\x04" + f_len(1, sha(b"nothing")))
write(T, "verifier-keys", b"\x05")

# sequence: SequenceRequest; the log's entries again, and broken ones.
Q = "sequence"


def seq_entry(e, key):
    return f_len(2, msg(f_len(1, e), f_len(2, key)))


write(Q, "repeats", msg(f_len(1, ORIGIN), seq_entry(entry(3), dedup(3)), seq_entry(entry(4), dedup(4))))
write(Q, "repeat-received-later", msg(f_len(1, ORIGIN), seq_entry(entry(5, 1_800_000_000_000), dedup(5))))
write(Q, "repeat-within-batch", msg(f_len(1, ORIGIN), seq_entry(entry(6), dedup(6)), seq_entry(entry(6), dedup(6))))
write(Q, "key-of-another-entry", msg(f_len(1, ORIGIN), seq_entry(entry(2), dedup(3))))
write(Q, "short-key", msg(f_len(1, ORIGIN), seq_entry(entry(2), dedup(2)[:31])))
write(Q, "trailing-byte", msg(f_len(1, ORIGIN), seq_entry(entry(2) + b"\x00", dedup(2))))
write(Q, "empty-batch", f_len(1, ORIGIN))
write(Q, "other-origin", msg(f_len(1, "vault.example/other"), seq_entry(entry(3), dedup(3))))

# audit_record: RecordRequest.
R = "audit_record"


def ev(event, principal, fields):
    return f_len(
        2,
        msg(f_len(1, event), f_len(2, principal) if principal else None, f_len(3, fields)),
    )


write(R, "evidence-read", msg(f_len(1, ORIGIN), ev("evidence.read", "alice", '{"sha256":"bnRzYw==","size":1}')))
write(R, "auth-denied-anonymous", msg(f_len(1, ORIGIN), ev("auth.denied", "", '{"code":"UNAUTHENTICATED","reason":"expired","count":3}')))
write(R, "two-events", msg(f_len(1, ORIGIN), ev("evidence.read", "alice", "{}"), ev("evidence.erased", "bob", '{"reason":"court order"}')))
write(R, "unwitnessed-event", msg(f_len(1, ORIGIN), ev("checkpoint.signed", "alice", "{}")))
write(R, "reserved-member", msg(f_len(1, ORIGIN), ev("evidence.read", "alice", '{"time":"now"}')))
write(R, "fields-not-object", msg(f_len(1, ORIGIN), ev("evidence.read", "alice", "[1,2]")))
write(R, "second-event-bad", msg(f_len(1, ORIGIN), ev("evidence.read", "alice", "{}"), ev("evidence.read", "alice", "{")))
write(R, "no-events", f_len(1, ORIGIN))
write(R, "other-origin", msg(f_len(1, "vault.example/other"), ev("evidence.read", "alice", "{}")))

# signer: first byte 0 SignCheckpoint, 1 GetVerifierKeys, 2 GetSignedHead.
# The signer has signed the head of size 7 (SIGNED_SIZE in src/world.rs).
G = "signer"


def head(size, r):
    return msg(f_var(1, size) if size else None, f_len(2, r))


def sign(origin, old, new, proof=()):
    return b"\x00" + msg(
        f_len(1, origin) if origin else None,
        f_len(2, old) if old is not None else None,
        f_len(3, new) if new is not None else None,
        *[f_len(4, p) for p in proof],
    )


p7_20 = subproof(7, LEAVES, True)
write(G, "sign-retry", sign(ORIGIN, head(7, root(7)), head(7, root(7))))
write(G, "sign-extend", sign(ORIGIN, head(7, root(7)), head(20, root(20)), p7_20))
bad = [bytes([p7_20[0][0] ^ 1]) + p7_20[0][1:]] + p7_20[1:]
write(G, "sign-extend-bad-proof", sign(ORIGIN, head(7, root(7)), head(20, root(20)), bad))
write(G, "sign-stale-old-head", sign(ORIGIN, head(1, root(1)), head(20, root(20)), subproof(1, LEAVES, True)))
write(G, "sign-fork", sign(ORIGIN, head(7, root(7)), head(7, root(6))))
write(G, "sign-rollback", sign(ORIGIN, head(7, root(7)), head(1, root(1))))
write(G, "sign-short-root", sign(ORIGIN, head(7, root(7)), head(7, root(7)[:31])))
write(G, "sign-no-old-head", sign(ORIGIN, None, head(7, root(7))))
write(G, "sign-no-origin", sign("", head(7, root(7)), head(7, root(7))))
write(G, "sign-long-proof-hash", sign(ORIGIN, head(7, root(7)), head(20, root(20)), [p7_20[0] + b"\x00"] + p7_20[1:]))
write(G, "sign-unknown-origin", sign("vault.example/other", head(0, sha(b"")), head(1, root(1))))
write(G, "sign-audit-first", sign(AUDIT, head(0, sha(b"")), head(3, root(3))))
write(G, "keys", b"\x01" + f_len(1, ORIGIN))
write(G, "keys-audit", b"\x01" + f_len(1, AUDIT))
write(G, "keys-unknown-origin", b"\x01" + f_len(1, "vault.example/other"))
write(G, "keys-no-origin", b"\x01")
write(G, "head", b"\x02" + f_len(1, ORIGIN))
write(G, "head-audit", b"\x02" + f_len(1, AUDIT))
write(G, "head-unknown-origin", b"\x02" + f_len(1, "vault.example/other"))
write(G, "head-no-origin", b"\x02")

# evidence: first byte 0 GetEvidence, 1 EraseEvidence. Custody holds the
# evidence [0] and [1] (STORED_EVIDENCE in src/world.rs).
E = "evidence"
write(E, "get", b"\x00" + f_len(1, sha(b"\x01")))
write(E, "get-never-uploaded", b"\x00" + f_len(1, sha(b"nothing")))
write(E, "get-short-digest", b"\x00" + f_len(1, sha(b"\x00")[:20]))
write(E, "erase", b"\x01" + msg(f_len(1, sha(b"\x00")), f_len(2, "  court order 2026/17  ")))
write(E, "erase-never-uploaded", b"\x01" + msg(f_len(1, sha(b"nothing")), f_len(2, "court order")))
write(E, "erase-blank-reason", b"\x01" + msg(f_len(1, sha(b"\x00")), f_len(2, " \t ")))
write(E, "erase-long-reason", b"\x01" + msg(f_len(1, sha(b"\x00")), f_len(2, "r" * 1025)))
write(E, "erase-short-digest", b"\x01" + msg(f_len(1, sha(b"\x00")[:31]), f_len(2, "court order")))
