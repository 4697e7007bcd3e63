// The signed-note vectors of golang.org/x/mod/sumdb/note and C2SP
// (shared/testdata/notes/signed-notes.txt), and the checkpoints of the
// Tessera tile log (shared/testdata/tessera-log).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";

import { keyFingerprint, openCheckpoint, parseCheckpoint, parseNote, parseVerifierKey, parseVerifierKeys, toBase64, toHex, verifyNote } from "@evault/client";

import { readTestdata, readTestdataText, utf8 } from "./testdata.js";
import { referenceLeafHash, referenceRoot } from "./reference-tree.js";
import { signingKeyFromNoteKey } from "./signing.js";

interface NoteVectors {
  signer: string;
  verifiers: string[];
  badVerifiers: string[];
  text: string;
  note: string;
}

/** The text between the line `start` and the line `end`, newlines kept. */
function block(file: string, start: string, end: string): string {
  const at = file.indexOf(start);
  assert.ok(at >= 0, `no ${start}`);
  const from = at + start.length;
  const to = file.indexOf(end, from);
  assert.ok(to >= 0, `no ${end}`);
  return file.slice(from, to + 1);
}

function noteVectors(): NoteVectors {
  const file = readTestdataText("notes/signed-notes.txt");
  const values = (name: string): string[] =>
    file
      .split("\n")
      .filter((l) => l.startsWith(`${name}: `))
      .map((l) => l.slice(name.length + 2));
  return {
    signer: values("signer-key")[0]!,
    verifiers: values("verifier-key"),
    badVerifiers: values("bad-verifier-key"),
    text: block(file, "\ntext:\n", "\nnote:\n"),
    note: block(file, "\nnote:\n", "\nend\n"),
  };
}

async function rejection(check: Promise<unknown>): Promise<string> {
  try {
    await check;
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail("accepted");
}

const TESSERA_VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const WORDS = "one two three four five six seven eit nain ten ileven twelf threeten fourten fivten".split(" ");

describe("signed notes", () => {
  const v = noteVectors();

  it("the vectors are found", () => {
    assert.equal(v.verifiers.length, 2);
    assert.equal(v.badVerifiers.length, 3);
    assert.ok(v.text.length > 0 && v.note.startsWith(v.text));
  });

  it("parses the verifier keys and their key IDs", async () => {
    const keys = await Promise.all(v.verifiers.map(parseVerifierKey));
    assert.deepEqual(
      keys.map((k) => [k.name, k.keyId.toString(16), k.text]),
      [
        ["PeterNeumann", "c74f20a3", v.verifiers[0]],
        ["EnochRoot", "af0cfe78", v.verifiers[1]],
      ],
    );
  });

  it("rejects the malformed verifier keys", async () => {
    for (const bad of v.badVerifiers) await rejection(parseVerifierKey(bad));
    assert.match(await rejection(parseVerifierKey(v.badVerifiers[2]!)), /key ID c74f20a4 does not match the key \(expected c74f20a3\)/);
    assert.match(await rejection(parseVerifierKey("PeterNeumann")), /malformed verifier key/);
    assert.match(await rejection(parseVerifierKeys("# only a comment\n")), /no verifier key found/);
  });

  it("a note with two signatures verifies with either key and with both", async () => {
    const keys = await Promise.all(v.verifiers.map(parseVerifierKey));
    const note = parseNote(utf8(v.note));
    assert.equal(note.text, v.text);
    assert.equal(note.signatures.length, 2);
    assert.equal((await verifyNote(note, keys)).length, 2);
    for (const key of keys) assert.deepEqual(await verifyNote(note, [key]), [key]);
  });

  it("signing the text with the signer key reproduces the published signature", async () => {
    const signer = await signingKeyFromNoteKey(v.signer);
    assert.equal(signer.verifierKey, v.verifiers[0]);
    const note = parseNote(utf8(v.note));
    assert.equal(toBase64(await signer.sign(utf8(v.text))), toBase64(note.signatures[0]!.signature));
  });

  it("a note no trusted key signed is rejected, naming its signers", async () => {
    const other = await parseVerifierKey(TESSERA_VKEY);
    const note = parseNote(utf8(v.note));
    assert.match(await rejection(verifyNote(note, [other])), /^no signature by a trusted key \(signed by: PeterNeumann\+c74f20a3, EnochRoot\+af0cfe78\)$/);
  });

  it("an altered text is rejected as a bad signature by the trusted key", async () => {
    const keys = await Promise.all(v.verifiers.map(parseVerifierKey));
    const altered = parseNote(utf8(v.note.replace("cryptography", "Cryptography")));
    assert.match(await rejection(verifyNote(altered, [keys[1]!])), /^invalid signature by EnochRoot\+af0cfe78/);
  });

  it("rejects malformed notes, saying why", () => {
    const sig = v.note.slice(v.text.length + 1);
    const cases: Array<[string, RegExp]> = [
      [v.text, /no blank line before the signatures/],
      [v.note.slice(0, -1), /signature block does not end in a newline/],
      [`${v.text}\n${sig.replace("\u2014", "-")}`, /does not start with an em dash/],
      [`${v.text}\n\u2014 PeterNeumann\n`, /signature line without a signature/],
      [`${v.text}\n\u2014 PeterNeumann !!!!\n`, /signature is not base64/],
      [`${v.text}\n\u2014 PeterNeumann AAAA\n`, /signature too short/],
      [`tab\there\n\n${sig}`, /control character/],
    ];
    for (const [text, reason] of cases) assert.throws(() => parseNote(utf8(text)), reason, JSON.stringify(text));
    assert.throws(() => parseNote(Uint8Array.of(0xff, 0x0a, 0x0a)), /not UTF-8/);
  });

  it("fingerprints a key as the SHA-256 of its line", async () => {
    const line = v.verifiers[0]!;
    const want = createHash("sha256").update(line).digest("hex");
    assert.equal(await keyFingerprint(line), want);
    assert.equal(await keyFingerprint(`${line}\n`), want);
  });
});

describe("tessera log checkpoints", () => {
  it("every checkpoint verifies with the log's key and has the root of its entries", async () => {
    const key = await parseVerifierKey(TESSERA_VKEY);
    const leaves = WORDS.map((w) => referenceLeafHash(utf8(w)));
    for (let size = 0; size <= 15; size++) {
      const signed = await openCheckpoint(readTestdata(`tessera-log/checkpoint.${size}`), [key], "example.com/log/testdata");
      assert.equal(signed.checkpoint.size, BigInt(size));
      assert.equal(toHex(signed.checkpoint.root), toHex(referenceRoot(leaves.slice(0, size))));
      assert.deepEqual(signed.checkpoint.extensions, []);
    }
    const latest = await openCheckpoint(readTestdata("tessera-log/checkpoint"), [key]);
    assert.equal(latest.checkpoint.size, 15n);
  });

  it("a checkpoint of another origin, or signed by a key of another name, is rejected", async () => {
    const key = await parseVerifierKey(TESSERA_VKEY);
    const bytes = readTestdata("tessera-log/checkpoint");
    assert.match(await rejection(openCheckpoint(bytes, [key], "example.com/other")), /checkpoint is for origin "example.com\/log\/testdata", expected "example.com\/other"/);
    const signer = await signingKeyFromNoteKey("PRIVATE+KEY+someone.else+00000000+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg", { ignoreKeyId: true });
    const note = await signer.signNote("example.com/log/testdata\n1\n" + toBase64(new Uint8Array(32)) + "\n");
    assert.match(await rejection(openCheckpoint(note, [await parseVerifierKey(signer.verifierKey)])), /is not signed by a trusted key of that name/);
  });

  it("rejects malformed checkpoint bodies", () => {
    const root = toBase64(new Uint8Array(32));
    for (const text of [`o\n07\n${root}\n`, `o\n-1\n${root}\n`, `\n7\n${root}\n`, "o\n7\nAAAA\n", `o\n7\n${root}`, `o\n7\n${root}\n\n`, "o\n7\n", `o\n18446744073709551616\n${root}\n`]) {
      assert.throws(() => parseCheckpoint(text), /malformed checkpoint/, JSON.stringify(text));
    }
    assert.deepEqual(parseCheckpoint(`o\n18446744073709551615\n${root}\next\n`).extensions, ["ext"]);
  });
});
