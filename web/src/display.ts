// How untrusted text from the log is shown to people. Names, labels,
// principals and media types come from whoever appended them; the page
// only ever inserts them as text nodes, so they cannot become markup. This
// module handles the other way text can mislead: characters that change
// what is displayed instead of being displayed (a right-to-left override
// shows `evil\u202efdp.exe` as `evilexe.pdf`; zero-width characters hide
// that two names differ). Like `evault verify` (evault_core::text::escape)
// it writes them as escapes such as `\u{202e}`, and a backslash as `\\` so
// that an escape cannot be faked.

/**
 * Characters shown escaped: controls (Cc), format characters (Cf), line
 * and paragraph separators (Zl, Zp), spaces other than U+0020 (Zs),
 * private-use (Co), unassigned (Cn) and surrogate (Cs) code points.
 */
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}\p{Cs}]|(?! )\p{Zs}/u;
/** A combining mark at the very start would join whatever precedes the text. */
const LEADING_MARK = /^\p{M}/u;

function escapeChar(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

/** `text` as it may be shown: hidden characters and backslashes escaped. */
export function shown(text: string): string {
  let out = "";
  let first = true;
  for (const c of text) {
    if (c === "\\") out += "\\\\";
    else if (HIDDEN.test(c) || (first && LEADING_MARK.test(c))) out += escapeChar(c);
    else out += c;
    first = false;
  }
  return out;
}

/** A byte count in words: "1 byte", "2,048 bytes (2.0 KiB)". */
export function formatSize(size: bigint): string {
  const exact = `${size.toLocaleString("en-US")} byte${size === 1n ? "" : "s"}`;
  if (size < 1024n) return exact;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = Number(size) / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${exact} (${value.toFixed(1)} ${units[unit]})`;
}

/** The first `n` hex digits of a fingerprint in groups of four. */
export function shortFingerprint(hex: string, n = 16): string {
  return hex.slice(0, n).replace(/(.{4})(?=.)/g, "$1 ");
}
