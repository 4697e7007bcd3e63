// The Log page: the latest checkpoint, verified in the page against the
// keys this browser trusts and checked to extend the last one it saw; the
// most recent entries, paged backwards; a search by evidence digest or by
// a dropped file; and, for any entry shown, an inclusion proof verified in
// the page and offered as a receipt file.

import {
  type Checkpoint,
  type SignedCheckpoint,
  bytesEqual,
  encodeReceipt,
  fromHex,
  keyIdHex,
  openCheckpoint,
  parseCheckpoint,
  parseNote,
  toBase64,
  toHex,
  verifyExtension,
  verifyParsedReceipt,
} from "@evault/client";

import { failure, rpcFailure, vault } from "../api.js";
import { type Child, button, downloadLink, el, fileDrop, replace, setStatus } from "../dom.js";
import { shown } from "../display.js";
import { entriesTable, entryRow } from "../entries.js";
import { hashFile } from "../evidence.js";
import { lastCheckpoint, onTrustChange, rememberCheckpoint, trustedKeys } from "../trust.js";
import { keysPanel } from "./keys.js";

const PAGE = 25;
const FIND_PAGE = 50;

/** What the page knows of the latest checkpoint. */
interface Latest {
  note: Uint8Array;
  checkpoint: Checkpoint;
  signed: SignedCheckpoint | null;
}

/** Builds the Log page; `show` refreshes it whenever it is shown. */
export function logPage(): { node: HTMLElement; show: () => void } {
  const keys = keysPanel();
  let latest: Latest | null = null;

  // Checkpoint.
  const cpStatus = el("p", { id: "checkpoint-status", class: "status" });
  const cpDetails = el("dl", { id: "checkpoint-details", class: "details" });
  const cpHistory = el("p", { id: "checkpoint-history", class: "status" });
  const cpNote = el("pre", { id: "checkpoint-note", class: "note" });
  const cpSave = el("span", { id: "checkpoint-save" });

  // Entries.
  const entries = entriesTable("entries");
  const entriesBody = entries.tBodies[0]!;
  const entriesStatus = el("p", { id: "entries-status", class: "status" });
  let oldest = 0n;
  const older = button("Older entries", { id: "entries-older", class: "secondary" }, () => loadEntries());
  older.hidden = true;

  // Search.
  const findInput = el("input", {
    id: "find-digest",
    attrs: { type: "text", placeholder: "SHA-256 of the evidence, hex", spellcheck: "false", autocomplete: "off", "aria-label": "evidence SHA-256" },
  });
  const findFile = el("input", { id: "find-file", attrs: { type: "file", "aria-label": "file to look up" } });
  const findZone = el("div", { id: "find-drop", class: "drop" }, "Drop a file here to look it up by its SHA-256 (hashed in this page), or ", findFile);
  const findStatus = el("p", { id: "find-status", class: "status" });
  const found = entriesTable("find-results");
  const foundBody = found.tBodies[0]!;
  let findToken = "";
  let findDigest: Uint8Array | null = null;
  const findMore = button("More results", { id: "find-more", class: "secondary" }, () => find(false));
  findMore.hidden = true;

  /** The button that proves one entry's inclusion and offers its receipt. */
  const proveAction = (index: bigint, entry: Uint8Array): Child[] => {
    const out = el("span", { class: "prove-result", testid: "prove-result" });
    const prove = button("Receipt", { class: "secondary small", testid: "entry-prove" }, async () => {
      setStatus(out, "busy", "proving…");
      const size = latest?.checkpoint.size ?? 0n;
      let response;
      try {
        response = await vault.inclusionProof(index, size);
      } catch (e) {
        setStatus(out, "fail", failure(e));
        return;
      }
      const receipt = { extra: entry, index, proof: response.proof, checkpoint: response.checkpoint };
      const file = downloadLink("download .tlog-proof", `entry-${index}.tlog-proof`, encodeReceipt(receipt), "application/octet-stream", {
        testid: "entry-receipt-download",
      });
      try {
        await verifyParsedReceipt(receipt, await trustedKeys());
        setStatus(out, "ok", "included ✓ ", file);
      } catch (e) {
        setStatus(out, "fail", `not verified: ${(e as Error).message} `, file);
      }
    });
    return [prove, out];
  };

  // Each load's number: a load that a newer one overtook shows nothing.
  let cpRun = 0;

  async function loadCheckpoint(): Promise<void> {
    const mine = ++cpRun;
    setStatus(cpStatus, "busy", "Fetching the latest checkpoint…");
    replace(cpHistory);
    let note: Uint8Array;
    try {
      note = await vault.checkpoint();
    } catch (e) {
      if (mine !== cpRun) return;
      setStatus(cpStatus, "fail", `Cannot fetch the checkpoint: ${failure(e)}`);
      latest = null;
      return;
    }
    if (mine !== cpRun) return;
    replace(cpNote, shown(new TextDecoder().decode(note)));
    let checkpoint: Checkpoint;
    try {
      checkpoint = parseCheckpoint(parseNote(note).text);
    } catch (e) {
      setStatus(cpStatus, "fail", `The gateway sent a checkpoint that does not parse: ${(e as Error).message}`);
      latest = null;
      return;
    }
    replace(
      cpDetails,
      el("dt", {}, "Origin"),
      el("dd", { id: "checkpoint-origin" }, shown(checkpoint.origin)),
      el("dt", {}, "Tree size"),
      el("dd", { id: "checkpoint-size" }, checkpoint.size.toString()),
      el("dt", {}, "Root hash"),
      el("dd", {}, el("code", { id: "checkpoint-root", class: "digest" }, toBase64(checkpoint.root))),
    );
    replace(cpSave, downloadLink("Save this checkpoint", `checkpoint-${checkpoint.size}.txt`, note, "text/plain", { id: "checkpoint-download" }));
    latest = { note, checkpoint, signed: null };
    const trusted = await trustedKeys();
    if (mine !== cpRun) return;
    if (trusted.length === 0) {
      setStatus(cpStatus, "info", "Not verified: no key is trusted in this browser. Trust the log's key below.");
      return;
    }
    const current = latest;
    try {
      const signed = await openCheckpoint(note, trusted);
      if (mine !== cpRun) return;
      current.signed = signed;
      setStatus(
        cpStatus,
        "ok",
        `Verified: signed by ${signed.signers.map((k) => `${k.name}+${keyIdHex(k.keyId)}`).join(", ")}.`,
      );
    } catch (e) {
      if (mine === cpRun) setStatus(cpStatus, "fail", `Does not verify: ${(e as Error).message}`);
      return;
    }
    await checkHistory(current);
  }

  /** Checks the verified checkpoint extends the last one this browser saw. */
  async function checkHistory(current: Latest): Promise<void> {
    const origin = current.checkpoint.origin;
    const previous = lastCheckpoint(origin);
    if (previous === null || bytesEqual(previous, current.note)) {
      rememberCheckpoint(origin, current.note);
      setStatus(cpHistory, "info", previous === null ? "First checkpoint of this log seen in this browser; remembered." : "Same checkpoint as last seen.");
      return;
    }
    try {
      const before = parseCheckpoint(parseNote(previous).text);
      let proof: Uint8Array[] = [];
      if (before.size > 0n && before.size < current.checkpoint.size) {
        proof = (await vault.consistencyProof(before.size, current.checkpoint.size)).proof;
      }
      await verifyExtension(previous, current.note, proof, await trustedKeys());
      rememberCheckpoint(origin, current.note);
      setStatus(cpHistory, "ok", `Extends the checkpoint of size ${before.size} last seen in this browser ✓`);
    } catch (e) {
      setStatus(cpHistory, "fail", `Cannot show that this checkpoint extends the one last seen in this browser: ${failure(e)}`);
    }
  }

  async function loadEntries(first = false): Promise<void> {
    if (first) {
      replace(entriesBody);
      oldest = latest?.checkpoint.size ?? 0n;
    }
    if (latest === null) {
      setStatus(entriesStatus, "fail", "No checkpoint, so no entries to show.");
      older.hidden = true;
      return;
    }
    if (oldest === 0n) {
      setStatus(entriesStatus, "info", latest.checkpoint.size === 0n ? "The log is empty." : "These are all the entries.");
      older.hidden = true;
      return;
    }
    const start = oldest > BigInt(PAGE) ? oldest - BigInt(PAGE) : 0n;
    setStatus(entriesStatus, "busy", "Loading entries…");
    try {
      const entries = await vault.entries(start, Number(oldest - start));
      const rows = entries.filter((e) => e.index < oldest).reverse();
      for (const e of rows) entriesBody.appendChild(entryRow(e.index, e.entry, proveAction(e.index, e.entry)));
      oldest = start;
      setStatus(entriesStatus, "info", `Entries ${oldest} to ${(latest.checkpoint.size - 1n).toString()} of the checkpoint's tree, newest first.`);
      older.hidden = oldest === 0n;
    } catch (e) {
      setStatus(entriesStatus, "fail", `Cannot load entries: ${rpcFailure(e)}`);
    }
  }

  async function find(first: boolean): Promise<void> {
    if (first) {
      const digest = fromHex(findInput.value.trim());
      if (digest === null || digest.length !== 32) {
        setStatus(findStatus, "fail", "A SHA-256 digest is 64 hexadecimal digits.");
        return;
      }
      findDigest = digest;
      findToken = "";
      replace(foundBody);
    }
    if (findDigest === null) return;
    setStatus(findStatus, "busy", "Searching…");
    try {
      const response = await vault.find(findDigest, { pageSize: FIND_PAGE, pageToken: findToken });
      for (const e of response.entries) foundBody.appendChild(entryRow(e.index, e.entry, proveAction(e.index, e.entry)));
      findToken = response.nextPageToken;
      findMore.hidden = findToken === "";
      const count = foundBody.rows.length;
      setStatus(findStatus, count === 0 ? "info" : "ok", count === 0 ? `No entry logs evidence ${toHex(findDigest)}.` : `${count} entr${count === 1 ? "y logs" : "ies log"} evidence ${toHex(findDigest)}.`);
    } catch (e) {
      setStatus(findStatus, "fail", `Search failed: ${rpcFailure(e)}`);
    }
  }

  fileDrop(findZone, findFile, (files) => {
    const file = files[0]!;
    setStatus(findStatus, "busy", `Hashing ${file.name}…`);
    hashFile(file)
      .then((hashed) => {
        findInput.value = toHex(hashed.sha256);
        return find(true);
      })
      .catch((e: Error) => setStatus(findStatus, "fail", e.message));
  });

  const refresh = async (): Promise<void> => {
    await loadCheckpoint();
    await loadEntries(true);
  };
  onTrustChange(() => void loadCheckpoint());

  const node = el(
    "section",
    { id: "page-log", class: "page" },
    el(
      "section",
      { id: "checkpoint-section" },
      el("h2", {}, "Latest checkpoint"),
      cpStatus,
      cpHistory,
      cpDetails,
      el("details", {}, el("summary", {}, "Signed note"), cpNote),
      el("div", { class: "row" }, button("Refresh", { id: "refresh", class: "secondary" }, refresh), cpSave),
    ),
    keys.node,
    el("section", { id: "entries-section" }, el("h2", {}, "Recent entries"), entriesStatus, el("div", { class: "scroll" }, entries), older),
    el(
      "section",
      { id: "find-section" },
      el("h2", {}, "Find evidence"),
      el("div", { class: "row" }, findInput, button("Find", { id: "find-button" }, () => find(true))),
      findZone,
      findStatus,
      el("div", { class: "scroll" }, found),
      findMore,
    ),
  );
  return {
    node,
    show: () => {
      void keys.reload();
      void refresh();
    },
  };
}
