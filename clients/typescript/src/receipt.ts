// C2SP tlog-proof receipts (`.tlog-proof` files), read and written
// byte for byte as the vault's Rust core (crates/core/src/receipt.rs) and
// `evault append` do:
//
//   c2sp.org/tlog-proof@v1
//   extra <base64 of the entry bytes>
//   index <decimal>
//   <base64 proof hash>          (zero or more, the leaf's sibling first)
//   <blank line>
//   <the checkpoint note, verbatim>
//
// A receipt verifies when its checkpoint is signed by a trusted key named
// after the log's origin and its inclusion proof leads from the entry's
// leaf hash to that checkpoint's root.

import { type Checkpoint, type SignedCheckpoint, openCheckpoint } from "./checkpoint.js";
import { bytesEqual, concatBytes, decodeUtf8, encodeUtf8, fromBase64, parseDecimal, toBase64, toHex } from "./encoding.js";
import { type EvidenceEntry, decodeEntry } from "./entry.js";
import { HASH_SIZE, leafHash, sha256, verifyInclusion } from "./merkle.js";
import { type VerifierKey, parseVerifierKeys } from "./note.js";

/** First line of every receipt. */
export const RECEIPT_HEADER = "c2sp.org/tlog-proof@v1";
/** An inclusion proof in a tree of 2^64 leaves has at most 64 hashes. */
const MAX_PROOF_HASHES = 64;

/** A parsed, not yet verified, receipt. */
export interface Receipt {
  /** Opaque extra data; for vault receipts, the entry bytes. */
  readonly extra: Uint8Array | null;
  /** Index of the entry in the log. */
  readonly index: bigint;
  /** Inclusion proof, leaf to root: 32-byte hashes. */
  readonly proof: readonly Uint8Array[];
  /** The checkpoint note, verbatim. */
  readonly checkpoint: Uint8Array;
}

/** What a verified receipt establishes. */
export interface VerifiedReceipt {
  /** The signed tree head the entry is proven in. */
  readonly checkpoint: Checkpoint;
  /** The checkpoint's note and the trusted keys that signed it. */
  readonly signed: SignedCheckpoint;
  /** The entry's index. */
  readonly index: bigint;
  /** The entry's leaf hash. */
  readonly leafHash: Uint8Array;
  /** The entry bytes. */
  readonly entryBytes: Uint8Array;
  /** The decoded evidence entry, or why the bytes are not one. */
  readonly entry: EvidenceEntry | { readonly error: string };
  /** Whether evidence bytes were given and match the entry. */
  readonly evidenceMatches: boolean;
}

/** Reads lines ending in `\n` off the front of a byte string. */
class LineReader {
  private at = 0;
  constructor(private readonly bytes: Uint8Array) {}

  /** The next line without its newline, or `null` when no newline is left. */
  next(): Uint8Array | null {
    const end = this.bytes.indexOf(0x0a, this.at);
    if (end < 0) return null;
    const line = this.bytes.subarray(this.at, end);
    this.at = end + 1;
    return line;
  }

  rest(): Uint8Array {
    return this.bytes.subarray(this.at);
  }
}

function malformed(reason: string): Error {
  return new Error(`malformed receipt: ${reason}`);
}

/** Parses a `.tlog-proof` file without verifying it. */
export function parseReceipt(bytes: Uint8Array): Receipt {
  const lines = new LineReader(bytes);
  const header = lines.next();
  if (header === null || decodeUtf8(header) !== RECEIPT_HEADER) {
    throw malformed(`first line is not ${RECEIPT_HEADER}`);
  }
  let line = lines.next();
  if (line === null) throw malformed("missing index line");
  let text = decodeUtf8(line) ?? "";
  let extra: Uint8Array | null = null;
  if (text.startsWith("extra ")) {
    extra = fromBase64(text.slice("extra ".length));
    if (extra === null) throw malformed("extra data is not base64");
    line = lines.next();
    if (line === null) throw malformed("missing index line");
    text = decodeUtf8(line) ?? "";
  }
  const index = text.startsWith("index ") ? parseDecimal(text.slice("index ".length)) : null;
  if (index === null) throw malformed("index line is not `index <decimal>`");
  const proof: Uint8Array[] = [];
  for (;;) {
    const next = lines.next();
    if (next === null) throw malformed("no blank line before the checkpoint");
    if (next.length === 0) break;
    if (proof.length === MAX_PROOF_HASHES) throw malformed("more than 64 proof hashes");
    const hash = fromBase64(decodeUtf8(next) ?? "!");
    if (hash === null || hash.length !== HASH_SIZE) throw malformed("proof line is not a base64 SHA-256 hash");
    proof.push(hash);
  }
  const checkpoint = lines.rest();
  if (checkpoint.length === 0) throw malformed("no checkpoint");
  return { extra, index, proof, checkpoint: checkpoint.slice() };
}

/** The `.tlog-proof` bytes of a receipt. */
export function encodeReceipt(receipt: Receipt): Uint8Array {
  let head = `${RECEIPT_HEADER}\n`;
  if (receipt.extra !== null) head += `extra ${toBase64(receipt.extra)}\n`;
  head += `index ${receipt.index}\n`;
  for (const h of receipt.proof) {
    if (h.length !== HASH_SIZE) throw new Error(`proof hash is ${h.length} bytes long, not ${HASH_SIZE}`);
    head += `${toBase64(h)}\n`;
  }
  head += "\n";
  return concatBytes(encodeUtf8(head), receipt.checkpoint);
}

/** Options of {@link verifyParsedReceipt}. */
export interface VerifyReceiptOptions {
  /** Require the receipt to be from this log. */
  readonly origin?: string;
  /** The evidence bytes the receipt should be for. */
  readonly evidence?: Uint8Array;
}

/**
 * Verifies a receipt: the checkpoint's signature by a trusted key named
 * after its origin, the entry's inclusion in the checkpoint's tree and,
 * with `evidence`, that the entry records those bytes' SHA-256 and size.
 * Throws an Error saying what failed.
 */
export async function verifyParsedReceipt(
  receipt: Receipt,
  keys: readonly VerifierKey[],
  options: VerifyReceiptOptions = {},
): Promise<VerifiedReceipt> {
  let signed: SignedCheckpoint;
  try {
    signed = await openCheckpoint(receipt.checkpoint, keys, options.origin);
  } catch (e) {
    throw new Error(`checkpoint: ${(e as Error).message}`);
  }
  if (receipt.extra === null) {
    throw new Error("receipt carries no entry (no extra line), so its leaf hash cannot be computed");
  }
  const entryBytes = receipt.extra;
  const leaf = await leafHash(entryBytes);
  const cp = signed.checkpoint;
  try {
    await verifyInclusion(receipt.index, cp.size, leaf, receipt.proof, cp.root);
  } catch (e) {
    const reason = (e as Error).message;
    if (reason.startsWith("the proof leads to root")) {
      throw new Error(`inclusion proof does not lead to the checkpoint's root (${reason})`);
    }
    throw new Error(`inclusion proof: ${reason}`);
  }
  let entry: EvidenceEntry | { error: string };
  try {
    entry = decodeEntry(entryBytes);
  } catch (e) {
    entry = { error: (e as Error).message };
  }
  if (options.evidence !== undefined) {
    if ("error" in entry) {
      throw new Error(`the logged entry is not an evidence entry (${entry.error}), so no evidence can match it`);
    }
    const digest = await sha256(options.evidence);
    if (!bytesEqual(digest, entry.digest)) {
      throw new Error(
        `evidence SHA-256 differs from the entry's: the file has ${toHex(digest)}, the entry logged ${toHex(entry.digest)}`,
      );
    }
    if (BigInt(options.evidence.length) !== entry.size) {
      throw new Error(`evidence size differs from the entry's: the file has ${options.evidence.length} bytes, the entry logged ${entry.size}`);
    }
  }
  return {
    checkpoint: cp,
    signed,
    index: receipt.index,
    leafHash: leaf,
    entryBytes,
    entry,
    evidenceMatches: options.evidence !== undefined,
  };
}

/** What {@link verifyReceipt} establishes: the entry, where it is, in which log. */
export interface ReceiptVerification {
  /** The log's origin, named by the checkpoint a trusted key signed. */
  readonly origin: string;
  /** The size of the tree the entry is proven in. */
  readonly size: bigint;
  /** The entry's index in the log. */
  readonly index: bigint;
  /** The logged evidence entry, decoded. */
  readonly entry: EvidenceEntry;
}

/**
 * Verifies a `.tlog-proof` receipt of the vault, as `evault verify` does:
 * `tlogProof` is the file's bytes (or its text), `vkey` the log's verifier
 * key (one or more key lines, as in a `--vkey-file`, or keys already
 * parsed), and `evidence`, when given, the bytes the entry must record.
 * The logged entry must be a canonical evidence entry. Throws an Error
 * saying what failed.
 */
export async function verifyReceipt(
  tlogProof: Uint8Array | string,
  vkey: string | readonly VerifierKey[],
  evidence?: Uint8Array,
): Promise<ReceiptVerification> {
  const keys = typeof vkey === "string" ? await parseVerifierKeys(vkey) : vkey;
  if (keys.length === 0) throw new Error("no verifier key given");
  const receipt = parseReceipt(typeof tlogProof === "string" ? encodeUtf8(tlogProof) : tlogProof);
  const verified = await verifyParsedReceipt(receipt, keys, evidence === undefined ? {} : { evidence });
  if ("error" in verified.entry) {
    throw new Error(`the logged entry is not an evidence entry (${verified.entry.error})`);
  }
  return { origin: verified.checkpoint.origin, size: verified.checkpoint.size, index: verified.index, entry: verified.entry };
}
