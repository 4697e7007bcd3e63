// The page's only way to build DOM: elements whose children are nodes or
// strings, and strings always become text nodes. No markup is ever parsed
// from a string, so data from the log can never turn into HTML.

/** A child of an element: a node, text, or nothing. */
export type Child = Node | string | null | undefined | false;

/** Properties of an element made by {@link el}. */
export interface Props {
  /** The element's id. */
  id?: string;
  /** Space-separated class names. */
  class?: string;
  /** `data-testid`, a stable handle for tests. */
  testid?: string;
  /** Other attributes. Never event handlers: use addEventListener. */
  attrs?: Record<string, string>;
}

/** An element of `tag` with `props` and `children` appended in order. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.id !== undefined) node.id = props.id;
  if (props.class !== undefined) node.className = props.class;
  if (props.testid !== undefined) node.dataset["testid"] = props.testid;
  for (const [name, value] of Object.entries(props.attrs ?? {})) {
    if (/^on/i.test(name)) throw new Error(`refusing event handler attribute ${name}`);
    node.setAttribute(name, value);
  }
  append(node, ...children);
  return node;
}

/** Appends children to `parent`; strings become text nodes. */
export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** Replaces all of `parent`'s children. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild !== null) parent.removeChild(parent.firstChild);
  append(parent, ...children);
}

/** A button that runs `action` when clicked, disabled while it runs. */
export function button(label: string, props: Props, action: () => unknown): HTMLButtonElement {
  const b = el("button", { ...props, attrs: { type: "button", ...props.attrs } }, label);
  b.addEventListener("click", () => {
    b.disabled = true;
    Promise.resolve()
      .then(action)
      .catch((e: unknown) => console.error(e))
      .finally(() => {
        b.disabled = false;
      });
  });
  return b;
}

/** A status line: its `data-state` says ok, fail, busy or info. */
export function setStatus(node: HTMLElement, state: "ok" | "fail" | "busy" | "info", ...children: Child[]): void {
  node.dataset["state"] = state;
  node.className = `status status-${state}`;
  replace(node, ...children);
}

/**
 * Lets the user pick files with `input`, or drop them on `zone`; calls
 * `onFiles` with the chosen files either way.
 */
export function fileDrop(zone: HTMLElement, input: HTMLInputElement, onFiles: (files: File[]) => void): void {
  input.addEventListener("change", () => {
    if (input.files !== null && input.files.length > 0) onFiles([...input.files]);
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const files = e.dataTransfer?.files;
    if (files !== undefined && files.length > 0) onFiles([...files]);
  });
}

/** A link that saves `bytes` as a file named `name`. */
export function downloadLink(label: string, name: string, bytes: Uint8Array, mediaType: string, props: Props = {}): HTMLAnchorElement {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: mediaType }));
  return el("a", { ...props, attrs: { ...props.attrs, href: url, download: name } }, label);
}
