// C2SP signed notes with Ed25519 signatures, and their verifier keys.
//
// A note is UTF-8 text ending in a newline, a blank line, then one line
// per signature: `— <key name> <base64(key ID ‖ signature)>`. A verifier
// key is `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`, where the key
// ID is the first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
//
// Verification follows golang.org/x/mod/sumdb/note, as the vault's Rust
// core does: signatures by keys the caller does not trust are ignored (a
// witness may add its own), a signature by a trusted key that does not
// verify rejects the whole note (it was altered or forged), and a note
// that no trusted key signed is rejected. Ed25519 comes from WebCrypto.

import { concatBytes, decodeUtf8, encodeUtf8, fromBase64, toBase64, toHex } from "./encoding.js";
import { sha256 } from "./merkle.js";

/** Algorithm byte of an Ed25519 note key. */
export const ALG_ED25519 = 0x01;
/** The most bytes a note may have: far above any checkpoint. */
export const MAX_NOTE_SIZE = 1 << 20;
/** The most signature lines a note may have. */
export const MAX_SIGNATURES = 100;

const SIGNATURE_PREFIX = "\u2014 ";

/** A public key that checks note signatures under a name. */
export interface VerifierKey {
  /** The key's name; for a log's key, the log's origin. */
  readonly name: string;
  /** The 32-bit key ID. */
  readonly keyId: number;
  /** The raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The key in its text form, `name+hexid+base64`. */
  readonly text: string;
  /** The key, imported into WebCrypto. */
  readonly cryptoKey: CryptoKey;
}

/** One signature line of a note. */
export interface NoteSignature {
  /** Name of the signing key. */
  readonly name: string;
  /** ID of the signing key. */
  readonly keyId: number;
  /** The signature proper, without the key ID. */
  readonly signature: Uint8Array;
}

/** A parsed, not yet verified, signed note. */
export interface Note {
  /** The signed text, its final newline included. */
  readonly text: string;
  /** The signature lines, in order. */
  readonly signatures: readonly NoteSignature[];
}

/** Whether `name` may name a key: non-empty, no white space, no `+`. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name);
}

/** Lower-case 8-digit hex of a key ID. */
export function keyIdHex(keyId: number): string {
  return keyId.toString(16).padStart(8, "0");
}

/** The key ID of `key` (algorithm byte first) under `name`. */
export async function computeKeyId(name: string, key: Uint8Array): Promise<number> {
  const digest = await sha256(concatBytes(encodeUtf8(name), Uint8Array.of(0x0a), key));
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0);
}

/**
 * Parses a verifier key `<name>+<hex key ID>+<base64(0x01 ‖ key)>` (a
 * trailing newline is allowed) and checks that its key ID matches its name
 * and key.
 */
export async function parseVerifierKey(text: string): Promise<VerifierKey> {
  const line = text.replace(/[\r\n]+$/, "");
  const first = line.indexOf("+");
  const second = first < 0 ? -1 : line.indexOf("+", first + 1);
  if (second < 0) throw new Error("malformed verifier key: expected <name>+<key ID>+<key>");
  const name = line.slice(0, first);
  const idText = line.slice(first + 1, second);
  if (!isValidKeyName(name)) throw new Error("malformed verifier key: invalid key name");
  if (!/^[0-9a-fA-F]{8}$/.test(idText)) throw new Error("malformed verifier key: key ID is not 8 hexadecimal digits");
  const key = fromBase64(line.slice(second + 1));
  if (key === null) throw new Error("malformed verifier key: key is not base64");
  const claimed = parseInt(idText, 16);
  const computed = await computeKeyId(name, key);
  if (claimed !== computed) {
    throw new Error(`verifier key ID ${keyIdHex(claimed)} does not match the key (expected ${keyIdHex(computed)})`);
  }
  if (key.length === 0) throw new Error("malformed verifier key: empty key");
  if (key[0] !== ALG_ED25519) {
    throw new Error(`unsupported key algorithm 0x${key[0]!.toString(16).padStart(2, "0")}`);
  }
  if (key.length !== 33) throw new Error("malformed verifier key: Ed25519 key is not 32 bytes");
  const publicKey = key.slice(1);
  let cryptoKey: CryptoKey;
  try {
    cryptoKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (e) {
    throw new Error(`verifier key ${name}+${keyIdHex(computed)} cannot be used for Ed25519 here: ${String(e)}`);
  }
  return { name, keyId: computed, publicKey, cryptoKey, text: `${name}+${keyIdHex(computed)}+${toBase64(key)}` };
}

/**
 * Parses verifier keys, one per non-empty line; lines starting with `#`
 * are comments. At least one key is required.
 */
export async function parseVerifierKeys(text: string): Promise<VerifierKey[]> {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (lines.length === 0) throw new Error("no verifier key found");
  return Promise.all(lines.map(parseVerifierKey));
}

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw new Error("malformed note: signature line does not start with an em dash");
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  if (space < 0) throw new Error("malformed note: signature line without a signature");
  const name = rest.slice(0, space);
  if (!isValidKeyName(name)) throw new Error("malformed note: invalid key name on a signature line");
  const blob = fromBase64(rest.slice(space + 1));
  if (blob === null) throw new Error("malformed note: signature is not base64");
  if (blob.length < 5) throw new Error("malformed note: signature too short");
  return {
    name,
    keyId: new DataView(blob.buffer, blob.byteOffset, 4).getUint32(0),
    signature: blob.slice(4),
  };
}

/** Parses a signed note without checking any signature. */
export function parseNote(bytes: Uint8Array): Note {
  if (bytes.length > MAX_NOTE_SIZE) throw new Error("malformed note: note too large");
  const msg = decodeUtf8(bytes);
  if (msg === null) throw new Error("malformed note: not UTF-8");
  // Control characters other than the newline could rewrite what a
  // person is shown.
  if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) throw new Error("malformed note: control character");
  const split = msg.lastIndexOf("\n\n");
  if (split < 0) throw new Error("malformed note: no blank line before the signatures");
  const text = msg.slice(0, split + 1);
  const block = msg.slice(split + 2);
  if (!block.endsWith("\n")) throw new Error("malformed note: signature block does not end in a newline");
  const signatures = block.slice(0, -1).split("\n").map(parseSignatureLine);
  if (signatures.length > MAX_SIGNATURES) throw new Error("malformed note: too many signatures");
  return { text, signatures };
}

/**
 * Checks the note's signatures against `keys` and returns the keys that
 * signed it. Signatures by keys not in `keys` (matched by name and key ID)
 * are ignored; a trusted key's signature that does not verify, or no
 * signature by any trusted key, throws.
 */
export async function verifyNote(note: Note, keys: readonly VerifierKey[]): Promise<VerifierKey[]> {
  const message = encodeUtf8(note.text);
  const signed: VerifierKey[] = [];
  for (const sig of note.signatures) {
    const key = keys.find((k) => k.name === sig.name && k.keyId === sig.keyId);
    if (key === undefined) continue;
    const valid =
      sig.signature.length === 64 &&
      (await crypto.subtle.verify({ name: "Ed25519" }, key.cryptoKey, sig.signature as Uint8Array<ArrayBuffer>, message as Uint8Array<ArrayBuffer>));
    if (!valid) throw new Error(`invalid signature by ${sig.name}+${keyIdHex(sig.keyId)}: the note was altered or forged`);
    if (!signed.includes(key)) signed.push(key);
  }
  if (signed.length === 0) {
    const names = note.signatures.map((s) => `${s.name}+${keyIdHex(s.keyId)}`).join(", ");
    throw new Error(`no signature by a trusted key (signed by: ${names})`);
  }
  return signed;
}

/** SHA-256 of a key's text line, hex: the fingerprint shown to people. */
export async function keyFingerprint(keyText: string): Promise<string> {
  return toHex(await sha256(encodeUtf8(keyText.trim())));
}
