// C2SP tlog-checkpoint: the signed tree head. The note text is the
// origin line, the tree size in decimal, the root hash in base64, then
// optional extension lines. A checkpoint is trusted only when a trusted key
// whose name is its origin signed it.

import { fromBase64, parseDecimal } from "./encoding.js";
import { HASH_SIZE } from "./merkle.js";
import { type Note, type VerifierKey, parseNote, verifyNote } from "./note.js";

/** A tree head: which log, how many entries, which root. */
export interface Checkpoint {
  /** The log's origin, its unique name. */
  readonly origin: string;
  /** Number of entries in the tree. */
  readonly size: bigint;
  /** Root hash of the tree, 32 bytes. */
  readonly root: Uint8Array;
  /** Extension lines, without their newlines. */
  readonly extensions: readonly string[];
}

/** A checkpoint whose log signature verified. */
export interface SignedCheckpoint {
  /** The tree head. */
  readonly checkpoint: Checkpoint;
  /** The note it came in, with all its signatures. */
  readonly note: Note;
  /** The trusted keys that signed it. */
  readonly signers: readonly VerifierKey[];
}

/** Parses a checkpoint body (the note text). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith("\n")) throw new Error("malformed checkpoint: text does not end in a newline");
  const lines = text.slice(0, -1).split("\n");
  const origin = lines[0] ?? "";
  if (origin === "") throw new Error("malformed checkpoint: empty origin line");
  const size = lines[1] === undefined ? null : parseDecimal(lines[1]);
  if (size === null) throw new Error("malformed checkpoint: tree size is not a decimal without leading zeros");
  const root = lines[2] === undefined ? null : fromBase64(lines[2]);
  if (root === null || root.length !== HASH_SIZE) {
    throw new Error("malformed checkpoint: root is not a base64 SHA-256 hash");
  }
  const extensions = lines.slice(3);
  if (extensions.some((e) => e === "")) throw new Error("malformed checkpoint: empty extension line");
  return { origin, size, root, extensions };
}

/**
 * Parses a checkpoint note and checks that a trusted key named after its
 * origin signed it; with `origin`, also that it is that log's checkpoint.
 */
export async function openCheckpoint(
  bytes: Uint8Array,
  keys: readonly VerifierKey[],
  origin?: string,
): Promise<SignedCheckpoint> {
  const note = parseNote(bytes);
  const checkpoint = parseCheckpoint(note.text);
  if (origin !== undefined && checkpoint.origin !== origin) {
    throw new Error(`checkpoint is for origin ${JSON.stringify(checkpoint.origin)}, expected ${JSON.stringify(origin)}`);
  }
  const signers = await verifyNote(note, keys);
  if (!signers.some((k) => k.name === checkpoint.origin)) {
    throw new Error(`checkpoint for ${JSON.stringify(checkpoint.origin)} is not signed by a trusted key of that name`);
  }
  return { checkpoint, note, signers };
}
