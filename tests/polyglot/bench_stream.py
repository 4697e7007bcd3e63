#!/usr/bin/env python3
"""Receipts per second for a grpc-python client streaming to the vault.

Sends --count fresh statements (distinct evidence each, no content) over one
AppendStream, the way a grpc-python client does (one message per HTTP/2 DATA
frame), reads every response and prints the rate at which receipts came
back. The log keeps the entries: run it against a test vault.

    python tests/polyglot/bench_stream.py --target http://127.0.0.1:7400 \\
        --token-file evault-data/dev-token --count 50000 [--json]

Exit status: 0 every statement got a receipt, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vaultclient  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="http://127.0.0.1:7400",
                        help="the vault's gRPC address (gateway or `evault up`)")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="the bearer token")
    token.add_argument("--token-file", default="evault-data/dev-token",
                       help="file holding the bearer token (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10_000, help="statements to send")
    parser.add_argument("--timeout", type=float, default=600.0, help="the stream's deadline, s")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    bearer = args.token if args.token is not None else Path(args.token_file).read_text().strip()
    import grpc

    with tempfile.TemporaryDirectory(prefix="evault-stubs-") as out:
        stubs = vaultclient.generate_stubs(Path(out))
        run_tag = f"bench-{os.getpid()}-{time.time_ns()}"
        result = vaultclient.run_stream(
            stubs, vaultclient.grpc_target(args.target), bearer, args.count,
            run_tag=run_tag, timeout=args.timeout)

    rate = result.receipts / result.elapsed if result.elapsed > 0 else 0.0
    ok = (result.code == grpc.StatusCode.OK and result.receipts == args.count
          and result.error_count == 0 and result.problem_count == 0)
    if args.json:
        print(json.dumps({
            "client": "python-grpcio",
            "grpcio": grpc.__version__,
            "mode": "stream",
            "target": args.target,
            "count": args.count,
            "receipts": result.receipts,
            "errors": result.error_count,
            "problems": result.problem_count,
            "status": result.code.name if result.code is not None else None,
            "details": result.details,
            "seconds": round(result.elapsed, 3),
            "receipts_per_second": round(rate, 1),
            "ok": ok,
        }))
    else:
        print(f"python grpcio {grpc.__version__}, one AppendStream: {result.receipts} receipts "
              f"of {args.count} in {result.elapsed:.2f} s: {rate:,.0f} receipts/s, "
              f"{result.error_count} errors, status {result.code.name} {result.details}".rstrip())
        if result.problems:
            print(f"protocol problems: {result.problems}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
