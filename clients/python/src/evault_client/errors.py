"""The exceptions the client raises.

Every exception of this package derives from `EvaultError`, so a caller can
catch the package's failures without catching unrelated ones. Parse failures
are also `ValueError`s, because they are bad values handed in.
"""

from __future__ import annotations

from typing import Optional


class EvaultError(Exception):
    """Base class of the client's exceptions."""


class MalformedError(EvaultError, ValueError):
    """Bytes or text that are not what they claim to be: a receipt, a
    checkpoint, a signed note, a verifier key."""


class EntryError(MalformedError):
    """Bytes that are not a canonical evidence entry (docs/entry-format.md)."""


class VerificationError(EvaultError):
    """A receipt, checkpoint or proof that does not verify.

    `reason` says why, in words a person can act on; `str(error)` is the
    same text.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProofError(VerificationError):
    """An RFC 9162 inclusion or consistency proof that does not verify."""


class RpcError(EvaultError):
    """The vault answered a call with a gRPC status other than OK.

    `code` is the `grpc.StatusCode`, `details` the server's message and
    `method` the call, e.g. `IngestService.Append`.
    """

    def __init__(self, method: str, code, details: str):
        name = getattr(code, "name", str(code))
        super().__init__(f"{method}: {name}: {details}" if details else f"{method}: {name}")
        self.method = method
        self.code = code
        self.details = details


class AppendError(RpcError):
    """One statement of `Client.append_many` was refused; the others are not
    affected. `position` is its place in the iterable (from 0) and `name`
    the statement's name, if it had one."""

    def __init__(self, code, details: str, position: int, name: Optional[str]):
        what = f"statement {position}" + (f" ({name})" if name else "")
        super().__init__(f"IngestService.AppendStream {what}", code, details)
        self.position = position
        self.name = name
