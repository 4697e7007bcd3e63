// The Append page: files picked or dropped are hashed in the page, their
// statements (optionally with the bytes) appended with IngestService.Append
// under the bearer token the user pastes, and each receipt is verified in
// the page and offered as a `.tlog-proof` file, byte for byte as
// `evault append` writes it. The token stays in sessionStorage: it is gone
// when the tab is closed.

import { type Appended, type Statement, encodeReceipt, formatReceived, toHex, verifyParsedReceipt } from "@evault/client";

import { failure, vaultWithToken } from "../api.js";
import { button, downloadLink, el, fileDrop, replace, setStatus } from "../dom.js";
import { shown } from "../display.js";
import { type HashedFile, hashFile } from "../evidence.js";
import { trustedKeys } from "../trust.js";

const TOKEN = "evault.token";
const DEFAULT_MEDIA_TYPE = "application/octet-stream";

/** Parses `key=value` lines; blank lines are skipped. */
export function parseLabels(text: string): Array<{ key: string; value: string }> {
  return text
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.trim() !== "")
    .map((line) => {
      const at = line.indexOf("=");
      if (at <= 0) throw new Error(`label ${JSON.stringify(line)}: expected KEY=VALUE`);
      return { key: line.slice(0, at), value: line.slice(at + 1) };
    });
}

/** Builds the Append page. */
export function appendPage(): { node: HTMLElement; show: () => void } {
  const token = el("input", {
    id: "token",
    attrs: { type: "password", autocomplete: "off", spellcheck: "false", placeholder: "paste a bearer token (e.g. DATA_DIR/dev-token)", "aria-label": "bearer token" },
  });
  token.value = sessionStorage.getItem(TOKEN) ?? "";
  token.addEventListener("input", () => sessionStorage.setItem(TOKEN, token.value.trim()));
  const vault = vaultWithToken(() => token.value.trim());

  const fileInput = el("input", { id: "append-file", attrs: { type: "file", multiple: "", "aria-label": "evidence files" } });
  const zone = el("div", { id: "append-drop", class: "drop" }, "Drop evidence files here, or ", fileInput);
  const pendingList = el("ul", { id: "append-pending", class: "files" });
  const mediaType = el("input", {
    id: "media-type",
    attrs: { type: "text", placeholder: "media type: the file's own, or application/octet-stream", spellcheck: "false", "aria-label": "media type" },
  });
  const labels = el("textarea", { id: "labels", attrs: { rows: "3", placeholder: "labels, one KEY=VALUE per line", spellcheck: "false", "aria-label": "labels" } });
  const upload = el("input", { id: "upload", attrs: { type: "checkbox" } });
  const status = el("p", { id: "append-status", class: "status" });
  const results = el("ul", { id: "append-results", class: "results" });

  let pending: HashedFile[] = [];

  fileDrop(zone, fileInput, (files) => {
    setStatus(status, "busy", `Hashing ${files.length} file${files.length === 1 ? "" : "s"}…`);
    Promise.all(files.map(hashFile))
      .then((hashed) => {
        pending = [...pending, ...hashed];
        replace(
          pendingList,
          ...pending.map((h) =>
            el("li", { testid: "pending-file" }, el("span", { class: "file-name" }, shown(h.file.name)), " ", el("code", { class: "digest" }, toHex(h.sha256)), ` ${h.bytes.length} bytes`),
          ),
        );
        setStatus(status, "info", `${pending.length} file${pending.length === 1 ? "" : "s"} ready to append.`);
        fileInput.value = "";
      })
      .catch((e: Error) => setStatus(status, "fail", e.message));
  });

  async function appendOne(h: HashedFile, labelList: Array<{ key: string; value: string }>): Promise<void> {
    const item = el("li", { testid: "append-result" });
    const itemStatus = el("span", { class: "status" });
    replace(item, el("span", { class: "file-name" }, shown(h.file.name)), " ", itemStatus);
    results.prepend(item);
    setStatus(itemStatus, "busy", "appending…");

    const statement: Statement = {
      sha256: h.sha256,
      size: BigInt(h.bytes.length),
      mediaType: mediaType.value.trim() || h.file.type || DEFAULT_MEDIA_TYPE,
      name: h.file.name,
      labels: labelList,
      ...(upload.checked ? { content: h.bytes } : {}),
    };

    let response: Appended;
    try {
      response = await vault.append(statement);
    } catch (e) {
      item.dataset["state"] = "fail";
      setStatus(itemStatus, "fail", `rejected: ${failure(e)}`);
      return;
    }
    const receipt = response.receipt;
    let bytes: Uint8Array;
    try {
      bytes = encodeReceipt(receipt);
    } catch (e) {
      item.dataset["state"] = "fail";
      setStatus(itemStatus, "fail", `the vault sent a malformed receipt: ${(e as Error).message}`);
      return;
    }
    const download = downloadLink("Download receipt", `${h.file.name}.tlog-proof`, bytes, "application/octet-stream", {
      testid: "receipt-download",
    });
    item.appendChild(el("details", { class: "receipt" }, el("summary", {}, "Receipt file"), el("pre", { class: "note", testid: "receipt-text" }, shown(new TextDecoder().decode(bytes)))));
    const logged = `logged at index ${receipt.index}${response.duplicate ? " (logged before: the original receipt)" : ""}`;
    const keys = await trustedKeys();
    if (keys.length === 0) {
      item.dataset["state"] = "ok";
      setStatus(itemStatus, "info", `${logged}; receipt not verified: no key is trusted in this browser `, download);
      return;
    }
    try {
      const verified = await verifyParsedReceipt(receipt, keys, { evidence: h.bytes });
      const entry = verified.entry;
      const who = "error" in entry ? "" : `, by ${shown(entry.principal)} at ${formatReceived(entry.receivedMs)}`;
      item.dataset["state"] = "ok";
      setStatus(itemStatus, "ok", `${logged}${who}; receipt verified in this page ✓ `, download);
    } catch (e) {
      item.dataset["state"] = "fail";
      setStatus(itemStatus, "fail", `${logged}, but the receipt does not verify: ${(e as Error).message} `, download);
    }
  }

  const appendButton = button("Append", { id: "append-button" }, async () => {
    if (pending.length === 0) {
      setStatus(status, "fail", "Pick or drop files first.");
      return;
    }
    if (token.value.trim() === "") {
      setStatus(status, "fail", "Paste a bearer token first.");
      return;
    }
    let labelList;
    try {
      labelList = parseLabels(labels.value);
    } catch (e) {
      setStatus(status, "fail", (e as Error).message);
      return;
    }
    const files = pending;
    pending = [];
    replace(pendingList);
    setStatus(status, "busy", `Appending ${files.length} file${files.length === 1 ? "" : "s"}…`);
    for (const h of files) await appendOne(h, labelList);
    setStatus(status, "info", `Done: ${files.length} file${files.length === 1 ? "" : "s"}.`);
  });

  const node = el(
    "section",
    { id: "page-append", class: "page" },
    el("h2", {}, "Append evidence"),
    el("p", { class: "hint" }, "Each file is hashed in this page. Only its SHA-256, size, name, media type and labels are sent, unless you upload its bytes too."),
    el("label", { class: "field" }, "Bearer token (kept for this tab only)", token),
    zone,
    pendingList,
    el("label", { class: "field" }, "Media type", mediaType),
    el("label", { class: "field" }, "Labels", labels),
    el("label", { class: "check" }, upload, " Upload the files' bytes for the vault to keep"),
    el("div", { class: "row" }, appendButton),
    status,
    el("h3", {}, "Receipts"),
    results,
  );
  return { node, show: () => undefined };
}
