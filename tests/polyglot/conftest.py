"""Fixtures: the gRPC stubs, and the vault started for real from its binary.

Every server process is started on port 0 and tells us where it listens on
its standard output; both its output streams are drained by threads so it
never blocks writing, the last lines are kept, and they are attached to the
report of a test that fails. Every process is killed (SIGKILL) when its test
ends, whatever the outcome, and PostgreSQL schemas are dropped after.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import vaultclient

REPO_ROOT = vaultclient.REPO_ROOT
# Longest a test may run, setup and teardown included, before it is failed.
# The stream's own gRPC deadline (STREAM_DEADLINE, tests) comes first.
TEST_TIMEOUT = 360
START_TIMEOUT = 60.0
LOG_LINES = 300


# --- processes ---------------------------------------------------------------

_running: set = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_running):
        proc.kill()


class VaultProcess:
    """One `evault` server process, its output drained and remembered."""

    def __init__(self, name: str, argv: list[str], cwd: Path):
        self.name = name
        self.argv = argv
        self.url: str | None = None
        self.stdout: collections.deque = collections.deque(maxlen=LOG_LINES)
        self.stderr: collections.deque = collections.deque(maxlen=LOG_LINES)
        self._listening = threading.Event()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVAULT_")}
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _running.add(self)
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.stdout, True),
                             name=f"{name}-stdout", daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr, False),
                             name=f"{name}-stderr", daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self, stream, lines: collections.deque, announces: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if announces and self.url is None and "http://" in line:
                self.url = line[line.index("http://"):].split()[0]
                self._listening.set()
        stream.close()
        self._listening.set()  # exited: stop waiting

    def wait_listening(self, timeout: float = START_TIMEOUT) -> str:
        self._listening.wait(timeout)
        if self.url is None:
            state = "exited with %s" % self.proc.poll() if self.proc.poll() is not None \
                else f"said nothing in {timeout:.0f} s"
            self.kill()
            raise RuntimeError(f"evault {self.name} did not start: it {state}\n{self.logs()}")
        return self.url

    @property
    def target(self) -> str:
        assert self.url, f"{self.name} is not listening"
        return vaultclient.grpc_target(self.url)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()  # SIGKILL: also ends a stopped process
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for t in self._threads:
            t.join(timeout=5)
        _running.discard(self)

    def logs(self) -> str:
        code = self.proc.poll()
        state = "running" if code is None else f"exit status {code}"
        return "\n".join([
            f"$ {' '.join(self.argv)}   (pid {self.proc.pid}, {state})",
            f"--- stdout (last {LOG_LINES} lines)", *self.stdout,
            f"--- stderr (last {LOG_LINES} lines)", *self.stderr,
        ])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for proc in getattr(item, "_evault_processes", []):
            report.sections.append((f"evault {proc.name} (pid {proc.pid})", proc.logs()))
    return report


# --- session fixtures ------------------------------------------------------------


@pytest.fixture(scope="session")
def evault_bin() -> Path:
    """The built binary: EVAULT_BIN, or target/debug/evault. Never skipped."""
    path = Path(os.environ.get("EVAULT_BIN", "target/debug/evault"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no evault binary at {path}: run `cargo build -p evault` "
                    f"or set EVAULT_BIN", pytrace=False)
    return path


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    """Python stubs of proto/evault/v1, generated now into a temporary directory."""
    return vaultclient.generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")


# --- per-test fixtures ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def _overall_timeout(request):
    """Fails a test that runs past TEST_TIMEOUT seconds instead of hanging CI."""

    def expired(signum, frame):
        raise TimeoutError(f"{request.node.name} ran for more than {TEST_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def spawn(request, evault_bin, tmp_path):
    """Starts `evault <args>` and waits until it says where it listens."""
    started: list[VaultProcess] = []
    request.node._evault_processes = started
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)

    def start(name: str, *args: str) -> VaultProcess:
        proc = VaultProcess(name, [str(evault_bin), *args], cwd)
        started.append(proc)
        proc.wait_listening()
        return proc

    yield start
    for proc in reversed(started):
        proc.kill()


_schemas = itertools.count()


def _psql(url: str, sql: str) -> None:
    try:
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
            check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
        )
    except FileNotFoundError:
        pytest.fail("psql is required (PostgreSQL's client) to make a schema per test",
                    pytrace=False)


@pytest.fixture
def pg_schema(database_url):
    """A fresh PostgreSQL schema and a URL whose sessions see only it
    (as crates/test-support does); dropped after the test."""
    name = f"evault_polyglot_{os.getpid()}_{next(_schemas)}"
    try:
        _psql(database_url, f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
    except subprocess.CalledProcessError as e:
        pytest.fail(f"PostgreSQL at {database_url} (set DATABASE_URL): "
                    f"{e.stderr.decode(errors='replace')}", pytrace=False)
    sep = "&" if "?" in database_url else "?"
    yield f"{database_url}{sep}options=-c%20search_path%3D{name}"
    _psql(database_url, f"DROP SCHEMA {name} CASCADE")


@dataclass
class Vault:
    """A running vault: where clients go, with what token, for which log."""

    target: str  # host:port of the public gRPC endpoint
    token: str
    origin: str
    processes: dict


@pytest.fixture
def vault_up(spawn, tmp_path) -> Vault:
    """`evault up`: every role in one process, the embedded store."""
    origin = "polyglot.test/direct"
    data = tmp_path / "data"
    proc = spawn("up", "up", "--listen", "127.0.0.1:0", "--data-dir", str(data),
                 "--origin", origin)
    token = (data / "dev-token").read_text().strip()
    assert token, "empty dev-token"
    return Vault(proc.target, token, origin, {"up": proc})


@pytest.fixture
def four_roles(pg_schema, spawn, evault_bin, tmp_path) -> Vault:
    """signer, tree, ingest and gateway as four processes, the log in one
    PostgreSQL schema and the signer's record in a file of its own; clients
    go to the gateway. (pg_schema comes first so that it is dropped after
    the processes are killed.)"""
    origin = "polyglot.test/four-roles"
    key = tmp_path / "signing.key"
    subprocess.run(
        [str(evault_bin), "keygen", "--origin", origin, "--key-file", str(key),
         "--vkey-out", str(tmp_path / "verifier-key")],
        check=True, capture_output=True, timeout=60,
    )
    # A local issuer stands in for the organisation's identity provider.
    issuer = tmp_path / "issuer"
    token = subprocess.run(
        [str(evault_bin), "token", "--data-dir", str(issuer), "--sub", "polyglot",
         "--scope", "evault.append evault.read"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    identity = ("--jwks-file", str(issuer / "jwks.json"), "--jwt-issuer", "evault-local",
                "--jwt-audience", "evault")
    common = ("--origin", origin, "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"))
    log = ("--database-url", pg_schema)
    # The signer keeps its record apart from the log: here a file of its
    # own in the data directory (it refuses the log's database).
    signer = spawn("signer", "serve", "signer", *common, "--key-file", str(key))
    tree = spawn("tree", "serve", "tree", *common, *log, "--signer", signer.url)
    ingest = spawn("ingest", "serve", "ingest", *common, *log, "--tree", tree.url, *identity)
    gateway = spawn("gateway", "serve", "gateway", *common, *log, "--ingest", ingest.url,
                    "--tree", tree.url, *identity)
    return Vault(gateway.target, token, origin,
                 {"signer": signer, "tree": tree, "ingest": ingest, "gateway": gateway})


@pytest.fixture
def run_tag() -> str:
    """Distinguishes this test's evidence from any other's."""
    return f"{os.getpid()}-{time.time_ns()}"
