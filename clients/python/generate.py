#!/usr/bin/env python3
"""Regenerates the gRPC stubs in src/evault_client/pb/ from proto/evault/v1/.

The stubs are committed so that `pip install` needs no code generator; this
script is the only way they change. Its output depends on the grpcio-tools
version (protoc and the gRPC plugin come inside it), so it refuses any other
version than the one pinned in requirements-dev.txt, and CI runs it and
fails when the committed stubs differ.

    python generate.py           # rewrite src/evault_client/pb/
    python generate.py --check   # exit 1 if they are not what it would write
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTO_DIR = PROTO_ROOT / "evault" / "v1"
OUT = HERE / "src" / "evault_client" / "pb"
PIN_FILE = HERE / "requirements-dev.txt"

INIT = '''"""Generated protobuf and gRPC modules of proto/evault/v1 (see generate.py).

`log_pb2` holds the shared messages, `ingest_pb2_grpc.IngestServiceStub`,
`tree_pb2_grpc.TreeServiceStub` and `evidence_pb2_grpc.EvidenceServiceStub`
the public services.
"""
'''

# protoc writes imports as the .proto files import each other
# ("evault/v1/log.proto" -> `from evault.v1 import log_pb2`), which would
# need a top-level `evault` package; inside evault_client.pb they are
# siblings, so the imports become relative.
IMPORT = re.compile(r"^from evault\.v1 import (\w+) as (\w+)$", re.MULTILINE)


def pinned_version() -> str:
    for line in PIN_FILE.read_text().splitlines():
        m = re.match(r"^grpcio-tools==(\S+)", line.strip())
        if m:
            return m.group(1)
    sys.exit(f"{PIN_FILE}: no grpcio-tools==VERSION line")


def generate(out: Path) -> None:
    try:
        import grpc_tools
        from grpc_tools import protoc
        from importlib.metadata import version
    except ImportError:
        sys.exit(f"grpcio-tools is not installed: pip install -r {PIN_FILE}")
    want, have = pinned_version(), version("grpcio-tools")
    if have != want:
        sys.exit(f"grpcio-tools {have} is installed; the stubs are made with {want} "
                 f"(pip install -r {PIN_FILE})")
    sources = sorted(PROTO_DIR.glob("*.proto"))
    if not sources:
        sys.exit(f"no .proto files in {PROTO_DIR}")
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={well_known}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(PROTO_ROOT)) for p in sources),
        ]
        if protoc.main(args) != 0:
            sys.exit("protoc failed: " + " ".join(args))
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.py"):
            old.unlink()
        (out / "__init__.py").write_text(INIT)
        for made in sorted((Path(tmp) / "evault" / "v1").glob("*.py")):
            text = IMPORT.sub(r"from . import \1 as \2", made.read_text())
            if "evault.v1 import" in text:
                sys.exit(f"{made.name}: an import protoc wrote was not made relative")
            (out / made.name).write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed stubs instead of writing them")
    args = parser.parse_args()
    if not args.check:
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "pb"
        generate(fresh)
        want = {p.name: p.read_bytes() for p in fresh.glob("*.py")}
        have = {p.name: p.read_bytes() for p in OUT.glob("*.py")} if OUT.is_dir() else {}
    stale = sorted(n for n in want.keys() | have.keys() if want.get(n) != have.get(n))
    if stale:
        print(f"{OUT} differs from the stubs proto/ gives: {', '.join(stale)}; "
              f"run python {Path(__file__).name} and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
