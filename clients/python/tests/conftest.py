"""Fixtures: where the reference vectors are, and a real vault.

The vault is the `evault` binary (EVAULT_BIN, default target/debug/evault
of this repository) started as `evault up` on port 0 with a temporary data
directory; its address is read from what it prints. Its output is drained
by threads (so it never blocks writing), kept, and attached to the report
of a failing test; it is killed when the test run ends. Nothing is skipped:
a missing binary or vector directory fails the tests that need it.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = CLIENT_DIR.parents[1]
# Reference vectors are read in place from the shared directory beside the
# repository, never copied.
TESTDATA = REPO_ROOT.parent / "shared" / "testdata"
ENTRY_VECTORS = REPO_ROOT / "docs" / "vectors" / "evidence-entry-v1.json"
START_TIMEOUT = 60.0
LOG_LINES = 300


def shared_file(relative: str) -> Path:
    path = TESTDATA / relative
    if not path.exists():
        pytest.fail(f"missing reference data {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def entry_vectors() -> dict:
    if not ENTRY_VECTORS.is_file():
        pytest.fail(f"missing entry vectors {ENTRY_VECTORS}", pytrace=False)
    return json.loads(ENTRY_VECTORS.read_text(encoding="utf-8"))


# --- the vault ----------------------------------------------------------------

_running: set = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_running):
        proc.kill()


class VaultProcess:
    """One `evault` server process, its output drained and remembered."""

    def __init__(self, argv, cwd: Path):
        self.argv = [str(a) for a in argv]
        self.url = None
        self.lines: collections.deque = collections.deque(maxlen=LOG_LINES)
        self._listening = threading.Event()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVAULT_")}
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(self.argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _running.add(self)
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _drain(self, stream, announces: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            for scheme in ("http://", "https://"):
                if announces and self.url is None and scheme in line:
                    self.url = line[line.index(scheme):].split()[0]
                    self._listening.set()
        stream.close()
        self._listening.set()  # exited: stop waiting

    def wait_listening(self) -> str:
        self._listening.wait(START_TIMEOUT)
        if self.url is None:
            self.kill()
            raise RuntimeError(f"evault did not start\n{self.logs()}")
        return self.url

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for t in self._threads:
            t.join(timeout=5)
        _running.discard(self)

    def logs(self) -> str:
        return "\n".join([f"$ {' '.join(self.argv)}", *self.lines])


@pytest.fixture(scope="session")
def evault_bin() -> Path:
    path = Path(os.environ.get("EVAULT_BIN", str(REPO_ROOT / "target" / "debug" / "evault")))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no evault binary at {path}: run `cargo build -p evault` or set EVAULT_BIN",
                    pytrace=False)
    return path


@dataclass
class Vault:
    url: str  # http://host:port, as the vault printed it
    target: str  # host:port
    origin: str
    data_dir: Path
    token_file: Path
    vkey_file: Path
    process: VaultProcess

    @property
    def vkey(self) -> str:
        return self.vkey_file.read_text()


_vaults: list = []


@pytest.fixture(scope="session")
def vault(evault_bin, tmp_path_factory) -> Vault:
    """`evault up` with the embedded store, shared by every test of the run
    (each appends evidence of its own)."""
    root = tmp_path_factory.mktemp("vault")
    data = root / "data"
    origin = "python-client.test/evidence"
    proc = VaultProcess([evault_bin, "up", "--listen", "127.0.0.1:0", "--data-dir", data,
                         "--origin", origin], cwd=root)
    _vaults.append(proc)
    url = proc.wait_listening()
    target = url.split("://", 1)[1].rstrip("/")
    yield Vault(url, target, origin, data, data / "dev-token", data / "verifier-key", proc)
    proc.kill()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and "vault" in getattr(item, "fixturenames", ()):
        for proc in _vaults:
            report.sections.append(("evault up", proc.logs()))
    return report


@pytest.fixture
def client(vault):
    from evault_client import Client

    with Client(vault.target, token_file=vault.token_file) as c:
        yield c


@pytest.fixture
def evault(evault_bin, vault):
    """Runs the `evault` command line; returns the CompletedProcess."""

    def run(*args, check: bool = True):
        done = subprocess.run([str(evault_bin), *map(str, args)], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"evault {' '.join(map(str, args))} exited "
                                 f"{done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    return run
