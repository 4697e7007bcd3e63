"""The package as a user gets it: `pip install` into a fresh virtual
environment, then a small script that appends a file to the vault and
writes its receipt, which `evault verify` accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

from conftest import CLIENT_DIR

SCRIPT = textwrap.dedent('''
    import sys
    import evault_client
    from evault_client import Client

    target, token_file, evidence, out = sys.argv[1:]
    with Client(target, token_file=token_file) as vault:
        receipt = vault.append(evidence)
    with open(out, "wb") as f:
        f.write(receipt.to_tlog_proof())
    print(evault_client.__file__)
    print(receipt.index)
''')


def run(argv, **kwargs):
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}:\n{done.stdout}\n{done.stderr}"
    return done


def test_pip_install_in_a_fresh_venv_then_evault_verify_accepts_its_receipt(
        vault, evault_bin, tmp_path):
    # A copy, so that building the package leaves nothing in the source tree.
    source = tmp_path / "evault-client"
    shutil.copytree(CLIENT_DIR, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache", "tests"))
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source],
        timeout=900)

    evidence = tmp_path / "work" / "statement.pdf"
    evidence.parent.mkdir()
    evidence.write_bytes(b"%PDF-1.7 witness statement " + str(tmp_path).encode())
    receipt = tmp_path / "work" / "statement.pdf.tlog-proof"
    script = tmp_path / "work" / "append.py"
    script.write_text(SCRIPT)
    done = run([python, script, vault.target, vault.token_file, evidence, receipt],
               cwd=evidence.parent, timeout=120)
    module, index = done.stdout.split()
    assert module.startswith(str(venv)), f"imported {module}, not the installed package"
    verified = run([evault_bin, "verify", "--vkey-file", vault.vkey_file, "--evidence", evidence,
                    receipt], timeout=60)
    assert f"index      {index}" in verified.stdout
    assert "name       statement.pdf" in verified.stdout
    versions = run([python, "-m", "pip", "list", "--format=freeze"]).stdout
    print("installed in the fresh venv:", " ".join(sorted(
        line for line in versions.split() if line.split("==")[0].lower() in
        ("grpcio", "protobuf", "cryptography", "evault-client"))))
