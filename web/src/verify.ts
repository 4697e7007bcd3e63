// Verification of the vault's public formats in the page, with nothing
// but WebCrypto (SHA-256, Ed25519) and TextEncoder/TextDecoder: C2SP
// signed notes and verifier keys, tlog-checkpoints, RFC 9162 inclusion and
// consistency proofs, tlog-proof receipts and the canonical evidence entry.
// The server is never trusted: everything the UI shows as verified went
// through here. Each failure throws an Error saying exactly what failed.
//
// This module gathers the pieces (one file per format) and adds what
// concerns two checkpoints at once.

import { type SignedCheckpoint, openCheckpoint } from "./checkpoint.js";
import { toHex } from "./encoding.js";
import { verifyConsistency } from "./merkle.js";
import type { VerifierKey } from "./note.js";

export { type Checkpoint, type SignedCheckpoint, openCheckpoint, parseCheckpoint } from "./checkpoint.js";
export { bytesEqual, fromBase64, fromHex, toBase64, toHex } from "./encoding.js";
export { type EvidenceEntry, decodeEntry, formatReceived } from "./entry.js";
export { leafHash, nodeHash, rootFromInclusionProof, sha256, verifyConsistency, verifyInclusion } from "./merkle.js";
export {
  type Note,
  type NoteSignature,
  type VerifierKey,
  keyFingerprint,
  keyIdHex,
  parseNote,
  parseVerifierKey,
  parseVerifierKeys,
  verifyNote,
} from "./note.js";
export {
  type Receipt,
  type VerifiedReceipt,
  type VerifyReceiptOptions,
  encodeReceipt,
  parseReceipt,
  verifyReceipt,
} from "./receipt.js";

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
