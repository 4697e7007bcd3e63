// Evidence files in the page: read and hashed with WebCrypto SHA-256,
// never leaving the browser unless the user asks for them to be uploaded.

import { sha256 } from "@evault/client";

/** A file read and hashed. */
export interface HashedFile {
  /** The file as picked. */
  readonly file: File;
  /** Its bytes. */
  readonly bytes: Uint8Array;
  /** SHA-256 of its bytes. */
  readonly sha256: Uint8Array;
}

/** Reads `file` and hashes it. Throws with the file's name if it cannot be read. */
export async function hashFile(file: File): Promise<HashedFile> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await file.arrayBuffer());
  } catch (e) {
    throw new Error(`${file.name}: cannot be read in the browser (${String(e)})`);
  }
  return { file, bytes, sha256: await sha256(bytes) };
}

/** A file's bytes, for receipts and checkpoints (small files). */
export async function readFile(file: File): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}
