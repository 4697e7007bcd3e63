// The evidence-entry vectors of docs/vectors/evidence-entry-v1.json,
// produced by an encoder independent of the Rust one: every valid one
// decodes to its fields, every invalid one is refused.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { decodeEntry, formatReceived, leafHash, toHex } from "@evault/client";

import { REPO, parseJsonKeepingBigIntegers } from "./testdata.js";
import { encodeEntry } from "./entry-codec.js";

interface Vectors {
  valid: Array<{
    description: string;
    entry: {
      sha256: string;
      size: number | string;
      received_ms: number | string;
      media_type: string;
      name: string | null;
      principal: string;
      labels: Record<string, string>;
    };
    encoding: string;
    leaf_hash: string;
  }>;
  invalid: Array<{ description: string; encoding: string }>;
}

const vectors = parseJsonKeepingBigIntegers(
  readFileSync(join(REPO, "docs/vectors/evidence-entry-v1.json"), "utf8"),
) as Vectors;

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, "hex"));
}

describe("evidence entry vectors", () => {
  it("are found", () => {
    assert.ok(vectors.valid.length >= 4);
    assert.ok(vectors.invalid.length >= 15);
  });
  for (const v of vectors.valid) {
    it(`decodes: ${v.description}`, async () => {
      const bytes = hexBytes(v.encoding);
      const e = decodeEntry(bytes);
      assert.equal(toHex(e.digest), v.entry.sha256);
      assert.equal(e.size, BigInt(v.entry.size));
      assert.equal(e.receivedMs, BigInt(v.entry.received_ms));
      assert.equal(e.mediaType, v.entry.media_type);
      assert.equal(e.name, v.entry.name);
      assert.equal(e.principal, v.entry.principal);
      assert.deepEqual(
        e.labels.map(([k, val]) => [k, val]),
        Object.entries(v.entry.labels).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
      assert.equal(toHex(await leafHash(bytes)), v.leaf_hash);
    });
  }
  for (const v of vectors.invalid) {
    it(`refuses: ${v.description}`, () => {
      assert.throws(() => decodeEntry(hexBytes(v.encoding)), (e: Error) => e.message.length > 0);
    });
  }
});

describe("entry decoding", () => {
  const base = {
    digest: new Uint8Array(32).fill(7),
    size: 3n,
    receivedMs: 1700000000123n,
    mediaType: "text/plain",
    name: "notes.txt",
    principal: "alice",
    labels: [["case", "42"]] as Array<[string, string]>,
  };
  it("round trips through the test encoder", () => {
    const e = decodeEntry(encodeEntry(base));
    assert.equal(e.name, "notes.txt");
    assert.deepEqual(e.labels, [["case", "42"]]);
  });
  it("says what is wrong", () => {
    assert.throws(() => decodeEntry(encodeEntry({ ...base, principal: "ali\u001b[2Jce" })), /invalid principal: must not contain control characters/);
    assert.throws(() => decodeEntry(encodeEntry({ ...base, labels: [["b", ""], ["a", ""]] })), /label keys are not unique and in ascending byte order/);
    assert.throws(() => decodeEntry(encodeEntry({ ...base, mediaType: "t\u00e9xt" })), /invalid media type: must be printable ASCII/);
    assert.throws(() => decodeEntry(encodeEntry(base).slice(0, 40)), /entry is truncated in size/);
    assert.throws(() => decodeEntry(new Uint8Array(65536)), /at most 65535/);
  });
  it("formats the time received", () => {
    assert.equal(formatReceived(1795960341123n), "2026-11-29T13:52:21.123Z");
    assert.equal(formatReceived(18446744073709551615n), "18446744073709551615 ms after 1970-01-01T00:00:00Z");
  });
});
