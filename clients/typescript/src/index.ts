// @evault/client: the Merkle Evidence Vault's client for Node.js and
// browsers. Two halves that share nothing but types:
//
// - createVaultClient: the vault's gRPC API (append, checkpoints, proofs,
//   entries), over HTTP/2 in Node.js and gRPC-web in browsers;
// - verification with WebCrypto (SHA-256, Ed25519) alone, trusting
//   nothing the vault says: C2SP signed notes and checkpoints, RFC 9162
//   inclusion and consistency proofs, tlog-proof receipts and the
//   canonical evidence entry, accepting exactly what `evault verify` does.
//
// Each verification failure throws an Error saying what failed.

export {
  type Appended,
  type ConsistencyProof,
  type FoundEntries,
  type InclusionProof,
  type Statement,
  type StreamedAppend,
  type VaultClient,
  type VaultClientOptions,
  createVaultClient,
} from "./client.js";
export {
  type Checkpoint,
  type SignedCheckpoint,
  type VerifiedExtension,
  EMPTY_TREE_ROOT,
  openCheckpoint,
  parseCheckpoint,
  verifyExtension,
} from "./checkpoint.js";
export { bytesEqual, fromBase64, fromHex, toBase64, toHex } from "./encoding.js";
export { type EvidenceEntry, decodeEntry, formatReceived } from "./entry.js";
export { leafHash, nodeHash, rootFromInclusionProof, sha256, verifyConsistency, verifyInclusion } from "./merkle.js";
export {
  type Note,
  type NoteSignature,
  type VerifierKey,
  computeKeyId,
  keyFingerprint,
  keyIdHex,
  parseNote,
  parseVerifierKey,
  parseVerifierKeys,
  verifyNote,
} from "./note.js";
export {
  type Receipt,
  type ReceiptVerification,
  type VerifiedReceipt,
  type VerifyReceiptOptions,
  encodeReceipt,
  parseReceipt,
  verifyParsedReceipt,
  verifyReceipt,
} from "./receipt.js";
export { Code, ConnectError } from "@connectrpc/connect";
export * from "./gen/evault/v1/ingest_pb.js";
export * from "./gen/evault/v1/log_pb.js";
export * from "./gen/evault/v1/tree_pb.js";
