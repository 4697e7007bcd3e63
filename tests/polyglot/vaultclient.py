"""A Python (grpcio) client of the vault, shared by the tests and bench_stream.py.

The gRPC stubs are generated from `proto/evault/v1/` into a directory the
caller chooses (a temporary one), every time: they are never checked in, so
they cannot drift from the contract.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import struct
import sys
import time
import types
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO_ROOT / "proto"


# --- stubs -------------------------------------------------------------------


def generate_stubs(out_dir: Path) -> types.SimpleNamespace:
    """Compiles every `proto/evault/v1/*.proto` into `out_dir` and imports them.

    Returns a namespace with the modules `log_pb2`, `ingest_pb2` and
    `ingest_pb2_grpc` (and the others, by the same naming)."""
    from grpc_tools import protoc  # imported here: a missing grpcio-tools fails loudly

    sources = sorted((PROTO_DIR / "evault" / "v1").glob("*.proto"))
    if not sources:
        raise RuntimeError(f"no .proto files under {PROTO_DIR}/evault/v1")
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_DIR)) for p in sources),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({status}): {' '.join(args)}")
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    importlib.invalidate_caches()
    modules = {}
    for source in sources:
        stem = source.stem
        modules[f"{stem}_pb2"] = importlib.import_module(f"evault.v1.{stem}_pb2")
        grpc_module = out_dir / "evault" / "v1" / f"{stem}_pb2_grpc.py"
        if grpc_module.exists():
            modules[f"{stem}_pb2_grpc"] = importlib.import_module(f"evault.v1.{stem}_pb2_grpc")
    for name in ("log_pb2", "ingest_pb2", "ingest_pb2_grpc"):
        if name not in modules:
            raise RuntimeError(f"the generated stubs lack {name}")
    return types.SimpleNamespace(**modules)


def grpc_target(url: str) -> str:
    """`http://127.0.0.1:7400` -> `127.0.0.1:7400` (plaintext HTTP/2)."""
    for scheme in ("http://", "https://"):
        if url.startswith(scheme):
            url = url[len(scheme):]
    return url.rstrip("/")


# --- statements ----------------------------------------------------------------


def evidence_text(run_tag: str, n: int) -> bytes:
    """The (never uploaded) evidence of statement `n`: unique per run and n."""
    return f"polyglot evidence {run_tag} #{n}".encode()


def statement_name(n: int) -> str:
    return f"py-{n}.txt"


def requests(stubs: types.SimpleNamespace, run_tag: str, count: int) -> Iterator:
    """`count` AppendStreamRequests for fresh evidence, request ids 0..count-1.

    A generator: grpc-python writes each message it yields as its own
    HTTP/2 DATA frame, one after another, which is what these tests need."""
    AppendStreamRequest = stubs.ingest_pb2.AppendStreamRequest
    EvidenceStatement = stubs.log_pb2.EvidenceStatement
    for n in range(count):
        evidence = evidence_text(run_tag, n)
        yield AppendStreamRequest(
            request_id=n,
            statement=EvidenceStatement(
                sha256=hashlib.sha256(evidence).digest(),
                size=len(evidence),
                media_type="text/plain",
                name=statement_name(n),
            ),
        )


# --- receipts --------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes


def parse_checkpoint(note: bytes) -> CheckpointBody:
    """The body of a C2SP checkpoint note: origin, size, base64 root hash."""
    lines = note.split(b"\n")
    if len(lines) < 4:
        raise ValueError(f"checkpoint note has {len(lines)} lines: {note!r}")
    origin = lines[0].decode("utf-8")
    if not lines[1].isdigit():
        raise ValueError(f"checkpoint size line is not a number: {lines[1]!r}")
    size = int(lines[1])
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError(f"checkpoint root is {len(root)} bytes, not 32")
    if b"\n\n" not in note:
        raise ValueError("checkpoint note has no blank line before its signatures")
    return CheckpointBody(origin, size, root)


def decode_entry(b: bytes) -> dict:
    """The evidence entry codec of docs/entry-format.md (version 1)."""
    if not b or b[0] != 1:
        raise ValueError("unsupported entry version")
    digest = b[1:33]
    size, received_ms = struct.unpack(">QQ", b[33:49])
    i = 49

    def s() -> str:
        nonlocal i
        (n,) = struct.unpack(">H", b[i:i + 2])
        i += 2
        v = b[i:i + n]
        i += n
        if len(v) != n:
            raise ValueError("truncated entry")
        return v.decode("utf-8")

    media_type, name, principal = s(), s(), s()
    (count,) = struct.unpack(">H", b[i:i + 2])
    i += 2
    labels = [(s(), s()) for _ in range(count)]
    if i != len(b):
        raise ValueError("trailing bytes after the entry")
    return dict(sha256=digest, size=size, received_ms=received_ms,
                media_type=media_type, name=name, principal=principal,
                labels=labels)


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(index: int, size: int, leaf_hash: bytes, proof) -> bytes:
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to."""
    if index >= size:
        raise ValueError(f"index {index} is not below tree size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if len(p) != 32:
            raise ValueError(f"proof hash of {len(p)} bytes")
        if sn == 0:
            raise ValueError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof too short")
    return r


def check_receipt(receipt, *, origin: str, run_tag: str, request_id: int) -> None:
    """A thorough check of one receipt: the checkpoint body, the entry (it is
    this request's statement) and the inclusion proof against the root.
    (The checkpoint's signature needs the verifier key and Ed25519, which
    `evault verify` checks; not repeated here.)"""
    cp = parse_checkpoint(receipt.checkpoint)
    assert cp.origin == origin, f"checkpoint origin {cp.origin!r}, expected {origin!r}"
    assert receipt.index < cp.size, f"index {receipt.index} not below size {cp.size}"
    entry = decode_entry(receipt.entry)
    evidence = evidence_text(run_tag, request_id)
    assert entry["sha256"] == hashlib.sha256(evidence).digest(), "entry names other evidence"
    assert entry["size"] == len(evidence)
    assert entry["media_type"] == "text/plain"
    assert entry["name"] == statement_name(request_id)
    assert entry["principal"], "entry names no principal"
    leaf = hashlib.sha256(b"\x00" + receipt.entry).digest()
    root = root_from_inclusion_proof(receipt.index, cp.size, leaf, list(receipt.inclusion_proof))
    assert root == cp.root, f"inclusion proof of index {receipt.index} does not lead to the root"


# --- one AppendStream ----------------------------------------------------------------


@dataclass(repr=False)
class StreamResult:
    """What came back on one AppendStream. Only small things are kept for
    every response (request id order, index); whole receipts only for the
    sampled request ids."""

    count: int
    answered: int = 0
    receipts: int = 0
    indices: array = field(default_factory=lambda: array("Q"))
    error_count: int = 0
    errors: list = field(default_factory=list)  # first few (request_id, code, message)
    problem_count: int = 0
    problems: list = field(default_factory=list)  # first few protocol violations
    samples: dict = field(default_factory=dict)  # request_id -> Receipt
    code: object = None  # grpc.StatusCode at the end
    details: str = ""
    debug_error: str = ""
    elapsed: float = 0.0
    longest_gap: float = 0.0  # longest wait between two responses, seconds
    longest_gap_after: int = 0  # responses received before that wait

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 20:
            self.problems.append(text)

    def __repr__(self) -> str:
        return f"StreamResult({self.summary()})"

    def summary(self) -> str:
        return (
            f"{self.answered} of {self.count} answered ({self.receipts} receipts, "
            f"{self.error_count} errors, {self.problem_count} protocol problems) "
            f"in {self.elapsed:.1f} s; status {self.code} {self.details!r}; "
            f"longest wait {self.longest_gap:.2f} s after {self.longest_gap_after}; "
            f"first errors {self.errors[:5]}; first problems {self.problems[:5]}"
        )


def run_stream(
    stubs: types.SimpleNamespace,
    target: str,
    token: str,
    count: int,
    *,
    run_tag: str,
    origin: str | None = None,
    timeout: float = 300.0,
    sample_ids=(),
    at_receipts: dict[int, Callable[[], None]] | None = None,
    result: StreamResult | None = None,
) -> StreamResult:
    """Sends `count` fresh statements over one AppendStream to `target`
    (host:port) and reads every response.

    Every response is checked as it comes: it answers the next request in
    order, exactly once, and a receipt's checkpoint names `origin` (when
    given) and covers its index. `at_receipts` maps a receipt count to an
    action run when that many receipts have come back (e.g. stopping a
    process mid-stream). `result`, when given, is filled as responses come,
    for another thread to watch the stream's progress."""
    import grpc

    result = result if result is not None else StreamResult(count=count)
    pending = dict(at_receipts or {})
    wanted = set(sample_ids)
    seen = bytearray(count)
    last_checkpoint = None
    last_body = None
    channel = grpc.insecure_channel(target)
    try:
        stub = stubs.ingest_pb2_grpc.IngestServiceStub(channel)
        call = stub.AppendStream(
            requests(stubs, run_tag, count),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=timeout,
        )
        started = last = time.monotonic()
        try:
            for response in call:
                now = time.monotonic()
                if now - last > result.longest_gap:
                    result.longest_gap = now - last
                    result.longest_gap_after = result.answered
                last = now
                rid = response.request_id
                if rid != result.answered:
                    result.problem(f"response {result.answered} answers request {rid}")
                if rid >= count:
                    result.problem(f"response for unknown request {rid}")
                elif seen[rid]:
                    result.problem(f"request {rid} answered twice")
                else:
                    seen[rid] = 1
                result.answered += 1
                outcome = response.WhichOneof("outcome")
                if outcome == "receipt":
                    receipt = response.receipt
                    note = receipt.checkpoint
                    if note != last_checkpoint:
                        try:
                            last_body = parse_checkpoint(note)
                        except ValueError as e:
                            last_body = None
                            result.problem(f"request {rid}: bad checkpoint: {e}")
                        last_checkpoint = note
                    if last_body is not None:
                        if origin is not None and last_body.origin != origin:
                            result.problem(f"request {rid}: checkpoint origin {last_body.origin!r}")
                        if receipt.index >= last_body.size:
                            result.problem(
                                f"request {rid}: index {receipt.index} not below "
                                f"checkpoint size {last_body.size}")
                    result.receipts += 1
                    result.indices.append(receipt.index)
                    if rid in wanted:
                        kept = type(receipt)()
                        kept.CopyFrom(receipt)
                        result.samples[rid] = kept
                    action = pending.pop(result.receipts, None)
                    if action is not None:
                        action()
                elif outcome == "error":
                    result.error_count += 1
                    if len(result.errors) < 20:
                        result.errors.append((rid, response.error.code, response.error.message))
                else:
                    result.problem(f"request {rid}: response with no outcome")
            result.code = call.code()
            result.details = call.details() or ""
        except grpc.RpcError as e:
            result.code = e.code()
            result.details = e.details() or ""
            debug = getattr(e, "debug_error_string", None)
            result.debug_error = debug() if callable(debug) else ""
        result.elapsed = time.monotonic() - started
        if time.monotonic() - last > result.longest_gap:
            result.longest_gap = time.monotonic() - last
            result.longest_gap_after = result.answered
    finally:
        channel.close()
    return result
