"""The vault's gRPC client: appends that return receipts, and reads of the
log (checkpoints, proofs, entries)."""

from __future__ import annotations

import collections
import os
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import grpc

from . import _evidence
from .checkpoint import Checkpoint
from .entry import Entry, decode_entry
from .errors import AppendError, EvaultError, MalformedError, RpcError
from .pb import (evidence_pb2, evidence_pb2_grpc, ingest_pb2, ingest_pb2_grpc, log_pb2,
                 tree_pb2, tree_pb2_grpc)
from .receipt import Receipt

#: What `evault append` records when no media type is given.
DEFAULT_MEDIA_TYPE = "application/octet-stream"
# Largest message either way, as the Rust client allows: uploads and pages
# of entries.
_MAX_MESSAGE = 64 << 20

Labels = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


@dataclass(frozen=True)
class Statement:
    """One item for `Client.append_many` that needs more than the defaults:
    the evidence (bytes or a file path) and what to record with it. Fields
    left None take `append_many`'s defaults."""

    evidence: Union[bytes, str, "os.PathLike[str]"]
    name: Optional[str] = None
    media_type: Optional[str] = None
    labels: Labels = None
    upload: Optional[bool] = None


@dataclass(frozen=True)
class LogEntry:
    """One entry of the log at its index."""

    index: int
    entry_bytes: bytes

    @property
    def entry(self) -> Entry:
        """The decoded evidence entry (raises `EntryError` if it is not one)."""
        return decode_entry(self.entry_bytes)


@dataclass(frozen=True)
class InclusionProof:
    """An inclusion proof of entry `index` in the tree of `tree_size`
    entries, and the published checkpoint of that size."""

    index: int
    tree_size: int
    hashes: Tuple[bytes, ...]
    checkpoint: Checkpoint


@dataclass(frozen=True)
class ConsistencyProof:
    """A consistency proof from the tree of `first_size` entries to that of
    `second_size`, and the published checkpoint of the second."""

    first_size: int
    second_size: int
    hashes: Tuple[bytes, ...]
    checkpoint: Checkpoint


def _split_target(target: str) -> Tuple[str, Optional[bool]]:
    """`host:port`, and whether the address's scheme asks for TLS (None when
    it has no scheme)."""
    for scheme, tls in (("https://", True), ("http://", False)):
        if target.startswith(scheme):
            return target[len(scheme):].rstrip("/"), tls
    return target, None


def _labels(labels: Labels) -> List["log_pb2.Label"]:
    if labels is None:
        return []
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    # Sent in the caller's order: the vault sorts them and refuses a
    # repeated key, which silently merging here would hide.
    return [log_pb2.Label(key=k, value=v) for k, v in pairs]


def build_statement(evidence, name: Optional[str] = None, media_type: Optional[str] = None,
                    labels: Labels = None, upload: bool = False) -> "log_pb2.EvidenceStatement":
    """The statement `evault append` sends for `evidence`: its SHA-256 and
    size computed here; for a file path, its file name as the name unless
    `name` is given; `application/octet-stream` unless `media_type` is
    given; the bytes themselves only with `upload`."""
    digest, size, content = _evidence.digest(evidence, keep=upload)
    if name is None:
        name = _evidence.file_name(evidence) if _evidence.is_path(evidence) else ""
    statement = log_pb2.EvidenceStatement(
        sha256=digest,
        size=size,
        media_type=DEFAULT_MEDIA_TYPE if media_type is None else media_type,
        name=name,
        labels=_labels(labels),
    )
    if upload:
        statement.content = content
    return statement


def _receipt(wire, duplicate: bool = False) -> Receipt:
    proof = tuple(bytes(h) for h in wire.inclusion_proof)
    if any(len(h) != 32 for h in proof):
        raise EvaultError("the vault sent a proof hash that is not 32 bytes")
    try:
        checkpoint = Checkpoint.parse(wire.checkpoint)
    except MalformedError as e:
        raise EvaultError(f"the vault sent a malformed checkpoint: {e}") from e
    return Receipt(wire.index, bytes(wire.entry), proof, checkpoint, duplicate)


def _checkpoint(wire) -> Checkpoint:
    try:
        return Checkpoint.parse(wire.note)
    except MalformedError as e:
        raise EvaultError(f"the vault sent a malformed checkpoint: {e}") from e


def _digest_arg(sha256: Union[bytes, str]) -> bytes:
    if isinstance(sha256, str):
        try:
            raw = bytes.fromhex(sha256)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise ValueError(f"{sha256!r} is not a SHA-256 digest in hex (64 digits)")
        return raw
    raw = bytes(sha256)
    if len(raw) != 32:
        raise ValueError(f"a SHA-256 digest is 32 bytes, not {len(raw)}")
    return raw


class Client:
    """A connection to the vault's gateway.

    `target` is `host:port` (e.g. "127.0.0.1:7400", plaintext) or a URL
    (`http://...`, or `https://...` for TLS). The bearer token, given
    directly or as the file `evault up` writes (DATA_DIR/dev-token), is
    sent as `authorization` metadata on every call; without one only
    public reads work. `tls_ca` is the PEM file of the CA to trust, which
    turns TLS on; an `https://` target without it trusts the system's CAs.
    `timeout` (seconds) bounds each unary call.

    Every failed call raises `RpcError` with the gRPC status code and the
    vault's message. Use as a context manager, or call `close()`."""

    def __init__(self, target: str, token: Optional[str] = None,
                 token_file: Union[str, "os.PathLike[str]", None] = None,
                 tls_ca: Union[str, "os.PathLike[str]", None] = None,
                 timeout: Optional[float] = 60.0):
        if token is not None and token_file is not None:
            raise ValueError("give token or token_file, not both")
        if token_file is not None:
            with open(token_file, encoding="utf-8") as f:
                token = f.read()
        if token is not None:
            token = token.strip()
            if not token or not all(0x20 < ord(c) < 0x7F for c in token):
                raise ValueError("the token must be non-empty printable ASCII")
        address, scheme_tls = _split_target(target)
        if scheme_tls is False and tls_ca is not None:
            raise ValueError(f"{target}: an http:// address with tls_ca; use https://")
        self.target = address
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ]
        if tls_ca is not None or scheme_tls:
            root = None
            if tls_ca is not None:
                with open(tls_ca, "rb") as f:
                    root = f.read()
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._ingest = ingest_pb2_grpc.IngestServiceStub(self._channel)
        self._tree = tree_pb2_grpc.TreeServiceStub(self._channel)
        self._evidence = evidence_pb2_grpc.EvidenceServiceStub(self._channel)

    # --- plumbing ---------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for calls this class does not wrap."""
        return self._channel

    def _call(self, method: str, fn, request, timeout: Optional[float] = None):
        try:
            return fn(request, metadata=self._metadata,
                      timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as e:
            raise RpcError(method, e.code(), e.details() or "") from None

    # --- writes -----------------------------------------------------------

    def append(self, evidence, name: Optional[str] = None, media_type: Optional[str] = None,
               labels: Labels = None, upload: bool = False) -> Receipt:
        """Logs one piece of evidence (bytes, or a file path) and returns its
        receipt; see `build_statement` for what is sent. Appending the same
        statement again returns the original receipt, with `duplicate`
        set."""
        statement = build_statement(evidence, name, media_type, labels, upload)
        response = self._call("IngestService.Append", self._ingest.Append,
                              ingest_pb2.AppendRequest(statement=statement))
        return _receipt(response.receipt, response.duplicate)

    def append_many(self, items: Iterable, *, media_type: Optional[str] = None,
                    labels: Labels = None, upload: bool = False, raise_errors: bool = True,
                    timeout: Optional[float] = None) -> Iterator[Union[Receipt, AppendError]]:
        """Logs many pieces of evidence over one `AppendStream` and yields
        their receipts in the order of `items`.

        Each item is bytes, a file path, or a `Statement`; `media_type`,
        `labels` and `upload` apply to items that do not say otherwise.
        Items are read and hashed as the stream needs them, so `items` may
        be a generator. A statement the vault refuses raises `AppendError`
        (after the receipts of the items before it), or with
        `raise_errors=False` is yielded as an `AppendError` in its place
        and the stream goes on. A failure of the whole stream raises
        `RpcError`; an item that cannot be read raises its `OSError` once
        the receipts of the items before it are yielded. `timeout` bounds
        the whole stream."""
        sent: collections.deque = collections.deque()
        broken: List[BaseException] = []
        done = threading.Event()

        def requests():
            for position, item in enumerate(items):
                if done.is_set():
                    return
                try:
                    if isinstance(item, Statement):
                        statement = build_statement(
                            item.evidence, item.name,
                            media_type if item.media_type is None else item.media_type,
                            labels if item.labels is None else item.labels,
                            upload if item.upload is None else item.upload)
                    else:
                        statement = build_statement(item, None, media_type, labels, upload)
                except Exception as e:
                    # grpc would turn an exception here into an opaque
                    # cancelled call; keep it for the caller instead and
                    # end the stream, so earlier receipts still arrive.
                    broken.append(e)
                    return
                sent.append((position, statement.name or None))
                yield ingest_pb2.AppendStreamRequest(request_id=position, statement=statement)

        call = self._ingest.AppendStream(requests(), metadata=self._metadata, timeout=timeout)
        try:
            for response in call:
                if not sent:
                    raise EvaultError(
                        f"the vault answered request {response.request_id}, which was not sent")
                position, name = sent.popleft()
                if response.request_id != position:
                    raise EvaultError(f"the vault answered request {response.request_id} "
                                      f"where request {position} was due")
                outcome = response.WhichOneof("outcome")
                if outcome == "receipt":
                    yield _receipt(response.receipt, response.duplicate)
                elif outcome == "error":
                    code = _status_code(response.error.code)
                    error = AppendError(code, response.error.message, position, name)
                    if raise_errors:
                        raise error
                    yield error
                else:
                    raise EvaultError(f"the vault sent an empty answer to request {position}")
        except grpc.RpcError as e:
            raise RpcError("IngestService.AppendStream", e.code(), e.details() or "") from None
        finally:
            done.set()
            call.cancel()
        if broken:
            raise broken[0]
        if sent:
            raise EvaultError(f"the stream ended with {len(sent)} statements unanswered")

    # --- reads ------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The latest published checkpoint (not verified: call its
        `verify(vkey)`)."""
        response = self._call("TreeService.GetCheckpoint", self._tree.GetCheckpoint,
                              tree_pb2.GetCheckpointRequest())
        return _checkpoint(response.checkpoint)

    def inclusion_proof(self, index: int, size: int = 0) -> InclusionProof:
        """The inclusion proof of entry `index` in the published tree of
        `size` entries (0: the latest)."""
        response = self._call(
            "TreeService.GetInclusionProof", self._tree.GetInclusionProof,
            tree_pb2.GetInclusionProofRequest(index=index, tree_size=size))
        return InclusionProof(response.index, response.tree_size,
                              tuple(bytes(h) for h in response.inclusion_proof),
                              _checkpoint(response.checkpoint))

    def consistency_proof(self, old: int, new: int = 0) -> ConsistencyProof:
        """The consistency proof from the tree of `old` entries to the
        published tree of `new` entries (0: the latest)."""
        response = self._call(
            "TreeService.GetConsistencyProof", self._tree.GetConsistencyProof,
            tree_pb2.GetConsistencyProofRequest(first_size=old, second_size=new))
        return ConsistencyProof(response.first_size, response.second_size,
                                tuple(bytes(h) for h in response.consistency_proof),
                                _checkpoint(response.checkpoint))

    def entries(self, start: int, count: int) -> List[LogEntry]:
        """Entries `start` .. `start + count - 1`, fewer when the latest
        checkpoint ends first; fetched page by page."""
        out: List[LogEntry] = []
        while len(out) < count:
            # The vault sends at most 1000 a call, so a shorter page than
            # asked for ends at the latest checkpoint.
            wanted = min(count - len(out), 1000)
            response = self._call(
                "TreeService.GetEntries", self._tree.GetEntries,
                tree_pb2.GetEntriesRequest(start=start + len(out), count=wanted))
            for e in response.entries:
                if e.index != start + len(out):
                    raise EvaultError(f"the vault sent entry {e.index} where "
                                      f"{start + len(out)} was due")
                out.append(LogEntry(e.index, bytes(e.entry)))
            if len(response.entries) < wanted:
                break
        return out[:count]

    def receipt(self, index: int, size: int = 0) -> Receipt:
        """The receipt of entry `index` against the published tree of
        `size` entries (0: the latest), as `evault proof --index` writes
        it."""
        proof = self.inclusion_proof(index, size)
        entries = self.entries(index, 1)
        if not entries or entries[0].index != index:
            raise EvaultError(f"the vault did not return entry {index}")
        return Receipt(index, entries[0].entry_bytes, proof.hashes, proof.checkpoint)

    def find(self, sha256: Union[bytes, str]) -> List[LogEntry]:
        """Every entry whose evidence has this SHA-256 digest (32 bytes, or
        64 hex digits), in index order."""
        digest = _digest_arg(sha256)
        out: List[LogEntry] = []
        token = ""
        while True:
            response = self._call(
                "TreeService.FindEntries", self._tree.FindEntries,
                tree_pb2.FindEntriesRequest(sha256=digest, page_size=1000, page_token=token))
            out.extend(LogEntry(e.index, bytes(e.entry)) for e in response.entries)
            token = response.next_page_token
            if not token:
                return out

    def verifier_keys(self) -> List[str]:
        """The keys that sign the log's checkpoints now, as the vault says.
        Trust one only after comparing it with a copy from a channel you
        trust (e.g. DATA_DIR/verifier-key)."""
        response = self._call(
            "TreeService.GetVerifierKeys", self._tree.GetVerifierKeys,
            tree_pb2.TreeServiceGetVerifierKeysRequest())
        return list(response.verifier_keys)

    def get_evidence(self, sha256: Union[bytes, str]) -> bytes:
        """The uploaded bytes of the evidence with this digest (needs the
        `evault.read` scope; the read is recorded in the audit trail)."""
        response = self._call(
            "EvidenceService.GetEvidence", self._evidence.GetEvidence,
            evidence_pb2.GetEvidenceRequest(sha256=_digest_arg(sha256)))
        return bytes(response.content)


_CODES: Dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def _status_code(number: int):
    """The grpc.StatusCode of a status number (the number itself if unknown)."""
    return _CODES.get(number, number)
