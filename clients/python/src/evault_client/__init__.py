"""Python client of the Merkle Evidence Vault.

Append evidence and keep receipts (C2SP tlog-proof files); verify receipts,
checkpoints and consistency offline with the log's verifier key.

    from evault_client import Client, verify_receipt

    with Client("127.0.0.1:7400", token_file="evault-data/dev-token") as vault:
        receipt = vault.append("report.txt")
    open("report.txt.tlog-proof", "wb").write(receipt.to_tlog_proof())

    vkey = open("evault-data/verifier-key").read()
    verify_receipt(open("report.txt.tlog-proof", "rb").read(), vkey,
                   evidence=open("report.txt", "rb").read())
"""

from .checkpoint import Checkpoint, open_checkpoint
from .client import (DEFAULT_MEDIA_TYPE, Client, ConsistencyProof, InclusionProof, LogEntry,
                     Statement, build_statement)
from .entry import Entry, decode_entry
from .errors import (AppendError, EntryError, EvaultError, MalformedError, ProofError,
                     RpcError, VerificationError)
from .note import Note, VerifierKey, parse_verifier_keys
from .receipt import Receipt, verify_consistency, verify_receipt

__all__ = [
    "AppendError",
    "Checkpoint",
    "Client",
    "ConsistencyProof",
    "DEFAULT_MEDIA_TYPE",
    "Entry",
    "EntryError",
    "EvaultError",
    "InclusionProof",
    "LogEntry",
    "MalformedError",
    "Note",
    "ProofError",
    "Receipt",
    "RpcError",
    "Statement",
    "VerificationError",
    "VerifierKey",
    "build_statement",
    "decode_entry",
    "open_checkpoint",
    "parse_verifier_keys",
    "verify_consistency",
    "verify_receipt",
]
