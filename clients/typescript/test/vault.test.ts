// Against a real vault: starts `evault up` (EVAULT_BIN, by default the
// repository's target/debug/evault) on a free port with a fresh data
// directory; appends through createVaultClient over gRPC on HTTP/2, unary
// and streamed; has `evault verify` accept the receipt files this client
// writes; reads the log back and verifies what it reads; and has
// verifyReceipt accept the receipts `evault append` writes and refuse
// tampered ones, each for its reason.

import assert from "node:assert/strict";
import { type ChildProcessByStdio, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";

import {
  Code,
  ConnectError,
  type Statement,
  type VaultClient,
  createVaultClient,
  encodeReceipt,
  leafHash,
  openCheckpoint,
  parseVerifierKeys,
  toHex,
  verifyExtension,
  verifyInclusion,
  verifyReceipt,
} from "@evault/client";

import { REPO } from "./testdata.js";

const EVAULT = process.env["EVAULT_BIN"] || resolve(REPO, "target/debug/evault");

type Vault = ChildProcessByStdio<null, Readable, Readable>;

/** Starts `evault up` and resolves with it and its base URL once it serves. */
function startVault(dataDir: string): Promise<{ child: Vault; base: string }> {
  return new Promise((resolveStart, reject) => {
    const child = spawn(EVAULT, ["up", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env["RUST_LOG"] || "warn" },
    });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`evault up did not start in 60 s; stderr:\n${err}`)), 60_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${EVAULT} (set EVAULT_BIN): ${e.message}`));
    });
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (!out.includes("\n")) return;
      clearTimeout(timer);
      const line = out.split("\n")[0]!;
      const match = /^evault up: serving \S+ on (http:\/\/\S+)/.exec(line);
      if (match) resolveStart({ child, base: match[1]! });
      else reject(new Error(`unexpected first line from evault up: ${JSON.stringify(line)}`));
    });
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`evault up exited (${code ?? signal}) before serving; stderr:\n${err}`));
    });
  });
}

/** Stops the vault: SIGTERM, then SIGKILL if it lingers. */
async function stopVault(child: Vault): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const killed = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(killed);
}

/** Runs the evault CLI. */
function evault(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(EVAULT, args, { encoding: "utf8", timeout: 60_000 });
  if (r.error) throw new Error(`evault ${args[0]}: ${r.error.message}`);
  return r;
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

async function rejection(check: Promise<unknown>): Promise<string> {
  try {
    await check;
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail("accepted");
}

describe("a real vault", () => {
  let child: Vault;
  let base: string;
  let work: string;
  let dataDir: string;
  let vkeyFile: string;
  let vkey: string;
  let token: string;
  let client: VaultClient;
  /** The checkpoint note of the first append's receipt. */
  let firstCheckpoint: Uint8Array;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "evault-client-"));
    dataDir = join(work, "data");
    ({ child, base } = await startVault(dataDir));
    vkeyFile = join(dataDir, "verifier-key");
    vkey = readFileSync(vkeyFile, "utf8");
    token = readFileSync(join(dataDir, "dev-token"), "utf8").trim();
    client = createVaultClient(base, { token });
  });

  after(async () => {
    if (child !== undefined) await stopVault(child);
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  const evidence = randomBytes(3000);
  const statement = (): Statement => ({
    sha256: sha256(evidence),
    size: BigInt(evidence.length),
    mediaType: "application/octet-stream",
    name: "evidence.bin",
    labels: [
      { key: "source", value: "client-test" },
      { key: "case", value: "IR-7" },
    ],
    content: evidence,
  });

  it("appends over HTTP/2, and evault verify accepts the receipt file written from the answer", async () => {
    const { receipt, duplicate } = await client.append(statement());
    assert.equal(duplicate, false);
    firstCheckpoint = receipt.checkpoint;
    const evidencePath = join(work, "evidence.bin");
    writeFileSync(evidencePath, evidence);
    const receiptPath = join(work, "evidence.bin.tlog-proof");
    const file = encodeReceipt(receipt);
    writeFileSync(receiptPath, file);
    const r = evault("verify", "--vkey-file", vkeyFile, "--evidence", evidencePath, receiptPath);
    assert.equal(r.status, 0, `evault verify refused it: ${r.stderr}${r.stdout}`);
    assert.match(r.stdout, /receipt verified/);
    assert.match(r.stdout, /label +case=IR-7/);

    const verified = await verifyReceipt(file, vkey, evidence);
    assert.equal(verified.index, receipt.index);
    assert.equal(verified.entry.name, "evidence.bin");
    assert.deepEqual(verified.entry.labels, [
      ["case", "IR-7"],
      ["source", "client-test"],
    ]);
    assert.equal(verified.origin, (await parseVerifierKeys(vkey))[0]!.name);
  });

  it("answers a repeated append with the original entry's receipt, marked duplicate", async () => {
    const first = await client.append(statement());
    const again = await client.append(statement());
    assert.equal(again.duplicate, true);
    assert.equal(again.receipt.index, first.receipt.index);
    assert.deepEqual(again.receipt.extra, first.receipt.extra);
  });

  it("refuses an append without the token, with UNAUTHENTICATED", async () => {
    const anonymous = createVaultClient(base);
    const e = await anonymous.append(statement()).then(
      () => assert.fail("accepted"),
      (e: unknown) => ConnectError.from(e),
    );
    assert.equal(e.code, Code.Unauthenticated);
  });

  it("streams appends, one answer per statement in order, a refused statement failing alone", async () => {
    const files = [randomBytes(10), randomBytes(20), randomBytes(30)];
    const statements: Statement[] = files.map((f, i) => ({
      sha256: sha256(f),
      size: BigInt(f.length),
      mediaType: "application/octet-stream",
      name: `streamed-${i}`,
    }));
    statements.splice(1, 0, { sha256: new Uint8Array(31), size: 1n, mediaType: "text/plain" });
    const answers = [];
    for await (const answer of client.appendStream(statements)) answers.push(answer);
    assert.deepEqual(
      answers.map((a) => a.position),
      [0, 1, 2, 3],
    );
    const refused = answers[1]!;
    assert.ok(refused.error !== undefined, "the statement with a 31-byte digest was logged");
    assert.equal(refused.error.code, Code.InvalidArgument);
    assert.match(refused.error.rawMessage, /sha256/);
    for (const [i, at] of [0, 2, 3].entries()) {
      const answer = answers[at]!;
      assert.ok(answer.error === undefined, `statement ${at} refused: ${answer.error?.message}`);
      const verified = await verifyReceipt(encodeReceipt(answer.receipt), vkey, files[i]!);
      assert.equal(verified.entry.name, `streamed-${i}`);
    }
  });

  it("reads the log back: every entry proven in the verified checkpoint, which extends the earlier ones", async () => {
    const keys = await parseVerifierKeys(vkey);
    const latest = await openCheckpoint(await client.checkpoint(), keys);
    const size = latest.checkpoint.size;
    assert.equal(size, 4n, "one append, one duplicate, three streamed");
    const entries = await client.entries(0n, Number(size));
    assert.deepEqual(
      entries.map((e) => e.index),
      [0n, 1n, 2n, 3n],
    );
    for (const e of entries) {
      const proof = await client.inclusionProof(e.index, size);
      assert.equal(proof.treeSize, size);
      await verifyInclusion(e.index, size, await leafHash(e.entry), proof.proof, latest.checkpoint.root);
      const byHash = await client.inclusionProof(await leafHash(e.entry));
      assert.equal(byHash.index, e.index);
    }
    const first = await openCheckpoint(firstCheckpoint, keys);
    assert.equal(first.checkpoint.size, 1n);
    const consistency = await client.consistencyProof(1n, size);
    const extension = await verifyExtension(firstCheckpoint, consistency.checkpoint, consistency.proof, keys);
    assert.equal(extension.newer.checkpoint.size, size);
    assert.match(
      await rejection(verifyExtension(firstCheckpoint, consistency.checkpoint, consistency.proof.slice(1), keys)),
      /^consistency proof from size 1 to size 4 fails/,
    );
    const found = await client.find(sha256(evidence));
    assert.deepEqual(
      found.entries.map((e) => e.index),
      [0n],
    );
    assert.equal(found.nextPageToken, "");
    assert.deepEqual(await client.verifierKeys(), [vkey.split("\n").find((l) => l.trim() !== "" && !l.startsWith("#"))!.trim()]);
  });

  it("verifies the receipts evault append writes, and refuses tampered ones for their reason", async () => {
    const cliDir = join(work, "cli");
    mkdirSync(cliDir);
    const evidencePath = join(cliDir, "report.pdf");
    const cliEvidence = randomBytes(500);
    writeFileSync(evidencePath, cliEvidence);
    const r = evault("append", "--server", base, "--token-file", join(dataDir, "dev-token"), "--label", "case=IR-9", evidencePath);
    assert.equal(r.status, 0, `evault append failed: ${r.stderr}${r.stdout}`);
    const file = readFileSync(join(cliDir, "report.pdf.tlog-proof"));
    const verified = await verifyReceipt(new Uint8Array(file), vkey, cliEvidence);
    assert.equal(verified.index, 4n);
    assert.equal(verified.size, 5n);
    assert.equal(verified.entry.name, "report.pdf");
    assert.equal(toHex(verified.entry.digest), toHex(sha256(cliEvidence)));
    assert.deepEqual(verified.entry.labels, [["case", "IR-9"]]);

    // Entry 4 of a tree of 5: its proof is one hash, the root of the
    // first four entries.
    const text = file.toString("utf8");
    const lines = text.split("\n");
    const at = text.indexOf("\n\n") + 2;
    const root = text.slice(at).split("\n")[2]!;
    const flip = (s: string): string => (s[0] === "A" ? "B" : "A") + s.slice(1);
    const withLine = (i: number, line: string): string => lines.map((l, j) => (j === i ? line : l)).join("\n");
    const tampered: Array<[string, string | Uint8Array, RegExp]> = [
      ["a proof hash changed", withLine(3, flip(lines[3]!)), /^inclusion proof does not lead to the checkpoint's root/],
      ["the index changed", withLine(2, "index 3"), /^inclusion proof: proof has 1 hashes, 3 expected/],
      ["the index past the tree", withLine(2, "index 5"), /^inclusion proof: index 5 is not below tree size 5/],
      ["a proof hash dropped", lines.filter((_, j) => j !== 3).join("\n"), /^inclusion proof: proof has 0 hashes, 1 expected/],
      ["the entry changed", withLine(1, `extra ${flip(lines[1]!.slice("extra ".length))}`), /^inclusion proof does not lead to the checkpoint's root/],
      ["the checkpoint's root changed", text.slice(0, at) + text.slice(at).replace(root, flip(root)), /^checkpoint: invalid signature by /],
      ["the header changed", text.replace("tlog-proof@v1", "tlog-proof@v2"), /^malformed receipt: first line is not c2sp.org\/tlog-proof@v1/],
      ["the checkpoint cut off", text.slice(0, at), /^malformed receipt: no checkpoint/],
    ];
    for (const [what, bytes, reason] of tampered) {
      assert.match(await rejection(verifyReceipt(bytes, vkey)), reason, what);
      const path = join(work, "tampered.tlog-proof");
      writeFileSync(path, bytes);
      assert.notEqual(evault("verify", "--vkey-file", vkeyFile, path).status, 0, `evault verify accepted: ${what}`);
    }
    assert.match(await rejection(verifyReceipt(file, vkey, evidence)), /^evidence SHA-256 differs from the entry's/);
  });
});
