// Entry point of the browser UI: the header, the three pages (Log, Append,
// Verify) built once and shown one at a time by the URL's hash
// (#/log, #/append, #/verify), so that a page keeps its state (receipts
// just made, files chosen) while another is shown.

import "./style.css";

import { el } from "./dom.js";
import { appendPage } from "./pages/append.js";
import { logPage } from "./pages/log.js";
import { verifyPage } from "./pages/verify.js";

interface Page {
  node: HTMLElement;
  show: () => void;
}

const pages: Record<string, { title: string; page: Page }> = {
  log: { title: "Log", page: logPage() },
  append: { title: "Append", page: appendPage() },
  verify: { title: "Verify", page: verifyPage() },
};

const nav = el("nav", { id: "nav" });
for (const [name, { title }] of Object.entries(pages)) {
  nav.appendChild(el("a", { id: `nav-${name}`, attrs: { href: `#/${name}` } }, title));
}

const main = el("main", { id: "view" });
for (const { page } of Object.values(pages)) {
  page.node.hidden = true;
  main.appendChild(page.node);
}

document.body.append(el("header", {}, el("h1", {}, "Merkle Evidence Vault"), nav), main);

function route(): void {
  const name = /^#\/(\w+)/.exec(window.location.hash)?.[1] ?? "log";
  const current = name in pages ? name : "log";
  for (const [key, { page }] of Object.entries(pages)) page.node.hidden = key !== current;
  for (const link of nav.querySelectorAll("a")) {
    if (link.id === `nav-${current}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  pages[current]!.page.show();
}

window.addEventListener("hashchange", route);
route();
