// How the page shows untrusted text: the same escapes as `evault verify`
// (evault_core::text::escape) for what would hide or rewrite text.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { formatSize, shortFingerprint, shown } from "../src/display.js";

describe("shown text", () => {
  it("escapes what would hide or rewrite text, as evault verify does", () => {
    assert.equal(shown("report.pdf"), "report.pdf");
    assert.equal(shown("evil\u202efdp.exe"), "evil\\u{202e}fdp.exe");
    assert.equal(shown("a\u2028b\u2029c"), "a\\u{2028}b\\u{2029}c");
    assert.equal(shown("\u001b[2J"), "\\u{1b}[2J");
    assert.equal(shown("zero\u200bwidth"), "zero\\u{200b}width");
    assert.equal(shown("no\u00a0break"), "no\\u{a0}break");
    assert.equal(shown("private\ue000"), "private\\u{e000}");
    assert.equal(shown("fake\\u{202e}"), "fake\\\\u{202e}");
    assert.equal(shown("\u0301leading"), "\\u{301}leading");
  });
  it("leaves ordinary text in any script, and markup, as it is", () => {
    for (const plain of ["café", "cafe\u0301", "日本語", "नमस्ते", "\"quoted\" 'too'", "😀", '<img src=x onerror="alert(1)">']) {
      assert.equal(shown(plain), plain);
    }
  });
});

describe("numbers", () => {
  it("writes sizes and fingerprints for people", () => {
    assert.equal(formatSize(1n), "1 byte");
    assert.equal(formatSize(1000n), "1,000 bytes");
    assert.equal(formatSize(2048n), "2,048 bytes (2.0 KiB)");
    assert.equal(formatSize(18446744073709551615n), "18,446,744,073,709,551,615 bytes (16.0 EiB)");
    assert.equal(shortFingerprint("0123456789abcdef0123"), "0123 4567 89ab cdef");
  });
});
