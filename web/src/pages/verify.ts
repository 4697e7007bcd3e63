// The Verify page: a `.tlog-proof` receipt (and optionally its evidence
// file) verified entirely in the page, with the keys this browser trusts
// and no server; and a check that the log's current checkpoint extends a
// checkpoint saved earlier (pasted or dropped), with a consistency proof
// from TreeService.GetConsistencyProof verified in the page.

import {
  type VerifiedReceipt,
  formatReceived,
  keyIdHex,
  parseCheckpoint,
  parseNote,
  parseReceipt,
  toBase64,
  toHex,
  verifyExtension,
  verifyParsedReceipt,
} from "@evault/client";

import { failure, vault } from "../api.js";
import { type Child, button, el, fileDrop, replace, setStatus } from "../dom.js";
import { formatSize, shown } from "../display.js";
import { readFile } from "../evidence.js";
import { onTrustChange, trustKey, trustedKeyLines, trustedKeys } from "../trust.js";

function receiptDetails(v: VerifiedReceipt, evidenceName: string | null): HTMLElement {
  const rows: Array<[string, string]> = [
    ["Origin", shown(v.checkpoint.origin)],
    ["Tree size", v.checkpoint.size.toString()],
    ["Root hash", toBase64(v.checkpoint.root)],
    ["Signed by", v.signed.signers.map((k) => `${k.name}+${keyIdHex(k.keyId)}`).join(", ")],
    ["Index", v.index.toString()],
    ["Leaf hash", toHex(v.leafHash)],
  ];
  const entry = v.entry;
  if ("error" in entry) {
    rows.push(["Entry", `${v.entryBytes.length} bytes, not an evidence entry (${entry.error})`]);
  } else {
    rows.push(["Evidence SHA-256", toHex(entry.digest)], ["Evidence size", formatSize(entry.size)], ["Media type", shown(entry.mediaType)]);
    if (entry.name !== null) rows.push(["Name", shown(entry.name)]);
    for (const [k, val] of entry.labels) rows.push(["Label", `${shown(k)}=${shown(val)}`]);
    rows.push(["Principal", shown(entry.principal)], ["Received", formatReceived(entry.receivedMs)]);
  }
  if (evidenceName !== null) rows.push(["Evidence file", `${shown(evidenceName)}: SHA-256 and size match the entry`]);
  return el("dl", { id: "receipt-details", class: "details" }, ...rows.flatMap(([k, val]) => [el("dt", {}, k), el("dd", {}, val)]));
}

/** Builds the Verify page. */
export function verifyPage(): { node: HTMLElement; show: () => void } {
  // Keys.
  const keysSummary = el("p", { id: "verify-keys", class: "status" });
  const keyInput = el("input", {
    id: "verify-key-input",
    attrs: { type: "text", placeholder: "name+keyid+base64 key", spellcheck: "false", autocomplete: "off", "aria-label": "verifier key to trust" },
  });
  const keyStatus = el("p", { id: "verify-key-status", class: "status" });
  const renderKeys = (): void => {
    const lines = trustedKeyLines();
    if (lines.length === 0) setStatus(keysSummary, "fail", "No key is trusted in this browser: trust the log's verifier key first (here, or on the Log page).");
    else setStatus(keysSummary, "info", `Verifying with ${lines.length} trusted key${lines.length === 1 ? "" : "s"}: `, lines.map((l) => l.split("+").slice(0, 2).join("+")).join(", "));
  };
  onTrustChange(renderKeys);
  renderKeys();

  // Receipt.
  const receiptInput = el("input", { id: "receipt-file", attrs: { type: "file", accept: ".tlog-proof", "aria-label": "receipt file" } });
  const receiptZone = el("div", { id: "receipt-drop", class: "drop" }, "Drop a .tlog-proof receipt here, or ", receiptInput);
  const evidenceInput = el("input", { id: "evidence-file", attrs: { type: "file", "aria-label": "evidence file" } });
  const evidenceZone = el("div", { id: "evidence-drop", class: "drop" }, "Optionally, drop the evidence file too, or ", evidenceInput);
  const chosen = el("p", { id: "verify-chosen", class: "hint" });
  const result = el("div", { id: "receipt-result", class: "status" });
  let receiptFile: File | null = null;
  let evidenceFile: File | null = null;

  const renderChosen = (): void =>
    replace(
      chosen,
      receiptFile === null ? "No receipt chosen." : `Receipt: ${shown(receiptFile.name)}.`,
      evidenceFile === null ? " No evidence file." : ` Evidence: ${shown(evidenceFile.name)}.`,
    );
  renderChosen();

  // Each verification's number: only the latest one may show its result,
  // so a slow check of files chosen before cannot overwrite it.
  let run = 0;

  async function verifyChosen(): Promise<void> {
    const mine = ++run;
    if (receiptFile === null) {
      setStatus(result, "fail", "Choose a receipt first.");
      return;
    }
    setStatus(result, "busy", "Verifying…");
    const show = (state: "ok" | "fail", ...children: Child[]): void => {
      if (mine === run) setStatus(result, state, ...children);
    };
    try {
      const keys = await trustedKeys();
      if (keys.length === 0) throw new Error("no key is trusted in this browser");
      const receipt = parseReceipt(await readFile(receiptFile));
      const evidence = evidenceFile === null ? undefined : await readFile(evidenceFile);
      const verified = await verifyParsedReceipt(receipt, keys, evidence === undefined ? {} : { evidence });
      show(
        "ok",
        el("strong", {}, "Receipt verified ✓"),
        ` Entry ${verified.index} is in the tree of size ${verified.checkpoint.size}, signed by the log's trusted key.`,
        receiptDetails(verified, evidenceFile?.name ?? null),
      );
    } catch (e) {
      show("fail", el("strong", {}, "Receipt rejected: "), (e as Error).message);
    }
  }

  fileDrop(receiptZone, receiptInput, (files) => {
    receiptFile = files[0]!;
    renderChosen();
    void verifyChosen();
  });
  fileDrop(evidenceZone, evidenceInput, (files) => {
    evidenceFile = files[0]!;
    renderChosen();
    if (receiptFile !== null) void verifyChosen();
  });

  // Consistency.
  const saved = el("textarea", {
    id: "saved-checkpoint",
    attrs: { rows: "6", spellcheck: "false", placeholder: "paste a saved checkpoint (the whole signed note)", "aria-label": "saved checkpoint" },
  });
  const savedInput = el("input", { id: "saved-checkpoint-file", attrs: { type: "file", "aria-label": "saved checkpoint file" } });
  const savedZone = el("div", { id: "saved-checkpoint-drop", class: "drop" }, "or drop a saved checkpoint file here, or ", savedInput);
  const consistency = el("div", { id: "consistency-result", class: "status" });
  fileDrop(savedZone, savedInput, (files) => {
    void readFile(files[0]!).then((bytes) => {
      saved.value = new TextDecoder().decode(bytes);
    });
  });

  async function checkConsistency(): Promise<void> {
    setStatus(consistency, "busy", "Checking…");
    try {
      const keys = await trustedKeys();
      if (keys.length === 0) throw new Error("no key is trusted in this browser");
      // A pasted note may have lost its final newline; a note always has one.
      const text = saved.value.replace(/\r\n/g, "\n");
      const older = new TextEncoder().encode(text.endsWith("\n") ? text : `${text}\n`);
      const before = parseCheckpoint(parseNote(older).text);
      const newer = await vault.checkpoint();
      const after = parseCheckpoint(parseNote(newer).text);
      let proof: Uint8Array[] = [];
      let checkpoint = newer;
      if (before.size > 0n && before.size < after.size) {
        const response = await vault.consistencyProof(before.size, after.size);
        proof = response.proof;
        checkpoint = response.checkpoint;
      }
      const v = await verifyExtension(older, checkpoint, proof, keys);
      setStatus(
        consistency,
        "ok",
        el("strong", {}, "Consistent ✓"),
        v.fromEmptyTree
          ? ` The saved checkpoint is of the empty tree, which every tree extends; the current tree has ${v.newer.checkpoint.size} entries.`
          : v.older.checkpoint.size === v.newer.checkpoint.size
            ? ` The current checkpoint is the saved one's tree (size ${v.newer.checkpoint.size}).`
            : ` The current tree (size ${v.newer.checkpoint.size}) extends the saved one (size ${v.older.checkpoint.size}): nothing logged then was changed or removed.`,
      );
    } catch (e) {
      setStatus(consistency, "fail", el("strong", {}, "Not shown consistent: "), failure(e));
    }
  }

  const addKey = button("Trust", { id: "verify-key-add" }, async () => {
    try {
      await trustKey(keyInput.value);
      keyInput.value = "";
      setStatus(keyStatus, "ok", "Key trusted.");
      if (receiptFile !== null) await verifyChosen();
    } catch (e) {
      setStatus(keyStatus, "fail", (e as Error).message);
    }
  });

  const node = el(
    "section",
    { id: "page-verify", class: "page" },
    el("h2", {}, "Verify a receipt"),
    el("p", { class: "hint" }, "Verified entirely in this page with the keys you trust: nothing is sent to any server."),
    keysSummary,
    el("div", { class: "row" }, keyInput, addKey),
    keyStatus,
    receiptZone,
    evidenceZone,
    chosen,
    el("div", { class: "row" }, button("Verify again", { id: "verify-receipt", class: "secondary" }, verifyChosen)),
    result,
    el("h2", {}, "Check the log against a saved checkpoint"),
    el("p", { class: "hint" }, "Shows, with a consistency proof verified in this page, that the log's current tree extends a checkpoint you saved earlier: nothing was rewritten since."),
    saved,
    savedZone,
    el("div", { class: "row" }, button("Check consistency", { id: "check-consistency" }, checkConsistency)),
    consistency,
  );
  return { node, show: renderKeys };
}
