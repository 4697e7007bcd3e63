// Receipts: tlog-proof files for the Tessera log (entries, proofs from the
// reference tree, and the checkpoint Tessera signed), receipts of a log of
// evidence entries crafted here and signed with the Tessera test key, and
// consistency between checkpoints.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import {
  type Receipt,
  encodeReceipt,
  parseReceipt,
  parseVerifierKey,
  toBase64,
  toHex,
  verifyExtension,
  verifyParsedReceipt,
  verifyReceipt,
} from "@evault/client";

import { encodeEntry } from "./entry-codec.js";
import {
  referenceConsistencyProof,
  referenceInclusionProof,
  referenceLeafHash,
  referenceRoot,
} from "./reference-tree.js";
import { signingKeyFromNoteKey } from "./signing.js";
import { concat, readTestdata, utf8 } from "./testdata.js";

const VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const SKEY = "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";
const ORIGIN = "example.com/log/testdata";
const WORDS = "one two three four five six seven eit nain ten ileven twelf threeten fourten fivten".split(" ");

function tesseraReceipts(): Receipt[] {
  const leaves = WORDS.map((w) => referenceLeafHash(utf8(w)));
  const checkpoint = readTestdata("tessera-log/checkpoint.15");
  return WORDS.map((w, i) => ({
    extra: utf8(w),
    index: BigInt(i),
    proof: referenceInclusionProof(i, leaves),
    checkpoint,
  }));
}

async function rejection(check: Promise<unknown>): Promise<string> {
  try {
    await check;
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail("accepted");
}

describe("tlog-proof files", () => {
  it("are written exactly as the Rust core writes them", () => {
    const h1 = referenceLeafHash(utf8("a"));
    const h2 = referenceLeafHash(utf8("b"));
    const checkpoint = utf8("o\n1\nAAAA\n\n\u2014 o x\n");
    const bytes = encodeReceipt({ extra: utf8("entry"), index: 73894n, proof: [h1, h2], checkpoint });
    const want = `c2sp.org/tlog-proof@v1\nextra ZW50cnk=\nindex 73894\n${toBase64(h1)}\n${toBase64(h2)}\n\no\n1\nAAAA\n\n\u2014 o x\n`;
    assert.equal(Buffer.from(bytes).toString("utf8"), want);
  });

  it("round trip with and without extra data", () => {
    for (const extra of [null, utf8("entry"), new Uint8Array()]) {
      const r: Receipt = {
        extra,
        index: 18446744073709551615n,
        proof: [referenceLeafHash(utf8("a"))],
        checkpoint: utf8("o\n1\nAAAA\n\n\u2014 o x\n"),
      };
      assert.deepEqual(parseReceipt(encodeReceipt(r)), r);
    }
  });

  it("malformed ones are rejected, saying why", () => {
    const h = toBase64(referenceLeafHash(utf8("a")));
    const cases: Array<[string, RegExp]> = [
      ["c2sp.org/tlog-proof@v2\nindex 1\n\ncp\n", /first line is not c2sp.org\/tlog-proof@v1/],
      ["c2sp.org/tlog-proof@v1\nindex 01\n\ncp\n", /index line is not `index <decimal>`/],
      ["c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\ncp\n", /index line/],
      ["c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncp\n", /extra data is not base64/],
      ["c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncp\n", /proof line is not a base64 SHA-256 hash/],
      [`c2sp.org/tlog-proof@v1\nindex 1\n${h}\n`, /no blank line before the checkpoint/],
      ["c2sp.org/tlog-proof@v1\nindex 1\n\n", /no checkpoint/],
      ["c2sp.org/tlog-proof@v1\n", /missing index line/],
      [`c2sp.org/tlog-proof@v1\nindex 1\n${`${h}\n`.repeat(65)}\ncp\n`, /more than 64 proof hashes/],
    ];
    for (const [text, reason] of cases) {
      assert.throws(() => parseReceipt(utf8(text)), reason, JSON.stringify(text));
    }
  });
});

describe("receipts of the Tessera log", () => {
  it("verify, made with other implementations' proofs and checkpoint", async () => {
    const keys = [await parseVerifierKey(VKEY)];
    for (const [i, receipt] of tesseraReceipts().entries()) {
      const verified = await verifyParsedReceipt(parseReceipt(encodeReceipt(receipt)), keys, { origin: ORIGIN });
      assert.equal(verified.index, BigInt(i));
      assert.equal(verified.checkpoint.size, 15n);
      assert.equal(Buffer.from(verified.entryBytes).toString(), WORDS[i]);
      // The Tessera log's entries are words, not evidence entries.
      assert.ok("error" in verified.entry);
    }
  });

  it("reject every single-bit change", async () => {
    const keys = [await parseVerifierKey(VKEY)];
    for (const receipt of tesseraReceipts().filter((_, i) => i % 7 === 0)) {
      const bytes = encodeReceipt(receipt);
      for (let i = 0; i < bytes.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const bad = bytes.slice();
          bad[i]! ^= 1 << bit;
          let accepted = true;
          try {
            await verifyParsedReceipt(parseReceipt(bad), keys);
          } catch {
            accepted = false;
          }
          assert.ok(!accepted, `index ${receipt.index} byte ${i} bit ${bit} accepted`);
        }
      }
    }
  });

  it("say exactly what failed", async () => {
    const keys = [await parseVerifierKey(VKEY)];
    const receipt = tesseraReceipts()[5]!;
    const badProof = receipt.proof.map((h) => h.slice());
    badProof[1]![0]! ^= 0x80;
    assert.match(await rejection(verifyParsedReceipt({ ...receipt, proof: badProof }, keys)), /^inclusion proof does not lead to the checkpoint's root/);
    assert.match(await rejection(verifyParsedReceipt({ ...receipt, proof: receipt.proof.slice(1) }, keys)), /^inclusion proof: proof has 3 hashes, 4 expected/);
    assert.match(await rejection(verifyParsedReceipt({ ...receipt, index: 15n }, keys)), /^inclusion proof: index 15 is not below tree size 15/);
    assert.match(await rejection(verifyParsedReceipt({ ...receipt, extra: null }, keys)), /^receipt carries no entry/);
    assert.match(await rejection(verifyParsedReceipt(receipt, keys, { origin: "example.com/other" })), /^checkpoint: checkpoint is for origin/);
    const stranger = await signingKeyFromNoteKey(SKEY.replace("example.com/log/testdata+33d7b496", "stranger+00000000"), { ignoreKeyId: true });
    assert.match(await rejection(verifyParsedReceipt(receipt, [await parseVerifierKey(stranger.verifierKey)])), /^checkpoint: no signature by a trusted key \(signed by: example.com\/log\/testdata\+33d7b496\)$/);
    const cp = Buffer.from(receipt.checkpoint).toString().replace("\n15\n", "\n14\n");
    assert.match(await rejection(verifyParsedReceipt({ ...receipt, checkpoint: utf8(cp) }, keys)), /^checkpoint: invalid signature by example.com\/log\/testdata\+33d7b496/);
  });
});

describe("receipts of a log of evidence entries", async () => {
  const signer = await signingKeyFromNoteKey(SKEY);
  const evidence = ["incident report", "", "disk image \u{1F4BE}"].map((t) => utf8(t));
  const entries = evidence.map((bytes, i) =>
    encodeEntry({
      digest: new Uint8Array(createHash("sha256").update(bytes).digest()),
      size: BigInt(bytes.length),
      receivedMs: 1795960341123n + BigInt(i),
      mediaType: "text/plain",
      name: i === 1 ? "" : `file-${i}.txt`,
      principal: "responder@example.com",
      labels: [["case", "IR-7"]],
    }),
  );
  // An entry claiming the first evidence's digest with another size.
  const lying = encodeEntry({
    digest: new Uint8Array(createHash("sha256").update(evidence[0]!).digest()),
    size: 5n,
    receivedMs: 0n,
    mediaType: "text/plain",
    name: "",
    principal: "mallory",
    labels: [],
  });
  const all = [...entries, lying];
  const leaves = all.map(referenceLeafHash);
  const checkpoint = await signer.signNote(`${ORIGIN}\n${all.length}\n${toBase64(referenceRoot(leaves))}\n`);
  const receipt = (i: number): Receipt => ({ extra: all[i]!, index: BigInt(i), proof: referenceInclusionProof(i, leaves), checkpoint });

  it("verify with their evidence, and decode their entries", async () => {
    const keys = [await parseVerifierKey(signer.verifierKey)];
    for (let i = 0; i < evidence.length; i++) {
      const verified = await verifyParsedReceipt(parseReceipt(encodeReceipt(receipt(i))), keys, { evidence: evidence[i]! });
      assert.ok(verified.evidenceMatches);
      assert.ok(!("error" in verified.entry));
      if (!("error" in verified.entry)) {
        assert.equal(verified.entry.name, i === 1 ? null : `file-${i}.txt`);
        assert.equal(verified.entry.size, BigInt(evidence[i]!.length));
        assert.deepEqual(verified.entry.labels, [["case", "IR-7"]]);
      }
    }
  });

  it("reject other evidence, naming the digest or size that differs", async () => {
    const keys = [await parseVerifierKey(signer.verifierKey)];
    assert.match(await rejection(verifyParsedReceipt(receipt(0), keys, { evidence: evidence[2]! })), /^evidence SHA-256 differs from the entry's/);
    assert.match(await rejection(verifyParsedReceipt(receipt(3), keys, { evidence: evidence[0]! })), /^evidence size differs from the entry's: the file has 15 bytes, the entry logged 5/);
  });

  it("a log extends its earlier checkpoints and only those", async () => {
    const keys = [await parseVerifierKey(VKEY)];
    const leaves15 = WORDS.map((w) => referenceLeafHash(utf8(w)));
    const cp = (n: number): Uint8Array => readTestdata(`tessera-log/checkpoint.${n}`);
    for (let m = 0; m <= 15; m++) {
      for (const n of [m, 15]) {
        const proof = m === 0 || m === n ? [] : referenceConsistencyProof(m, leaves15.slice(0, n));
        const verdict = await verifyExtension(cp(m), cp(n), proof, keys);
        assert.equal(verdict.fromEmptyTree, m === 0);
      }
    }
    assert.match(await rejection(verifyExtension(cp(9), cp(4), [], keys)), /smaller than the saved one \(size 9\): the log was rolled back/);
    const proof = referenceConsistencyProof(5, leaves15.slice(0, 9));
    assert.match(await rejection(verifyExtension(cp(5), cp(9), proof.slice(1), keys)), /^consistency proof from size 5 to size 9 fails/);
    assert.match(await rejection(verifyExtension(cp(5), cp(9), proof, [])), /^saved checkpoint: no signature by a trusted key/);
    // A fork: the crafted log signed with the same key is not an extension.
    const forkKeys = [await parseVerifierKey(signer.verifierKey)];
    assert.match(await rejection(verifyExtension(checkpoint, cp(9), referenceConsistencyProof(4, leaves15.slice(0, 9)), forkKeys)), /^consistency proof from size 4 to size 9 fails/);
    assert.equal(toHex(referenceRoot([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it("verify as files, bytes or text, with a key file's text, returning origin, size, index and entry", async () => {
    const keyFile = `# the log's key\n${signer.verifierKey}\n`;
    for (let i = 0; i < evidence.length; i++) {
      const file = encodeReceipt(receipt(i));
      for (const given of [file, Buffer.from(file).toString("utf8")]) {
        const v = await verifyReceipt(given, keyFile, evidence[i]!);
        assert.equal(v.origin, ORIGIN);
        assert.equal(v.size, BigInt(all.length));
        assert.equal(v.index, BigInt(i));
        assert.equal(v.entry.principal, "responder@example.com");
        assert.equal(toHex(v.entry.digest), createHash("sha256").update(evidence[i]!).digest("hex"));
      }
    }
    const keys = [await parseVerifierKey(signer.verifierKey)];
    assert.equal((await verifyReceipt(encodeReceipt(receipt(2)), keys)).entry.name, "file-2.txt");
  });

  it("refuse, each with its reason, what evault verify refuses", async () => {
    const file = encodeReceipt(receipt(0));
    const text = Buffer.from(file).toString("utf8");
    const stranger = await signingKeyFromNoteKey(SKEY.replace("example.com/log/testdata+33d7b496", "stranger+00000000"), { ignoreKeyId: true });
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ["other evidence", () => verifyReceipt(file, signer.verifierKey, evidence[2]!), /^evidence SHA-256 differs from the entry's/],
      ["a key of another name", () => verifyReceipt(file, stranger.verifierKey), /^checkpoint: no signature by a trusted key/],
      ["no key", () => verifyReceipt(file, "# nothing but a comment\n"), /^no verifier key found$/],
      ["a mangled key", () => verifyReceipt(file, signer.verifierKey.replace("+33d7b496+", "+33d7b497+")), /^verifier key ID 33d7b497 does not match the key/],
      ["another index", () => verifyReceipt(text.replace("\nindex 0\n", "\nindex 1\n"), signer.verifierKey), /^inclusion proof does not lead to the checkpoint's root/],
      ["a header of another version", () => verifyReceipt(text.replace("@v1", "@v2"), signer.verifierKey), /^malformed receipt: first line is not c2sp.org\/tlog-proof@v1/],
      [
        "a word for an entry",
        () => verifyReceipt(encodeReceipt(tesseraReceipts()[3]!), VKEY),
        /^the logged entry is not an evidence entry \(unsupported entry version 102\)$/,
      ],
    ];
    for (const [what, check, reason] of cases) assert.match(await rejection(check()), reason, what);
  });

  it("keep the bytes given, even around them", () => {
    const bytes = encodeReceipt(receipt(1));
    const parsed = parseReceipt(concat(bytes));
    assert.deepEqual(parsed.checkpoint, checkpoint);
  });
});
