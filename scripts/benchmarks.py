#!/usr/bin/env python3
"""The vault's benchmark figures, as docs/benchmarks.md reports them.

Starts a release `evault up` for real (embedded store, then PostgreSQL in a
schema of its own), drives it with `evault bench` (and, for a client in
another language, tests/polyglot/bench_stream.py), and prints the median of
--runs runs of every measurement, each with the ratio to a baseline taken in
the same run: a raw PostgreSQL COPY of rows shaped like the vault's
(`evault bench --baseline-copy`), the Rust client for the Python one, the
target rate for an open-loop run.

    cargo build --release
    python3 scripts/benchmarks.py [--runs 3] [--scale 1000000] [--json out.json]

Standard library only, except the Python client run, which needs the
packages of tests/polyglot/requirements.txt (--python names that
interpreter; without it that measurement is left out, and says so).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/test"


class Vault:
    """A running `evault up`, killed when stopped."""

    def __init__(self, evault: str, data: Path, database_url: str | None, *extra: str):
        args = [evault, "up", "--listen", "127.0.0.1:0", "--data-dir", str(data), *extra]
        if database_url:
            args += ["--database-url", database_url]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, "RUST_LOG": "warn"})
        self.url = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            raise SystemExit(f"evault up exited before listening ({args})")
        self.token_file = data / "dev-token"

    def serving_after(self) -> float:
        """Seconds from the process's start until /checkpoint answers."""
        while True:
            try:
                with urllib.request.urlopen(self.url + "/checkpoint", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit("evault up died while starting")
            time.sleep(0.005)

    def peak_rss_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
        return kib / 1024

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def bench(evault: str, vault: Vault, *args: str) -> dict:
    out = subprocess.run([evault, "bench", "--server", vault.url, "--token-file",
                          str(vault.token_file), "--json", *args],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"evault bench {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def python_stream(python: str, vault: Vault, count: int) -> dict:
    out = subprocess.run([python, str(ROOT / "tests/polyglot/bench_stream.py"), "--target",
                          vault.url, "--token-file", str(vault.token_file), "--count",
                          str(count), "--json"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bench_stream.py failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def psql(database_url: str, sql: str) -> str:
    return subprocess.run(["psql", "-X", "-q", "-t", "-A", database_url, "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


class Schema:
    """A PostgreSQL schema of the run's own, and a URL that uses only it."""

    def __init__(self, database_url: str, name: str):
        self.admin = database_url
        self.name = name
        psql(database_url, f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
        sep = "&" if "?" in database_url else "?"
        self.url = f"{database_url}{sep}options=-csearch_path%3D{name}"

    def drop(self) -> None:
        psql(self.admin, f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


def fill(evault: str, vault: Vault, size: int, chunk: int = 100_000) -> None:
    """Streams fresh statements until the log holds `size` entries."""
    have = current_size(vault)
    while have < size:
        n = min(chunk, size - have)
        bench(evault, vault, "--mode", "stream", "--count", str(n))
        have += n


def current_size(vault: Vault) -> int:
    try:
        with urllib.request.urlopen(vault.url + "/checkpoint", timeout=5) as r:
            return int(r.read().decode().split("\n")[1])
    except OSError:
        return 0


@contextlib.contextmanager
def fresh_vault(evault: str, db: str, backend: str, data: Path, schema_name: str, *extra: str):
    """A new vault in `data` (and, on PostgreSQL, in a new schema), gone after."""
    schema = Schema(db, schema_name) if backend == "postgres" else None
    vault = Vault(evault, data, schema.url if schema else None, *extra)
    try:
        yield vault
    finally:
        vault.stop()
        if schema:
            schema.drop()


def streamed(evault: str, vault: Vault, db: str) -> dict:
    """One AppendStream of 100,000, beside a COPY of as many rows."""
    return bench(evault, vault, "--mode", "stream", "--count", "100000",
                 "--baseline-copy", "--database-url", db)


def warmed(evault: str, vault: Vault, db: str) -> dict:
    """`streamed`, after 10,000 appends into the same log."""
    bench(evault, vault, "--mode", "stream", "--count", "10000")
    return streamed(evault, vault, db)


def one_run(evault: str, db: str, backend: str, python: str | None, run: int) -> dict:
    """One run of the per-client measurements on a fresh vault."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp, \
            fresh_vault(evault, db, backend, Path(tmp) / "data",
                        f"evault_bench_{os.getpid()}_{run}") as vault:
        copy = ["--baseline-copy", "--database-url", db]
        # One client on an idle vault; the baseline commits one COPY row
        # per transaction, what a single durable write costs here.
        results["idle"] = bench(evault, vault, "--mode", "unary", "--concurrency", "1",
                                "--count", "500", *copy, "--batch-size", "1")
        results["stream"] = streamed(evault, vault, db)
        results["unary64"] = bench(evault, vault, "--mode", "unary", "--concurrency", "64",
                                   "--count", "30000", *copy)
        results["open5000"] = bench(evault, vault, "--mode", "unary", "--rate", "5000",
                                    "--duration", "15s")
        if python:
            rust = bench(evault, vault, "--mode", "stream", "--count", "100000")
            py = python_stream(python, vault, 100_000)
            results["python"] = {"python": py, "rust": rust}
        results["peak_rss_mib"] = vault.peak_rss_mib()
    return results


def small_stream(evault: str, db: str, backend: str, tmp: Path, run: int) -> dict:
    """100,000 streamed from 10,000 entries, on a vault of its own, fresh."""
    # A log of its own: the log's lock in PostgreSQL is taken by origin,
    # database-wide, and the large log holds the default one.
    with fresh_vault(evault, db, backend, tmp / f"small-{run}",
                     f"evault_small_{os.getpid()}_{run}",
                     "--origin", f"small-{run}.bench.invalid/log") as vault:
        fill(evault, vault, 10_000)
        return streamed(evault, vault, db)


def scale_run(evault: str, db: str, backend: str, scale: int, runs: int) -> dict:
    """Rates at 10,000 entries and at `scale`, proofs at `scale`, restart."""
    results: dict = {"small": [], "large": []}
    with tempfile.TemporaryDirectory() as tmp:
        schema = Schema(db, f"evault_scale_{os.getpid()}") if backend == "postgres" else None
        data = Path(tmp) / "data"
        vault = Vault(evault, data, schema.url if schema else None)
        try:
            fill(evault, vault, scale)
            results["at_scale"] = current_size(vault)
            # Proofs at `scale` itself: random indices over the whole log.
            results["proofs"] = [bench(evault, vault, "--mode", "proofs", "--concurrency",
                                       "64", "--count", "100000") for _ in range(runs)]
            # Streams of 100,000, as a bulk submitter sends them, in pairs
            # taken back to back: one into a fresh log of 10,000 entries
            # (a vault of its own), one into this log at `scale` (growing
            # by 110,000 a pair). The machine's speed drifts by more than
            # the difference measured, so each pair's ratio is taken, and
            # which log goes first alternates. Each stream follows 10,000
            # appends into its own log (the small log's fill, a warm-up for
            # the large one): otherwise whichever ran just before, the
            # other vault and its COPY, would have pushed the large log's
            # pages out of PostgreSQL's buffers, and the order of the pair
            # would decide much of its ratio (docs/benchmarks.md).
            for run in range(runs):
                if run % 2 == 0:
                    small = small_stream(evault, db, backend, Path(tmp), run)
                    large = warmed(evault, vault, db)
                else:
                    large = warmed(evault, vault, db)
                    small = small_stream(evault, db, backend, Path(tmp), run)
                results["small"].append(small)
                results["large"].append(large)
            results["peak_rss_mib"] = vault.peak_rss_mib()
            results["size"] = current_size(vault)
            vault.stop()
            restarts = []
            for _ in range(runs):
                vault = Vault(evault, data, schema.url if schema else None)
                restarts.append(vault.serving_after())
                vault.stop()
            results["restart_s"] = restarts
            if schema:
                total = psql(schema.admin, f"SELECT pg_total_relation_size('{schema.name}.entries')"
                             f" + pg_total_relation_size('{schema.name}.tiles')")
                entry_bytes = psql(schema.admin,
                                   f"SELECT avg(length(entry)) FROM {schema.name}.entries")
                results["pg_bytes"] = {"total": int(total), "entries": results["size"],
                                       "entry_bytes": float(entry_bytes)}
        finally:
            vault.stop()
            if schema:
                schema.drop()
    return results


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(backend: str, runs: list[dict], scale: dict | None) -> None:
    print(f"\n## {backend}: medians of {len(runs) or len(scale['small'])} runs")

    def line(name: str, key: str, value, extra: str = "") -> None:
        print(f"{name:<34} {value}{extra}")

    if runs:
        idle = [r["idle"] for r in runs]
        line("idle append p50 / p99 (ms)", "idle",
             f"{med([r['latency_ms']['p50'] for r in idle]):.2f} / "
             f"{med([r['latency_ms']['p99'] for r in idle]):.2f}",
             f"  (1-row COPY+commit ratio {med([r['ratio'] for r in idle]):.3f})")
        stream = [r["stream"] for r in runs]
        line("stream 100k (/s)", "stream", f"{med([r['rate'] for r in stream]):,.0f}",
             f"  ratio to COPY {med([r['ratio'] for r in stream]):.3f}"
             f" (COPY {med([r['baseline']['rate'] for r in stream]):,.0f}/s)")
        u = [r["unary64"] for r in runs]
        line("unary 64 in flight (/s)", "unary64", f"{med([r['rate'] for r in u]):,.0f}",
             f"  p50 {med([r['latency_ms']['p50'] for r in u]):.1f} ms,"
             f" p99 {med([r['latency_ms']['p99'] for r in u]):.1f} ms,"
             f" ratio to COPY {med([r['ratio'] for r in u]):.3f}")
        o = [r["open5000"] for r in runs]
        line("open loop 5000/s", "open5000", f"{med([r['rate'] for r in o]):,.0f}/s achieved",
             f"  p50 {med([r['latency_ms']['p50'] for r in o]):.1f} ms,"
             f" p99 {med([r['latency_ms']['p99'] for r in o]):.1f} ms,"
             f" max {med([r['latency_ms']['max'] for r in o]):.1f} ms,"
             f" ratio to target {med([r['rate'] / 5000 for r in o]):.3f}")
        if all("python" in r for r in runs):
            p = [r["python"] for r in runs]
            line("python grpcio stream 100k (/s)", "python",
                 f"{med([x['python']['receipts_per_second'] for x in p]):,.0f}",
                 f"  ratio to the Rust client {med([x['python']['receipts_per_second'] / x['rust']['rate'] for x in p]):.3f}"
                 f" (Rust {med([x['rust']['rate'] for x in p]):,.0f}/s)")
        line("peak RSS (MiB)", "rss", f"{max(r['peak_rss_mib'] for r in runs):.0f}")
    if scale:
        small, large = scale["small"], scale["large"]
        s_rate, l_rate = med([r["rate"] for r in small]), med([r["rate"] for r in large])
        line("stream 100k from 10k entries (/s)", "small", f"{s_rate:,.0f}",
             f"  ratio to COPY {med([r['ratio'] for r in small]):.3f}")
        line(f"stream 100k from {scale['at_scale']:,} (/s)", "large", f"{l_rate:,.0f}",
             f"  ratio to COPY {med([r['ratio'] for r in large]):.3f}")
        pairs = [lg["rate"] / sm["rate"] for sm, lg in zip(small, large)]
        line("  at scale / at 10k, by pair", "pairs", f"{med(pairs):.3f}",
             f"  (pairs: {', '.join(f'{x:.3f}' for x in pairs)};"
             f" ratio of medians {l_rate / s_rate:.3f})")
        pr = scale["proofs"]
        line(f"proofs at {scale['at_scale']:,} (/s)", "proofs", f"{med([r['rate'] for r in pr]):,.0f}",
             f"  p50 {med([r['latency_ms']['p50'] for r in pr]):.1f} ms,"
             f" p99 {med([r['latency_ms']['p99'] for r in pr]):.1f} ms")
        line("restart to serving (s)", "restart", f"{med(scale['restart_s']):.3f}",
             f"  (all: {', '.join(f'{x:.3f}' for x in scale['restart_s'])})")
        line("peak RSS through the scale run (MiB)", "rss", f"{scale['peak_rss_mib']:.0f}")
        if "pg_bytes" in scale:
            b = scale["pg_bytes"]
            per = b["total"] / b["entries"]
            line("PostgreSQL bytes per entry", "bytes", f"{per:.0f}",
                 f"  = {per / b['entry_bytes']:.2f} x the mean entry ({b['entry_bytes']:.1f} B),"
                 f" entries + tiles, indexes and TOAST included")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evault", default=str(ROOT / "target/release/evault"))
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1_000_000,
                        help="log size of the scale run; 0 leaves it out")
    parser.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    parser.add_argument("--python", help="an interpreter with tests/polyglot's packages")
    parser.add_argument("--json", help="also write every raw result here")
    parser.add_argument("--scale-only", action="store_true",
                        help="only the scale run (rates by log size, proofs, restart, bytes)")
    args = parser.parse_args()
    backends = ["embedded", "postgres"] if args.backend == "both" else [args.backend]
    everything = {}
    for backend in backends:
        runs = [] if args.scale_only else [
            one_run(args.evault, args.database_url, backend, args.python, n)
            for n in range(args.runs)]
        scale = (scale_run(args.evault, args.database_url, backend, args.scale, args.runs)
                 if args.scale else None)
        everything[backend] = {"runs": runs, "scale": scale}
        if args.json:
            Path(args.json).write_text(json.dumps(everything, indent=1))
        report(backend, runs, scale)
    if not args.python:
        print("\n(no --python: the grpc-python client was not measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
