// C2SP tlog-checkpoint: the signed tree head. The note text is the
// origin line, the tree size in decimal, the root hash in base64, then
// optional extension lines. A checkpoint is trusted only when a trusted key
// whose name is its origin signed it. Two checkpoints of one log are
// checked to be one history, the later extending the earlier, by a
// consistency proof between their trees.

import { fromBase64, parseDecimal, toHex } from "./encoding.js";
import { HASH_SIZE, verifyConsistency } from "./merkle.js";
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

/** Root of the empty tree, hex: SHA-256 of nothing. */
export const EMPTY_TREE_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** What {@link verifyExtension} establishes. */
export interface VerifiedExtension {
  /** The earlier checkpoint, verified. */
  readonly older: SignedCheckpoint;
  /** The later checkpoint, verified. */
  readonly newer: SignedCheckpoint;
  /**
   * True when the earlier tree is empty: every tree extends it, and no
   * proof is needed (nor meaningful).
   */
  readonly fromEmptyTree: boolean;
}

/**
 * Checks that the log of checkpoint `newerNote` extends the log of
 * checkpoint `olderNote`: both signed by a trusted key of their origin,
 * the same origin, the later not smaller, and `proof` a valid consistency
 * proof between their trees. Throws an Error saying what failed.
 */
export async function verifyExtension(
  olderNote: Uint8Array,
  newerNote: Uint8Array,
  proof: readonly Uint8Array[],
  keys: readonly VerifierKey[],
): Promise<VerifiedExtension> {
  const older = await openCheckpoint(olderNote, keys).catch((e: Error) => {
    throw new Error(`saved checkpoint: ${e.message}`);
  });
  const newer = await openCheckpoint(newerNote, keys).catch((e: Error) => {
    throw new Error(`current checkpoint: ${e.message}`);
  });
  const a = older.checkpoint;
  const b = newer.checkpoint;
  if (a.origin !== b.origin) {
    throw new Error(`the checkpoints are of different logs: ${JSON.stringify(a.origin)} and ${JSON.stringify(b.origin)}`);
  }
  if (b.size < a.size) {
    throw new Error(`the current tree (size ${b.size}) is smaller than the saved one (size ${a.size}): the log was rolled back`);
  }
  if (a.size === 0n) {
    // Every tree extends the empty one, but a signed empty tree with
    // another root than SHA-256 of nothing is a lie worth reporting.
    if (toHex(a.root) !== EMPTY_TREE_ROOT) throw new Error("saved checkpoint: an empty tree whose root is not SHA-256 of nothing");
    return { older, newer, fromEmptyTree: true };
  }
  try {
    await verifyConsistency(a.size, b.size, proof, a.root, b.root);
  } catch (e) {
    throw new Error(`consistency proof from size ${a.size} to size ${b.size} fails: ${(e as Error).message}`);
  }
  return { older, newer, fromEmptyTree: false };
}
