// Test-only encoder of version 1 evidence entries (docs/entry-format.md),
// to build logs of evidence entries for receipt tests. Clients only
// decode entries; the vault builds them.

import { concat, utf8 } from "./testdata.js";

/** The fields of an entry to encode. */
export interface EntryFields {
  digest: Uint8Array;
  size: bigint;
  receivedMs: bigint;
  mediaType: string;
  name: string;
  principal: string;
  labels: Array<[string, string]>;
}

function str(text: string): Uint8Array {
  const bytes = utf8(text);
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, bytes.length);
  return concat(len, bytes);
}

/** The canonical encoding; labels are written in the order given. */
export function encodeEntry(e: EntryFields): Uint8Array {
  const fixed = new Uint8Array(16);
  new DataView(fixed.buffer).setBigUint64(0, e.size);
  new DataView(fixed.buffer).setBigUint64(8, e.receivedMs);
  const count = new Uint8Array(2);
  new DataView(count.buffer).setUint16(0, e.labels.length);
  return concat(
    Uint8Array.of(1),
    e.digest,
    fixed,
    str(e.mediaType),
    str(e.name),
    str(e.principal),
    count,
    ...e.labels.flatMap(([k, v]) => [str(k), str(v)]),
  );
}
