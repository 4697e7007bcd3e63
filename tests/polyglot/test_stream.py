"""A grpc-python client streams 100,000 statements over one AppendStream.

grpc-python writes each message of a client stream in its own small HTTP/2
DATA frame. The server must take such a stream to the end, whatever the
number of frames, with every statement answered by a receipt; and when a
role behind the gateway is lost, the stream must end with UNAVAILABLE (which
a client knows to retry), not UNKNOWN or INTERNAL.
"""

from __future__ import annotations

import signal
import threading

import grpc

import vaultclient

STATEMENTS = 100_000
# The stream's gRPC deadline: a hang fails the test instead of blocking CI.
STREAM_DEADLINE = 300.0
# Where something is done to a role mid-stream: after this many receipts.
MID_STREAM = 20_000
SIGNER_STALL_SECONDS = 3.0
# Request ids whose receipts are checked in full.
SAMPLES = (0, 1, 4095, 4096, 4097, MID_STREAM - 1, MID_STREAM, 65_535, 65_536,
           STATEMENTS // 2, STATEMENTS - 1)


def stream(stubs, vault, run_tag, **kwargs) -> vaultclient.StreamResult:
    result = vaultclient.run_stream(
        stubs, vault.target, vault.token, STATEMENTS, run_tag=run_tag, origin=vault.origin,
        timeout=STREAM_DEADLINE, sample_ids=SAMPLES, **kwargs)
    print(f"AppendStream: {result.summary()}")
    if result.elapsed > 0:
        print(f"  {result.receipts / result.elapsed:,.0f} receipts/s")
    return result


def assert_all_receipts(result: vaultclient.StreamResult, vault, run_tag) -> None:
    """Every statement answered once, in order, by a valid receipt; status OK."""
    code = result.code
    assert code == grpc.StatusCode.OK, (
        f"the stream ended with {code} {result.details!r} after "
        f"{result.answered} of {STATEMENTS} responses ({result.debug_error})")
    assert result.problem_count == 0, f"protocol problems: {result.problems}"
    assert result.error_count == 0, f"{result.error_count} error outcomes, first: {result.errors}"
    assert result.answered == STATEMENTS
    assert result.receipts == STATEMENTS
    assert len(set(result.indices)) == STATEMENTS, "two receipts share an index"
    assert sorted(result.samples) == sorted(SAMPLES)
    for request_id, receipt in result.samples.items():
        vaultclient.check_receipt(receipt, origin=vault.origin, run_tag=run_tag,
                                  request_id=request_id)


def test_python_stream_of_100000_gets_100000_receipts_direct(stubs, vault_up, run_tag):
    result = stream(stubs, vault_up, run_tag)
    assert_all_receipts(result, vault_up, run_tag)
    # A fresh log: the indices are exactly 0..N-1.
    assert min(result.indices) == 0 and max(result.indices) == STATEMENTS - 1


def test_python_stream_of_100000_gets_100000_receipts_through_separate_gateway(
        stubs, four_roles, run_tag):
    result = stream(stubs, four_roles, run_tag)
    assert_all_receipts(result, four_roles, run_tag)
    assert min(result.indices) == 0 and max(result.indices) == STATEMENTS - 1


def test_python_stream_of_100000_gets_100000_receipts_while_the_signer_stalls(
        stubs, four_roles, run_tag):
    signer = four_roles.processes["signer"]
    resumed = threading.Event()
    progress = vaultclient.StreamResult(count=STATEMENTS)
    answered_at_resume = []

    def resume():
        if not resumed.is_set():
            resumed.set()
            answered_at_resume.append(progress.answered)
            signer.signal(signal.SIGCONT)

    timer = threading.Timer(SIGNER_STALL_SECONDS, resume)
    stalled = []

    def stall():
        signer.signal(signal.SIGSTOP)
        stalled.append(True)
        timer.start()

    try:
        result = stream(stubs, four_roles, run_tag, at_receipts={MID_STREAM: stall},
                        result=progress)
    finally:
        timer.cancel()
        resume()
    assert stalled, f"the stream never reached {MID_STREAM} receipts: {result.summary()}"
    assert_all_receipts(result, four_roles, run_tag)
    # The stream spanned the stall: receipts were still owed when the
    # signer came back (none can be signed while it is stopped), and they
    # all came. Counted, not timed: receipts already signed and buffered
    # keep arriving for a while after the stop on a loaded machine.
    assert answered_at_resume and answered_at_resume[0] < STATEMENTS, (
        f"the stream had ended before the signer resumed: {result.summary()}")


def test_stream_ended_by_a_lost_ingest_is_unavailable(stubs, four_roles, run_tag):
    ingest = four_roles.processes["ingest"]
    killed = []

    def kill_ingest():
        ingest.signal(signal.SIGKILL)
        killed.append(True)

    result = stream(stubs, four_roles, run_tag, at_receipts={MID_STREAM: kill_ingest})
    assert killed, f"the stream never reached {MID_STREAM} receipts: {result.summary()}"
    code = result.code
    assert code == grpc.StatusCode.UNAVAILABLE, (
        f"the stream ended with {code} {result.details!r}, not UNAVAILABLE, after "
        f"{result.answered} responses ({result.debug_error})")
    # Everything that came before the end is sound.
    assert result.problem_count == 0, f"protocol problems: {result.problems}"
    assert all(code == grpc.StatusCode.UNAVAILABLE.value[0] for _, code, _ in result.errors), (
        f"error outcomes other than UNAVAILABLE: {result.errors}")
    assert MID_STREAM <= result.receipts < STATEMENTS
    assert len(set(result.indices)) == result.receipts, "two receipts share an index"
    for request_id, receipt in result.samples.items():
        vaultclient.check_receipt(receipt, origin=four_roles.origin, run_tag=run_tag,
                                  request_id=request_id)
    assert MID_STREAM - 1 in result.samples
    # The gateway itself lived on (a dead gateway also looks UNAVAILABLE to
    # a client), and its log covers every receipt given out.
    gateway = four_roles.processes["gateway"]
    assert gateway.proc.poll() is None, f"the gateway exited ({gateway.proc.poll()})"
    with grpc.insecure_channel(four_roles.target) as channel:
        checkpoint = stubs.tree_pb2_grpc.TreeServiceStub(channel).GetCheckpoint(
            stubs.tree_pb2.GetCheckpointRequest(), timeout=30).checkpoint
    body = vaultclient.parse_checkpoint(checkpoint.note)
    assert body.origin == four_roles.origin
    assert body.size > max(result.indices)
