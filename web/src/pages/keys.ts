// The verifier-key panel: the keys the gateway says sign its checkpoints,
// each with a fingerprint to compare with one published out of band, and
// the keys this browser trusts. Nothing is verified with a key until the
// user trusts it.

import { keyFingerprint } from "@evault/client";

import { fetchVerifierKeys } from "../api.js";
import { button, el, replace, setStatus } from "../dom.js";
import { shortFingerprint, shown } from "../display.js";
import { distrustKey, onTrustChange, trustKey, trustedKeyLines } from "../trust.js";

async function keyItem(line: string, action: HTMLElement, testid: string): Promise<HTMLLIElement> {
  const fingerprint = await keyFingerprint(line);
  return el(
    "li",
    { class: "key", testid },
    el("code", { class: "key-text" }, shown(line)),
    el("span", { class: "fingerprint", attrs: { title: `SHA-256 of the key line: ${fingerprint}` } }, `fingerprint ${shortFingerprint(fingerprint)}`),
    action,
  );
}

/** The panel, and a function that reloads the gateway's keys. */
export function keysPanel(): { node: HTMLElement; reload: () => Promise<void> } {
  const served = el("ul", { id: "server-keys", class: "keys" });
  const servedStatus = el("p", { id: "server-keys-status", class: "status" });
  const trusted = el("ul", { id: "trusted-keys", class: "keys" });
  const input = el("input", {
    id: "key-input",
    attrs: { type: "text", placeholder: "name+keyid+base64 key", spellcheck: "false", autocomplete: "off", "aria-label": "verifier key to trust" },
  });
  const addStatus = el("p", { id: "key-input-status", class: "status" });

  const renderTrusted = async (): Promise<void> => {
    const lines = trustedKeyLines();
    const items = await Promise.all(
      lines.map((line) => keyItem(line, button("Stop trusting", { class: "secondary", testid: "distrust-key" }, () => distrustKey(line)), "trusted-key")),
    );
    replace(trusted, ...(items.length > 0 ? items : [el("li", { class: "none" }, "No key is trusted yet: nothing can be verified.")]));
  };

  const reload = async (): Promise<void> => {
    setStatus(servedStatus, "busy", "Loading the gateway's keys…");
    let lines: string[];
    try {
      lines = await fetchVerifierKeys();
    } catch (e) {
      setStatus(servedStatus, "fail", `Cannot list the gateway's keys: ${(e as Error).message}`);
      replace(served);
      return;
    }
    const trustedNow = new Set(trustedKeyLines());
    const items = await Promise.all(
      lines.map((line) =>
        keyItem(
          line,
          trustedNow.has(line)
            ? el("span", { class: "trusted-mark" }, "trusted")
            : button("Trust this key", { testid: "trust-key" }, async () => {
                try {
                  await trustKey(line);
                } catch (e) {
                  setStatus(servedStatus, "fail", `This key cannot be trusted: ${(e as Error).message}`);
                }
              }),
          "server-key",
        ),
      ),
    );
    replace(served, ...items);
    setStatus(
      servedStatus,
      "info",
      lines.length === 0
        ? "The gateway lists no keys."
        : "Keys the gateway says sign its checkpoints. Compare a fingerprint with one published by the log's operator before trusting its key.",
    );
  };

  const add = button("Trust", { id: "key-add" }, async () => {
    try {
      await trustKey(input.value);
      input.value = "";
      setStatus(addStatus, "ok", "Key trusted.");
    } catch (e) {
      setStatus(addStatus, "fail", (e as Error).message);
    }
  });

  onTrustChange(() => {
    void renderTrusted();
    void reload();
  });
  void renderTrusted();

  const node = el(
    "section",
    { id: "keys-section" },
    el("h2", {}, "Verifier keys"),
    servedStatus,
    served,
    el("h3", {}, "Trusted in this browser"),
    trusted,
    el("div", { class: "row" }, input, add),
    addStatus,
  );
  return { node, reload };
}
