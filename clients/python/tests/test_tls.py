"""`tls_ca`: the client talks TLS to a gateway whose certificate comes from
`evault dev-certs`, trusting only that CA.

`evault up` serves plaintext only, so the vault here is four processes
(`evault serve signer | tree | ingest | gateway`) with the log in a fresh
PostgreSQL schema at DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/test; `psql` makes and drops the
schema), as tests/polyglot does. Only the gateway's public listener uses
TLS; nothing is skipped when PostgreSQL is missing: the test fails.
"""

from __future__ import annotations

import os
import subprocess

import grpc
import pytest

from conftest import VaultProcess
from evault_client import Client, RpcError, verify_receipt


def psql(url: str, sql: str) -> None:
    try:
        done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        pytest.fail("psql (PostgreSQL's client) is needed to make a schema", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"PostgreSQL at {url} (set DATABASE_URL): {done.stderr}", pytrace=False)


@pytest.fixture
def schema_url():
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    name = f"evault_pyclient_{os.getpid()}"
    psql(url, f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-c%20search_path%3D{name}"
    psql(url, f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def tls_gateway(evault_bin, schema_url, tmp_path):
    origin = "python-client.test/tls"
    started = []

    def run(*args) -> str:
        return subprocess.run([str(evault_bin), *map(str, args)], check=True,
                              capture_output=True, text=True, timeout=60).stdout

    def serve(*args) -> str:
        proc = VaultProcess([evault_bin, "serve", *args], cwd=tmp_path)
        started.append(proc)
        return proc.wait_listening()

    certs = tmp_path / "certs"
    run("dev-certs", "--out", certs)
    key = tmp_path / "signing.key"
    run("keygen", "--origin", origin, "--key-file", key, "--vkey-out", tmp_path / "verifier-key")
    issuer = tmp_path / "issuer"
    token = run("token", "--data-dir", issuer, "--sub", "tls-client", "--scope",
                "evault.append evault.read").strip()
    identity = ("--jwks-file", issuer / "jwks.json", "--jwt-issuer", "evault-local",
                "--jwt-audience", "evault")
    common = ("--origin", origin, "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "data")
    log = ("--database-url", schema_url)
    try:
        signer = serve("signer", *common, "--key-file", key)
        tree = serve("tree", *common, *log, "--signer", signer)
        ingest = serve("ingest", *common, *log, "--tree", tree, *identity)
        url = serve("gateway", *common, *log, "--ingest", ingest, "--tree", tree, *identity,
                    "--tls-cert", certs / "gateway.pem", "--tls-key", certs / "gateway-key.pem")
        assert url.startswith("https://"), url
        yield dict(url=url, token=token, ca=certs / "ca.pem",
                   vkey=(tmp_path / "verifier-key").read_text())
    finally:
        for proc in reversed(started):
            proc.kill()


def test_tls_with_the_vaults_ca(tls_gateway, evault_bin, tmp_path):
    gw = tls_gateway
    target = gw["url"].split("://", 1)[1]
    with Client(target, token=gw["token"], tls_ca=gw["ca"]) as vault:
        receipt = vault.append(b"sent over TLS", name="tls.txt")
        verify_receipt(receipt.to_tlog_proof(), gw["vkey"], evidence=b"sent over TLS")
        assert receipt.entry.principal == "tls-client"
    # The same address as a URL.
    with Client(gw["url"], token=gw["token"], tls_ca=gw["ca"]) as vault:
        assert vault.checkpoint().size >= 1
    # A CA that did not issue the gateway's certificate is not trusted.
    other = tmp_path / "other-certs"
    subprocess.run([str(evault_bin), "dev-certs", "--out", str(other)], check=True,
                   capture_output=True, timeout=60)
    with Client(target, token=gw["token"], tls_ca=other / "ca.pem", timeout=10) as stranger:
        with pytest.raises(RpcError) as caught:
            stranger.checkpoint()
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    # Plaintext to a TLS listener fails too.
    with Client(target, token=gw["token"], timeout=10) as plain:
        with pytest.raises(RpcError) as caught:
            plain.checkpoint()
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
