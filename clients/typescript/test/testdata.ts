// Locates the shared test vectors (read in place, never copied) and the
// repository's own vectors, from wherever the compiled tests run: the
// repository is cloned at X/main with the shared vectors at X/shared.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** clients/typescript: the nearest ancestor holding this package's package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === "@evault/client") return dir;
    } catch {
      // Not here; look further up.
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("clients/typescript (package.json of @evault/client) was not found");
    dir = up;
  }
}

/** The package's directory, clients/typescript. */
export const PACKAGE = packageRoot();
/** The repository's root. */
export const REPO = resolve(PACKAGE, "../..");
/** shared/testdata, beside the repository. */
export const TESTDATA = resolve(REPO, "../shared/testdata");

/** The bytes of a file under shared/testdata. */
export function readTestdata(path: string): Uint8Array {
  return new Uint8Array(readFileSync(join(TESTDATA, path)));
}

/** The text of a file under shared/testdata. */
export function readTestdataText(path: string): string {
  return readFileSync(join(TESTDATA, path), "utf8");
}

/** Every `.json` file under a folder of shared/testdata, as paths relative to it. */
export function jsonFilesUnder(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".json")) out.push(relative(TESTDATA, path));
    }
  };
  walk(join(TESTDATA, folder));
  return out;
}

/** The UTF-8 bytes of `text`, by Node (independent of the code under test). */
export function utf8(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "utf8"));
}

/** The byte strings one after the other, by Node. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Standard base64, decoded by Node (independent of the code under test). */
export function b64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64"));
}

/**
 * Parses JSON whose integers may exceed 2^53, keeping every integer of 16
 * digits or more as a string so that no precision is lost.
 */
export function parseJsonKeepingBigIntegers(text: string): unknown {
  return JSON.parse(text.replace(/:\s*(\d{16,})/g, ': "$1"'));
}
