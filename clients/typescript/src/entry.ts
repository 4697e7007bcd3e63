// The evidence entry, version 1 (docs/entry-format.md): the canonical
// bytes the vault logs for one submission. The decoder accepts exactly
// the encodings the Rust core's decoder accepts, so this client and
// `evault verify` agree on what an entry says.
//
//   u8      version (1)
//   [32]u8  SHA-256 of the evidence
//   u64     evidence size in bytes
//   u64     received at, milliseconds since the Unix epoch (UTC)
//   str     media type
//   str     name ("" when none)
//   str     submitting principal
//   u16     label count, then (str key, str value)…, keys strictly ascending
//
// Integers are big-endian; `str` is a u16 byte length and UTF-8 bytes.

import { decodeUtf8 } from "./encoding.js";

/** The encoding version this module reads. */
export const ENTRY_VERSION = 1;
/** The most bytes an entry may have (uint16 bundle framing). */
export const MAX_ENTRY_SIZE = 65535;

/** One evidence record. */
export interface EvidenceEntry {
  /** SHA-256 digest of the evidence bytes, 32 bytes. */
  readonly digest: Uint8Array;
  /** Size of the evidence in bytes. */
  readonly size: bigint;
  /** When the vault received it, milliseconds since the Unix epoch (UTC). */
  readonly receivedMs: bigint;
  /** Media type, printable ASCII. */
  readonly mediaType: string;
  /** Human name, e.g. a file name; `null` when none. */
  readonly name: string | null;
  /** The authenticated principal that submitted it. */
  readonly principal: string;
  /** Labels as [key, value], keys unique and in ascending byte order. */
  readonly labels: ReadonlyArray<readonly [string, string]>;
}

/** Unicode category Cc: what the format forbids in its text fields. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

class Reader {
  private at = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  take(n: number, what: string): Uint8Array {
    if (this.remaining < n) throw new Error(`entry is truncated in ${what}`);
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  u16(what: string): number {
    if (this.remaining < 2) throw new Error(`entry is truncated in ${what}`);
    const v = this.view.getUint16(this.at);
    this.at += 2;
    return v;
  }

  u64(what: string): bigint {
    if (this.remaining < 8) throw new Error(`entry is truncated in ${what}`);
    const v = this.view.getBigUint64(this.at);
    this.at += 8;
    return v;
  }

  /** A length-prefixed string, returned with its bytes. */
  string(what: string): { text: string; bytes: Uint8Array } {
    const bytes = this.take(this.u16(what), what);
    const text = decodeUtf8(bytes);
    if (text === null) throw new Error(`invalid ${what}: is not UTF-8`);
    return { text, bytes };
  }
}

function checkText(what: string, value: string, allowEmpty: boolean): void {
  if (!allowEmpty && value === "") throw new Error(`invalid ${what}: must not be empty`);
  if (CONTROL.test(value)) throw new Error(`invalid ${what}: must not contain control characters`);
}

/** Decodes a canonical version 1 entry; anything else throws, saying why. */
export function decodeEntry(bytes: Uint8Array): EvidenceEntry {
  if (bytes.length > MAX_ENTRY_SIZE) {
    throw new Error(`entry is ${bytes.length} bytes; at most ${MAX_ENTRY_SIZE} are allowed`);
  }
  const r = new Reader(bytes);
  const version = r.take(1, "version")[0]!;
  if (version !== ENTRY_VERSION) throw new Error(`unsupported entry version ${version}`);
  const digest = r.take(32, "digest").slice();
  const size = r.u64("size");
  const receivedMs = r.u64("received time");
  const mediaType = r.string("media type").text;
  const name = r.string("name").text;
  const principal = r.string("principal").text;
  const count = r.u16("label count");
  const labels: Array<readonly [string, string]> = [];
  let previous: Uint8Array | null = null;
  for (let i = 0; i < count; i++) {
    const key = r.string("label key");
    const value = r.string("label value");
    if (previous !== null && compareBytes(previous, key.bytes) >= 0) {
      throw new Error("label keys are not unique and in ascending byte order");
    }
    previous = key.bytes;
    labels.push([key.text, value.text]);
  }
  if (r.remaining !== 0) throw new Error(`entry has ${r.remaining} trailing bytes`);

  if (mediaType === "") throw new Error("invalid media type: must not be empty");
  if (!/^[\x20-\x7e]*$/.test(mediaType)) throw new Error("invalid media type: must be printable ASCII");
  if (name !== "") checkText("name", name, false);
  checkText("principal", principal, false);
  for (const [k, v] of labels) {
    checkText("label key", k, false);
    checkText("label value", v, true);
  }
  return { digest, size, receivedMs, mediaType, name: name === "" ? null : name, principal, labels };
}

/**
 * The time an entry was received, as RFC 3339 UTC with milliseconds, or
 * the raw millisecond count when it is past what a Date can show.
 */
export function formatReceived(ms: bigint): string {
  if (ms > 8_640_000_000_000_000n) return `${ms} ms after 1970-01-01T00:00:00Z`;
  return new Date(Number(ms)).toISOString();
}
