// Test-only note signing with the Go note package's private key form
// `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 ‖ seed)>`, through Node's
// WebCrypto: lets tests make checkpoints for trees they build. The client
// never signs anything.

import { webcrypto } from "node:crypto";

import { computeKeyId, fromBase64, keyIdHex, toBase64 } from "@evault/client";
import { concat, utf8 } from "./testdata.js";

/** PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = Uint8Array.from(Buffer.from("302e020100300506032b657004220420", "hex"));

/** A note signer for tests. */
export interface TestSigner {
  /** The matching verifier key, `name+hexid+base64`. */
  readonly verifierKey: string;
  /** Ed25519 signature of `message`. */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** A signed note over `text`: text, blank line, one signature line. */
  signNote(text: string): Promise<Uint8Array>;
}

/**
 * Takes a Go note signing key. With `ignoreKeyId`, the key ID written in
 * it is not checked (to sign under another name with the same seed).
 */
export async function signingKeyFromNoteKey(text: string, options: { ignoreKeyId?: boolean } = {}): Promise<TestSigner> {
  const split = text.split("+");
  const parts = [...split.slice(0, 4), split.slice(4).join("+")];
  if (split.length < 5 || parts[0] !== "PRIVATE" || parts[1] !== "KEY") throw new Error("not a note signing key");
  const name = parts[2]!;
  const key = fromBase64(parts[4]!);
  if (key === null || key.length !== 33 || key[0] !== 1) throw new Error("not an Ed25519 seed");
  const privateKey = await webcrypto.subtle.importKey("pkcs8", concat(PKCS8_ED25519_PREFIX, key.slice(1)), { name: "Ed25519" }, true, ["sign"]);
  const jwk = await webcrypto.subtle.exportKey("jwk", privateKey);
  const publicKey = new Uint8Array(Buffer.from(jwk.x!, "base64url"));
  const vkey = concat(Uint8Array.of(1), publicKey);
  const keyId = await computeKeyId(name, vkey);
  if (!options.ignoreKeyId && keyIdHex(keyId) !== parts[3]!.toLowerCase()) throw new Error("key ID does not match");
  const sign = async (message: Uint8Array): Promise<Uint8Array> =>
    new Uint8Array(await webcrypto.subtle.sign({ name: "Ed25519" }, privateKey, message));
  return {
    verifierKey: `${name}+${keyIdHex(keyId)}+${toBase64(vkey)}`,
    sign,
    async signNote(body: string): Promise<Uint8Array> {
      const id = new Uint8Array(4);
      new DataView(id.buffer).setUint32(0, keyId);
      const signature = await sign(utf8(body));
      return utf8(`${body}\n\u2014 ${name} ${toBase64(concat(id, signature))}\n`);
    },
  };
}
