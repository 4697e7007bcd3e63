// The verifier keys this browser trusts, kept in localStorage so that a
// key is compared with one published out of band once, not at every
// visit; and the last checkpoint this browser verified, so that the next
// one can be checked to extend it (a rolled-back or forked log is noticed).

import { type VerifierKey, parseVerifierKey } from "@evault/client";

const TRUSTED_KEYS = "evault.trustedKeys";
const LAST_CHECKPOINT = "evault.lastCheckpoint";

type Listener = () => void;
const listeners: Listener[] = [];

function read(): string[] {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(TRUSTED_KEYS) ?? "[]");
    return Array.isArray(value) ? value.filter((k): k is string => typeof k === "string") : [];
  } catch {
    return [];
  }
}

/** The trusted keys' text lines. */
export function trustedKeyLines(): string[] {
  return read();
}

/** The trusted keys, parsed; keys that no longer parse are left out. */
export async function trustedKeys(): Promise<VerifierKey[]> {
  const keys = await Promise.all(read().map((line) => parseVerifierKey(line).catch(() => null)));
  return keys.filter((k): k is VerifierKey => k !== null);
}

/** Trusts a key after checking that it parses; returns its canonical line. */
export async function trustKey(line: string): Promise<string> {
  const key = await parseVerifierKey(line.trim());
  const keys = read();
  if (!keys.includes(key.text)) {
    localStorage.setItem(TRUSTED_KEYS, JSON.stringify([...keys, key.text]));
    notify();
  }
  return key.text;
}

/** Stops trusting a key. */
export function distrustKey(line: string): void {
  localStorage.setItem(TRUSTED_KEYS, JSON.stringify(read().filter((k) => k !== line)));
  notify();
}

/** Calls `listener` whenever the set of trusted keys changes. */
export function onTrustChange(listener: Listener): void {
  listeners.push(listener);
}

function notify(): void {
  for (const l of listeners) l();
}

function readCheckpoints(): Record<string, string> {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(LAST_CHECKPOINT) ?? "{}");
    return typeof value === "object" && value !== null ? (value as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** The last checkpoint note of the log `origin` this browser verified, if any. */
export function lastCheckpoint(origin: string): Uint8Array | null {
  const text = readCheckpoints()[origin];
  return typeof text === "string" ? new TextEncoder().encode(text) : null;
}

/** Remembers a verified checkpoint note of the log `origin`. */
export function rememberCheckpoint(origin: string, note: Uint8Array): void {
  const all = readCheckpoints();
  all[origin] = new TextDecoder().decode(note);
  localStorage.setItem(LAST_CHECKPOINT, JSON.stringify(all));
}
