// The vault's API as the page reaches it: @evault/client's gRPC-web
// transport to the gateway that served the page, on the same origin, plus
// the gateway's plain-HTTP `/verifier-keys`. Nothing the server answers
// is trusted for what it claims: checkpoints and proofs go through the
// package's verifier.

import { Code, ConnectError, type VaultClient, createVaultClient } from "@evault/client";

/** The vault's API without a token: reads, when the vault's reads are public. */
export const vault = createVaultClient(window.location.origin);

/** The vault's API, sending the token `token()` returns at each call. */
export function vaultWithToken(token: () => string): VaultClient {
  return createVaultClient(window.location.origin, { token });
}

/**
 * What a failed call says to a person: the gRPC status and the server's
 * message (itself untrusted text, to be shown as text only).
 */
export function rpcFailure(e: unknown): string {
  const error = ConnectError.from(e);
  const code = Code[error.code] ?? String(error.code);
  return `${code.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()}: ${error.rawMessage}`;
}

/** What any failure says: a call's status and message, or an Error's message. */
export function failure(e: unknown): string {
  if (e instanceof ConnectError) return rpcFailure(e);
  return e instanceof Error ? e.message : String(e);
}

/** The verifier keys the gateway lists at `/verifier-keys`, one per line. */
export async function fetchVerifierKeys(): Promise<string[]> {
  const response = await fetch("/verifier-keys", { headers: { accept: "text/plain" }, cache: "no-store" });
  if (!response.ok) throw new Error(`GET /verifier-keys: HTTP ${response.status}`);
  return (await response.text())
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}
