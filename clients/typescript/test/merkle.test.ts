// The RFC 6962 proof vectors of transparency-dev/merkle, every one of
// them (those a verifier must reject included), and proofs built by the
// reference tree for every size up to 40.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { leafHash, nodeHash, toHex, verifyConsistency, verifyInclusion } from "@evault/client";

import { b64, jsonFilesUnder, readTestdataText } from "./testdata.js";
import {
  referenceConsistencyProof,
  referenceInclusionProof,
  referenceLeafHash,
  referenceRoot,
} from "./reference-tree.js";

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

async function outcome(check: Promise<void>): Promise<string | null> {
  try {
    await check;
    return null;
  } catch (e) {
    assert.ok(e instanceof Error);
    assert.ok(e.message.length > 0);
    return e.message;
  }
}

describe("inclusion vectors", () => {
  const files = jsonFilesUnder("rfc6962/inclusion");
  it("are all found", () => assert.ok(files.length >= 90, `only ${files.length} inclusion vectors`));
  for (const file of files) {
    it(file, async () => {
      const v = JSON.parse(readTestdataText(file)) as InclusionVector;
      const error = await outcome(
        verifyInclusion(BigInt(v.leafIdx), BigInt(v.treeSize), b64(v.leafHash), (v.proof ?? []).map(b64), b64(v.root)),
      );
      if (v.wantErr) assert.notEqual(error, null, `${v.desc}: accepted`);
      else assert.equal(error, null, `${v.desc}: ${error}`);
    });
  }
});

describe("consistency vectors", () => {
  const files = jsonFilesUnder("rfc6962/consistency");
  it("are all found", () => assert.ok(files.length >= 90, `only ${files.length} consistency vectors`));
  for (const file of files) {
    it(file, async () => {
      const v = JSON.parse(readTestdataText(file)) as ConsistencyVector;
      const error = await outcome(
        verifyConsistency(BigInt(v.size1), BigInt(v.size2), (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2)),
      );
      if (v.wantErr) assert.notEqual(error, null, `${v.desc}: accepted`);
      else assert.equal(error, null, `${v.desc}: ${error}`);
    });
  }
});

describe("hashing", () => {
  it("hashes leaves and nodes as RFC 9162 says", async () => {
    assert.equal(toHex(await leafHash(new Uint8Array())), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    const leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map(
      (h) => referenceLeafHash(Buffer.from(h, "hex")),
    );
    assert.equal(toHex(referenceRoot(leaves)), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
    assert.equal(toHex(await nodeHash(leaves[0]!, leaves[1]!)), toHex(referenceRoot(leaves.slice(0, 2))));
  });
});

describe("proofs of the reference tree", () => {
  const leaves = Array.from({ length: 40 }, (_, i) => referenceLeafHash(Uint8Array.of(i, i * 7)));
  it("every inclusion proof up to size 40 verifies, and fails at the wrong index", async () => {
    for (let size = 1; size <= 40; size++) {
      const tree = leaves.slice(0, size);
      const root = referenceRoot(tree);
      for (let i = 0; i < size; i++) {
        const proof = referenceInclusionProof(i, tree);
        await verifyInclusion(BigInt(i), BigInt(size), tree[i]!, proof, root);
        if (size > 1) {
          const other = (i + 1) % size;
          assert.notEqual(await outcome(verifyInclusion(BigInt(other), BigInt(size), tree[i]!, proof, root)), null);
        }
      }
    }
  });
  it("every consistency proof up to size 40 verifies, and fails with a root changed", async () => {
    for (let size2 = 1; size2 <= 40; size2++) {
      const root2 = referenceRoot(leaves.slice(0, size2));
      for (let size1 = 1; size1 <= size2; size1++) {
        const root1 = referenceRoot(leaves.slice(0, size1));
        const proof = size1 === size2 ? [] : referenceConsistencyProof(size1, leaves.slice(0, size2));
        await verifyConsistency(BigInt(size1), BigInt(size2), proof, root1, root2);
        const bad = root2.slice();
        bad[0]! ^= 1;
        assert.notEqual(await outcome(verifyConsistency(BigInt(size1), BigInt(size2), proof, root1, bad)), null);
      }
    }
  });
  it("says what failed", async () => {
    const tree = leaves.slice(0, 5);
    const root = referenceRoot(tree);
    const proof = referenceInclusionProof(2, tree);
    assert.match((await outcome(verifyInclusion(5n, 5n, tree[2]!, proof, root)))!, /index 5 is not below tree size 5/);
    assert.match((await outcome(verifyInclusion(2n, 5n, tree[2]!, proof.slice(1), root)))!, /proof has 2 hashes, 3 expected/);
    assert.match((await outcome(verifyInclusion(2n, 5n, tree[3]!, proof, root)))!, /the proof leads to root .*, not the expected one/);
    assert.match((await outcome(verifyConsistency(5n, 3n, [], root, root)))!, /smaller than the earlier size/);
    assert.match((await outcome(verifyConsistency(0n, 3n, [], root, root)))!, /from the empty tree/);
  });
  it("handles indices and sizes beyond 2^53", async () => {
    // A tree of 2^60 + 1 leaves: the last leaf's proof is the root of the
    // first 2^60 leaves, whatever it is.
    const size = (1n << 60n) + 1n;
    const left = referenceLeafHash(Uint8Array.of(1));
    const leaf = referenceLeafHash(Uint8Array.of(2));
    const root = await nodeHash(left, leaf);
    await verifyInclusion(size - 1n, size, leaf, [left], root);
  });
});
