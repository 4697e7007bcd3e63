// RFC 9162 §2.1 (= RFC 6962) Merkle tree hashing and proof verification,
// with the semantics of transparency-dev/merkle, which the vault's Rust
// core follows too: the same inputs are accepted and refused, and the
// vectors in shared/testdata/rfc6962 pin that. SHA-256 comes from
// WebCrypto, so every function that hashes is asynchronous.
//
// Sizes and indices are bigint: the log counts to 2^64 − 1, past what a
// JavaScript number holds exactly.

import { bytesEqual, concatBytes, toBase64 } from "./encoding.js";

/** Bytes in every hash of the tree (SHA-256). */
export const HASH_SIZE = 32;

/** SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** The hash of an entry as a leaf: SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array): Promise<Uint8Array> {
  return sha256(concatBytes(Uint8Array.of(0x00), entry));
}

/** The hash of an interior node: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(concatBytes(Uint8Array.of(0x01), left, right));
}

/** Number of bits needed to write `n` (0 for 0). */
function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n: bigint): number {
  let count = 0;
  for (const digit of n.toString(2)) if (digit === "1") count++;
  return count;
}

function trailingZeros(n: bigint): number {
  let count = 0;
  while (n > 0n && (n & 1n) === 0n) {
    n >>= 1n;
    count++;
  }
  return count;
}

/**
 * How many proof hashes lie below the point where the paths of `index`
 * and of the last leaf (`size` − 1) meet (inner), and how many lie on
 * the right border above it.
 */
function decompose(index: bigint, size: bigint): { inner: number; border: number } {
  const inner = bitLength(index ^ (size - 1n));
  return { inner, border: popCount(index >> BigInt(inner)) };
}

function checkLength(what: string, hash: Uint8Array): void {
  if (hash.length !== HASH_SIZE) {
    throw new Error(`${what} is ${hash.length} bytes long, not ${HASH_SIZE}`);
  }
}

function checkProofHashes(proof: readonly Uint8Array[]): void {
  proof.forEach((h, i) => checkLength(`proof hash ${i}`, h));
}

async function chainInner(seed: Uint8Array, proof: readonly Uint8Array[], index: bigint): Promise<Uint8Array> {
  let acc = seed;
  for (let i = 0; i < proof.length; i++) {
    acc = ((index >> BigInt(i)) & 1n) === 0n ? await nodeHash(acc, proof[i]!) : await nodeHash(proof[i]!, acc);
  }
  return acc;
}

async function chainInnerRight(seed: Uint8Array, proof: readonly Uint8Array[], index: bigint): Promise<Uint8Array> {
  let acc = seed;
  for (let i = 0; i < proof.length; i++) {
    if (((index >> BigInt(i)) & 1n) === 1n) acc = await nodeHash(proof[i]!, acc);
  }
  return acc;
}

async function chainBorderRight(seed: Uint8Array, proof: readonly Uint8Array[]): Promise<Uint8Array> {
  let acc = seed;
  for (const h of proof) acc = await nodeHash(h, acc);
  return acc;
}

function expectRoot(calculated: Uint8Array, root: Uint8Array): void {
  if (!bytesEqual(calculated, root)) {
    throw new Error(`the proof leads to root ${toBase64(calculated)}, not the expected one`);
  }
}

/**
 * The root that an inclusion proof leads to for the leaf `index`, with
 * hash `leaf`, in a tree of `size` leaves. Throws when the index is not in
 * the tree, a hash is not 32 bytes, or the proof has the wrong number of
 * hashes for the index and size.
 */
export async function rootFromInclusionProof(
  index: bigint,
  size: bigint,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Promise<Uint8Array> {
  if (index < 0n || index >= size) throw new Error(`index ${index} is not below tree size ${size}`);
  checkLength("leaf hash", leaf);
  const { inner, border } = decompose(index, size);
  if (proof.length !== inner + border) {
    throw new Error(`proof has ${proof.length} hashes, ${inner + border} expected`);
  }
  checkProofHashes(proof);
  const acc = await chainInner(leaf, proof.slice(0, inner), index);
  return chainBorderRight(acc, proof.slice(inner));
}

/**
 * Checks that `proof` shows the leaf `index`, with hash `leaf`, is in the
 * tree of `size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
 */
export async function verifyInclusion(
  index: bigint,
  size: bigint,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): Promise<void> {
  expectRoot(await rootFromInclusionProof(index, size, leaf, proof), root);
}

/**
 * Checks that `proof` shows the tree of `size2` leaves with root `root2`
 * extends the tree of `size1` leaves with root `root1` (RFC 9162
 * §2.1.4.2). As in transparency-dev/merkle, a proof from the empty tree is
 * refused (it proves nothing), and equal sizes need an empty proof and
 * equal roots, whatever the roots' length.
 */
export async function verifyConsistency(
  size1: bigint,
  size2: bigint,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): Promise<void> {
  if (size1 < 0n || size2 < size1) throw new Error(`tree size ${size2} is smaller than the earlier size ${size1}`);
  if (size1 === 0n) throw new Error("a consistency proof from the empty tree is meaningless");
  if (size1 === size2) {
    if (proof.length !== 0) throw new Error("tree sizes are equal but the proof is not empty");
    if (!bytesEqual(root1, root2)) throw new Error("tree sizes are equal but the roots differ");
    return;
  }
  if (proof.length === 0) throw new Error("the proof is empty");
  checkProofHashes(proof);
  const decomposed = decompose(size1 - 1n, size2);
  const shift = trailingZeros(size1);
  const inner = decomposed.inner - shift;
  // The proof starts with the root of the largest perfect subtree ending
  // at size1, unless that subtree is the whole first tree, whose root the
  // verifier already has.
  let seed: Uint8Array;
  let rest: readonly Uint8Array[];
  if (size1 === 1n << BigInt(shift)) {
    checkLength("first root", root1);
    seed = root1;
    rest = proof;
  } else {
    seed = proof[0]!;
    rest = proof.slice(1);
  }
  const want = proof.length - rest.length + inner + decomposed.border;
  if (proof.length !== want) throw new Error(`proof has ${proof.length} hashes, ${want} expected`);
  const mask = (size1 - 1n) >> BigInt(shift);
  const hash1 = await chainBorderRight(await chainInnerRight(seed, rest.slice(0, inner), mask), rest.slice(inner));
  if (!bytesEqual(hash1, root1)) {
    throw new Error(`the proof leads to first root ${toBase64(hash1)}, not the expected one`);
  }
  const hash2 = await chainBorderRight(await chainInner(seed, rest.slice(0, inner), mask), rest.slice(inner));
  if (!bytesEqual(hash2, root2)) {
    throw new Error(`the proof leads to second root ${toBase64(hash2)}, not the expected one`);
  }
}
