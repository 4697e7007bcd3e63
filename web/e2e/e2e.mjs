// End-to-end test of the browser UI against a real vault: starts
// `EVAULT_BIN up` on a free port with a fresh data directory, drives
// Debian's Chromium (headless, through playwright-core) through the Log,
// Append and Verify pages, cross-checks the page's receipts with
// `evault verify` and the CLI's receipts in the page, probes for script
// injection through entry names and labels, and checks the security
// headers. Screenshots go to e2e/artifacts/. Exits non-zero on the first
// failure, saying what failed; the server is always stopped.
//
//   EVAULT_BIN=../target/debug/evault npm run e2e
//   (CHROMIUM=/path/to/chromium to use another browser)

import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(HERE, "artifacts");
const EVAULT = process.env.EVAULT_BIN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 20_000;

const XSS_NAME = '<img src=x onerror="window.__xss=1">';
const XSS_LABEL = "<script>window.__xss=2</script>";
const XSS_CLI_NAME = '<img src=x onerror="window.__xss=3">';
const XSS_CLI_LABEL = "<script>window.__xss=4</script>";

let passed = 0;
let server = null;
let browser = null;
let work = null;

function fail(message) {
  throw new Error(message);
}

async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    throw new Error(`${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
  passed++;
  console.log(`ok ${passed} - ${name}`);
}

/** Starts `evault up` and resolves with its base URL once it serves. */
function startVault(dataDir) {
  return new Promise((resolveBase, reject) => {
    const child = spawn(EVAULT, ["up", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
    });
    server = child;
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`evault up did not start in 60 s; stderr:\n${err}`)), 60_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const line = out.split("\n")[0];
      const match = /^evault up: serving \S+ on (http:\/\/\S+)/.exec(line);
      if (out.includes("\n") && match) {
        clearTimeout(timer);
        resolveBase(match[1]);
      } else if (out.includes("\n")) {
        clearTimeout(timer);
        reject(new Error(`unexpected first line from evault up: ${JSON.stringify(line)}`));
      }
    });
    child.stderr.on("data", (chunk) => {
      err += chunk;
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`evault up exited (${code ?? signal}) before serving; stderr:\n${err}`));
    });
  });
}

/** Stops the server: SIGTERM, then SIGKILL if it lingers. */
async function stopVault() {
  if (server === null || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  const killed = setTimeout(() => server.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(killed);
}

/** Runs the evault CLI; returns {status, stdout, stderr}. */
function evault(...args) {
  const r = spawnSync(EVAULT, args, { encoding: "utf8", timeout: 60_000 });
  if (r.error) fail(`evault ${args[0]}: ${r.error.message}`);
  return r;
}

function checkBrowserHeaders(what, headers) {
  const csp = headers.get("content-security-policy") ?? fail(`${what}: no Content-Security-Policy header`);
  const directives = new Map(
    csp
      .split(";")
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...values]) => [name, values]),
  );
  const want = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
  };
  for (const [name, values] of Object.entries(want)) {
    const got = directives.get(name);
    if (!got || got.join(" ") !== values.join(" ")) fail(`${what}: CSP ${name} is ${got ? got.join(" ") : "missing"}, want ${values.join(" ")} (CSP: ${csp})`);
  }
  if (/unsafe-inline|unsafe-eval/.test(csp)) fail(`${what}: CSP allows unsafe-*: ${csp}`);
  if (headers.get("x-content-type-options") !== "nosniff") fail(`${what}: X-Content-Type-Options is ${headers.get("x-content-type-options")}`);
  if (headers.get("referrer-policy") !== "no-referrer") fail(`${what}: Referrer-Policy is ${headers.get("referrer-policy")}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function waitState(page, selector, state) {
  const locator = page.locator(`${selector}[data-state="${state}"]`).first();
  try {
    await locator.waitFor({ timeout: TIMEOUT });
  } catch {
    const actual = await page.locator(selector).first().evaluate((n) => `${n.dataset.state ?? "(no state)"}: ${n.textContent}`).catch(() => "(absent)");
    fail(`${selector} did not reach state ${state}; it is ${actual}`);
  }
  return locator;
}

async function download(page, selector, path) {
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: TIMEOUT }), page.locator(selector).first().click()]);
  await dl.saveAs(path);
  return readFileSync(path);
}

async function main() {
  if (!EVAULT) fail("set EVAULT_BIN to the evault binary, e.g. EVAULT_BIN=../target/debug/evault");
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  work = mkdtempSync(join(tmpdir(), "evault-e2e-"));
  const dataDir = join(work, "data");
  const base = await startVault(dataDir);
  console.log(`# vault at ${base}, data in ${dataDir}`);
  const vkeyFile = join(dataDir, "verifier-key");
  const vkey = readFileSync(vkeyFile, "utf8").split("\n").map((l) => l.trim()).find((l) => l && !l.startsWith("#"));
  const token = readFileSync(join(dataDir, "dev-token"), "utf8").trim();

  await step("/ and a script asset carry the CSP, nosniff and no-referrer", async () => {
    const page = await fetch(`${base}/`);
    if (page.status !== 200) fail(`GET / answered ${page.status}`);
    checkBrowserHeaders("GET /", page.headers);
    const html = await page.text();
    if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html)) fail("index.html has an inline script");
    if (/<style|\sstyle=/i.test(html)) fail("index.html has inline style");
    const script = /<script[^>]*\bsrc="([^"]+\.js)"/.exec(html)?.[1] ?? fail("index.html loads no script");
    const asset = await fetch(new URL(script, base));
    if (asset.status !== 200) fail(`GET ${script} answered ${asset.status}`);
    checkBrowserHeaders(`GET ${script}`, asset.headers);
    if (!/javascript/.test(asset.headers.get("content-type") ?? "")) fail(`${script} is served as ${asset.headers.get("content-type")}`);
    const keys = await fetch(`${base}/verifier-keys`);
    if ((await keys.text()).trim().split("\n")[0]?.trim() !== vkey) fail("/verifier-keys does not list DATA_DIR/verifier-key");
  });

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], headless: true });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const problems = [];
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(`${e.violatedDirective}: ${e.blockedURI}`));
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });

  await step("Log page: the gateway's key is offered with its fingerprint, and trusting it verifies the checkpoint", async () => {
    await page.goto(`${base}/#/log`);
    const served = page.locator('[data-testid="server-key"]').first();
    await served.waitFor({ timeout: TIMEOUT });
    const text = await served.textContent();
    if (!text.includes(vkey)) fail(`the key offered is not DATA_DIR/verifier-key: ${text}`);
    const fingerprint = createHash("sha256").update(vkey).digest("hex").slice(0, 16).replace(/(.{4})(?=.)/g, "$1 ");
    if (!text.includes(fingerprint)) fail(`fingerprint ${fingerprint} not shown: ${text}`);
    await waitState(page, "#checkpoint-status", "info");
    await served.locator('[data-testid="trust-key"]').click();
    await page.locator('[data-testid="trusted-key"]').first().waitFor({ timeout: TIMEOUT });
    await waitState(page, "#checkpoint-status", "ok");
    const stored = await page.evaluate(() => localStorage.getItem("evault.trustedKeys"));
    if (!stored.includes(vkey)) fail(`the trusted key is not kept in localStorage: ${stored}`);
    await shot(page, "1-log-trusted");
  });

  await step("Append page: a bad token is refused with the gRPC status", async () => {
    await page.click("#nav-append");
    await page.fill("#token", "not-a-token");
    await page.setInputFiles("#append-file", { name: "refused.txt", mimeType: "text/plain", buffer: Buffer.from("refused") });
    await page.locator('[data-testid="pending-file"]').first().waitFor({ timeout: TIMEOUT });
    await page.click("#append-button");
    const result = await waitState(page, '[data-testid="append-result"]', "fail");
    const text = await result.textContent();
    if (!/UNAUTHENTICATED/.test(text)) fail(`the refusal does not show the status: ${text}`);
  });

  const evidencePath = join(work, "evidence.bin");
  const evidence = randomBytes(3000);
  writeFileSync(evidencePath, evidence);
  const pageReceipt = join(work, "page.tlog-proof");
  await step("Append page: a file is hashed, uploaded, appended, and its receipt verified in the page", async () => {
    await page.fill("#token", token);
    const stored = await page.evaluate(() => [sessionStorage.getItem("evault.token"), localStorage.getItem("evault.token")]);
    if (stored[0] !== token || stored[1] !== null) fail("the token is not kept in sessionStorage only");
    await page.setInputFiles("#append-file", evidencePath);
    await page.locator('[data-testid="pending-file"]').first().waitFor({ timeout: TIMEOUT });
    const pendingText = await page.locator('[data-testid="pending-file"]').first().textContent();
    const digest = createHash("sha256").update(evidence).digest("hex");
    if (!pendingText.includes(digest)) fail(`the page's SHA-256 is not ${digest}: ${pendingText}`);
    await page.fill("#labels", "case=IR-7\nsource=e2e");
    await page.check("#upload");
    await page.click("#append-button");
    const result = await waitState(page, '[data-testid="append-result"]', "ok");
    const text = await result.textContent();
    if (!/receipt verified in this page/.test(text)) fail(`the receipt was not verified in the page: ${text}`);
    const bytes = await download(page, '[data-testid="append-result"][data-state="ok"] [data-testid="receipt-download"]', pageReceipt);
    if (!bytes.toString("latin1").startsWith("c2sp.org/tlog-proof@v1\nextra ")) fail("the downloaded receipt is not a tlog-proof with an entry");
    await page.uncheck("#upload");
    await shot(page, "2-append");
  });

  await step("evault verify accepts the receipt the page wrote", async () => {
    const r = evault("verify", "--vkey-file", vkeyFile, "--evidence", evidencePath, pageReceipt);
    if (r.status !== 0) fail(`exit ${r.status}: ${r.stderr}${r.stdout}`);
    if (!r.stdout.includes("receipt verified")) fail(`unexpected output: ${r.stdout}`);
  });

  const savedCheckpoint = join(work, "checkpoint-1.txt");
  await step("Log page: the checkpoint of size 1 can be saved", async () => {
    await page.click("#nav-log");
    await page.waitForFunction(() => document.querySelector("#checkpoint-size")?.textContent === "1", null, { timeout: TIMEOUT });
    await waitState(page, "#checkpoint-status", "ok");
    const bytes = await download(page, "#checkpoint-download", savedCheckpoint);
    if (!bytes.toString("utf8").includes("\n\n\u2014 ")) fail("the saved checkpoint is not a signed note");
  });

  const cliDir = join(work, "cli");
  mkdirSync(cliDir);
  const cliEvidence = join(cliDir, XSS_CLI_NAME);
  writeFileSync(cliEvidence, randomBytes(100));
  const cliReceipt = join(cliDir, "receipts", `${XSS_CLI_NAME}.tlog-proof`);
  await step("evault append logs an entry whose name and label are markup", async () => {
    const r = evault(
      "append",
      "--server", base,
      "--token-file", join(dataDir, "dev-token"),
      "--receipts", join(cliDir, "receipts"),
      "--label", `probe=${XSS_CLI_LABEL}`,
      cliEvidence,
    );
    if (r.status !== 0) fail(`exit ${r.status}: ${r.stderr}${r.stdout}`);
  });

  await step("Verify page: the page's receipt verifies with its evidence, offline", async () => {
    await page.click("#nav-verify");
    await page.setInputFiles("#receipt-file", pageReceipt);
    await page.setInputFiles("#evidence-file", evidencePath);
    const result = await waitState(page, "#receipt-result", "ok");
    await page.locator("#receipt-details").waitFor({ timeout: TIMEOUT });
    const text = await result.textContent();
    if (!/Receipt verified/.test(text) || !/SHA-256 and size match/.test(text)) fail(`unexpected result: ${text}`);
    await shot(page, "3-verify-ok");
  });

  await step("Verify page: evidence other than the entry's is rejected", async () => {
    await page.setInputFiles("#evidence-file", { name: "other.bin", mimeType: "application/octet-stream", buffer: Buffer.from("other") });
    const text = await (await waitState(page, "#receipt-result", "fail")).textContent();
    if (!/evidence SHA-256 differs from the entry's/.test(text)) fail(`unexpected reason: ${text}`);
  });

  await step("Verify page: the receipt evault append wrote verifies", async () => {
    await page.setInputFiles("#evidence-file", cliEvidence);
    await page.setInputFiles("#receipt-file", cliReceipt);
    const text = await (await waitState(page, "#receipt-result", "ok")).textContent();
    if (!text.includes(XSS_CLI_NAME)) fail(`the entry's name is not shown literally: ${text}`);
  });

  // The receipt evault append wrote is of entry 1 in a tree of 2: its
  // proof has a hash to change.
  const receiptText = readFileSync(cliReceipt, "latin1");
  const lines = receiptText.split("\n");
  const tampered = [
    {
      what: "a proof hash changed",
      // The first proof line comes after the header, extra and index lines;
      // a receipt of a one-entry tree has none, so the index is changed then.
      bytes: (() => {
        const l = lines.slice();
        if (l[3] !== "") l[3] = (l[3][0] === "A" ? "B" : "A") + l[3].slice(1);
        else l[2] = "index 1";
        return Buffer.from(l.join("\n"), "latin1");
      })(),
      reason: /inclusion proof/,
    },
    {
      what: "one byte of the checkpoint note changed",
      bytes: (() => {
        const at = receiptText.indexOf("\n\n") + 2;
        const cp = receiptText.slice(at);
        const root = cp.split("\n")[2];
        const changed = (root[0] === "A" ? "B" : "A") + root.slice(1);
        return Buffer.from(receiptText.slice(0, at) + cp.replace(root, changed), "latin1");
      })(),
      reason: /checkpoint: invalid signature by /,
    },
  ];
  for (const [i, t] of tampered.entries()) {
    await step(`Verify page: a receipt with ${t.what} is rejected with its reason`, async () => {
      const path = join(work, `tampered-${i}.tlog-proof`);
      writeFileSync(path, t.bytes);
      const r = evault("verify", "--vkey-file", vkeyFile, path);
      if (r.status === 0) fail("evault verify accepted it");
      await page.setInputFiles("#receipt-file", path);
      const text = await (await waitState(page, "#receipt-result", "fail")).textContent();
      if (!t.reason.test(text)) fail(`unexpected reason: ${text}`);
      await shot(page, `4-verify-tampered-${i}`);
    });
  }

  await step("Append page: an entry named and labelled with markup is appended", async () => {
    await page.click("#nav-append");
    await page.setInputFiles("#append-file", { name: XSS_NAME, mimeType: "text/html", buffer: Buffer.from("<b>probe</b>") });
    await page.locator('[data-testid="pending-file"]').first().waitFor({ timeout: TIMEOUT });
    await page.fill("#labels", `probe=${XSS_LABEL}`);
    await page.click("#append-button");
    await page.waitForFunction(
      () => [...document.querySelectorAll('[data-testid="append-result"]')].filter((n) => n.dataset.state === "ok").length >= 2,
      null,
      { timeout: TIMEOUT },
    );
  });

  await step("Log page: markup in names and labels is shown literally and never runs", async () => {
    await page.click("#nav-log");
    await waitState(page, "#checkpoint-status", "ok");
    await page.waitForFunction(() => document.querySelectorAll('#entries [data-testid="entry-row"]').length >= 3, null, { timeout: TIMEOUT });
    const names = await page.locator('#entries [data-testid="entry-name"]').allTextContents();
    const labels = await page.locator('#entries [data-testid="entry-label"]').allTextContents();
    for (const name of [XSS_NAME, XSS_CLI_NAME]) if (!names.includes(name)) fail(`name ${name} not shown literally; names: ${JSON.stringify(names)}`);
    for (const label of [`probe=${XSS_LABEL}`, `probe=${XSS_CLI_LABEL}`]) if (!labels.includes(label)) fail(`label ${label} not shown literally; labels: ${JSON.stringify(labels)}`);
    const injected = await page.evaluate(() => ({
      xss: window.__xss,
      images: document.querySelectorAll("main img").length,
      scripts: document.querySelectorAll("main script").length,
    }));
    if (injected.xss !== undefined) fail(`window.__xss is ${injected.xss}: injected script ran`);
    if (injected.images + injected.scripts !== 0) fail(`markup became elements: ${JSON.stringify(injected)}`);
    await page.waitForFunction(() => /Extends the checkpoint of size/.test(document.querySelector("#checkpoint-history")?.textContent ?? ""), null, { timeout: TIMEOUT });
    await shot(page, "5-log-xss");
  });

  await step("Log page: an entry's inclusion is proven in the page and offered as a receipt", async () => {
    await page.locator('#entries [data-testid="entry-prove"]').first().click();
    await waitState(page, '#entries [data-testid="prove-result"]', "ok");
    const path = join(work, "proven.tlog-proof");
    await download(page, '#entries [data-testid="entry-receipt-download"]', path);
    const r = evault("verify", "--vkey-file", vkeyFile, path);
    if (r.status !== 0) fail(`evault verify refused it: ${r.stderr}`);
  });

  await step("Log page: evidence is found by a dropped file's digest", async () => {
    await page.setInputFiles("#find-file", evidencePath);
    await waitState(page, "#find-status", "ok");
    const rows = await page.locator('#find-results [data-testid="entry-row"]').count();
    if (rows !== 1) fail(`${rows} results, 1 expected`);
    const digest = createHash("sha256").update(evidence).digest("hex");
    const shown = await page.locator('#find-results [data-testid="entry-digest"]').first().textContent();
    if (shown !== digest) fail(`found digest ${shown}, expected ${digest}`);
    await shot(page, "6-log-find");
  });

  await step("Verify page: the current log extends the checkpoint saved before the appends", async () => {
    await page.click("#nav-verify");
    await page.fill("#saved-checkpoint", readFileSync(savedCheckpoint, "utf8"));
    await page.click("#check-consistency");
    const text = await (await waitState(page, "#consistency-result", "ok")).textContent();
    if (!/Consistent/.test(text)) fail(`unexpected result: ${text}`);
    await shot(page, "7-verify-consistency");
  });

  await step("no CSP violation and no script error in the page", async () => {
    const violations = await page.evaluate(() => window.__cspViolations);
    const all = [...problems, ...violations.map((v) => `CSP violation: ${v}`)];
    if (all.length > 0) fail(all.join("\n"));
  });
}

let failed = 0;
try {
  await main();
} catch (e) {
  failed = 1;
  console.error(`not ok - ${e instanceof Error ? e.message : String(e)}`);
} finally {
  if (browser !== null) await browser.close().catch(() => undefined);
  await stopVault();
  if (work !== null && failed === 0) rmSync(work, { recursive: true, force: true });
  else if (work !== null) console.error(`# kept ${work} for inspection`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
