// The table of log entries shared by the Log page's recent entries and
// its search results: each entry decoded in the page from its bytes, every
// field inserted as text and shown escaped (display.ts).

import { decodeEntry, formatReceived, toHex } from "@evault/client";

import { type Child, el } from "./dom.js";
import { formatSize, shown } from "./display.js";

const COLUMNS = ["#", "Name", "SHA-256", "Size", "Media type", "Labels", "Principal", "Received", ""];

/** An empty entries table; rows go into its `tBodies[0]`. */
export function entriesTable(id: string): HTMLTableElement {
  return el(
    "table",
    { id, class: "entries" },
    el("thead", {}, el("tr", {}, ...COLUMNS.map((c) => el("th", { attrs: { scope: "col" } }, c)))),
    el("tbody", { id: `${id}-body` }),
  );
}

function cell(kind: string, ...children: Child[]): HTMLTableCellElement {
  return el("td", { class: `entry-${kind}`, testid: `entry-${kind}` }, ...children);
}

/**
 * The row of entry `index` with bytes `bytes`; `actions` fill its last
 * cell (e.g. a button that proves the entry's inclusion).
 */
export function entryRow(index: bigint, bytes: Uint8Array, actions: Child[]): HTMLTableRowElement {
  const row = el("tr", { testid: "entry-row", attrs: { "data-index": index.toString() } });
  row.appendChild(cell("index", index.toString()));
  let entry;
  try {
    entry = decodeEntry(bytes);
  } catch (e) {
    row.appendChild(
      el("td", { class: "entry-invalid", attrs: { colspan: "7" } }, `not an evidence entry (${(e as Error).message}), ${bytes.length} bytes`),
    );
    row.appendChild(cell("actions", ...actions));
    return row;
  }
  const digest = toHex(entry.digest);
  row.append(
    cell("name", entry.name === null ? el("span", { class: "none" }, "(no name)") : shown(entry.name)),
    cell("digest", el("code", { class: "digest" }, digest)),
    cell("size", formatSize(entry.size)),
    cell("media", shown(entry.mediaType)),
    cell("labels", ...entry.labels.map(([k, v]) => el("span", { class: "label", testid: "entry-label" }, `${shown(k)}=${shown(v)}`))),
    cell("principal", shown(entry.principal)),
    cell("time", formatReceived(entry.receivedMs)),
    cell("actions", ...actions),
  );
  return row;
}
