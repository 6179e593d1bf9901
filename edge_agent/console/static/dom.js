// Small DOM helpers. Text goes in through textContent only: device names, tag names, reasons and
// config text come from the plant file and the devices, and must never be parsed as HTML.

import { parts, t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";

/**
 * el("td", {class: "num", i18n: "col.value", data: {testid: "tag-value"}, attrs: {title: "x"},
 *          on: {click: fn}, text: "12.5"}, child, ...)
 * Strings among the children become text nodes; null and false are skipped.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  decorate(node, props);
  append(node, children);
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function decorate(node, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "i18n") {
      node.dataset.i18n = value;
      node.textContent = t(value);
    } else if (key === "data") {
      for (const [name, v] of Object.entries(value)) node.dataset[name] = v;
    } else if (key === "attrs") {
      for (const [name, v] of Object.entries(value)) {
        if (v !== null && v !== undefined && v !== false) node.setAttribute(name, v === true ? "" : String(v));
      }
    } else if (key === "on") {
      for (const [name, handler] of Object.entries(value)) node.addEventListener(name, handler);
    } else node[key] = value;
  }
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** A heading-like label translated by key: el(tag, {i18n: key}). */
export function label(tag, key, props = {}) {
  return el(tag, { ...props, i18n: key });
}

/** Data from the plant or a device: never translated (translate="no" tells tools and tests). */
export function data(tag, text, props = {}) {
  const node = el(tag, props);
  node.setAttribute("translate", "no");
  node.textContent = text;
  return node;
}

/** Set text only when it changed, so an unchanged cell is not touched (no layout work). */
export function setText(node, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function setAttr(node, name, value) {
  const text = value === null || value === undefined ? null : String(value);
  if (text === null) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== text) node.setAttribute(name, text);
}

/**
 * A status badge: <span class="badge badge-<kind>-<value>">label</span>. The label is
 * translated by the key prefix + value; setBadge updates it in place.
 */
export function badge(prefix, value) {
  const node = el("span");
  setBadge(node, prefix, value);
  return node;
}

export function setBadge(node, prefix, value) {
  const v = value || "unknown";
  const cls = `badge badge-${prefix}-${v}`;
  if (node.className !== cls) node.className = cls;
  const key = `${prefix}.${v}`;
  if (node.dataset.i18n !== key) node.dataset.i18n = key;
  setText(node, t(key));
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

/** A table with translated column headers; columns: [{key, class}] */
export function table(columns, props = {}) {
  const colgroup = el("colgroup", {}, columns.map((c) => el("col", { class: c.col || null })));
  const head = el("tr", {}, columns.map((c) => el("th", { class: c.class || null, i18n: c.key, attrs: { scope: "col" } })));
  const body = el("tbody");
  const node = el("table", { class: `grid ${props.class || ""}`.trim() }, colgroup, el("thead", {}, head), body);
  return { table: node, head, body };
}

/**
 * Keeps one <tr> per key in a tbody and updates it in place: rows are created once, updated each
 * time, reordered only when the order changed, and removed when their key is gone. Rebuilding
 * the table each second would lose focus, selection and scroll, and make the page jump.
 */
export class KeyedRows {
  constructor(body, create, update) {
    this.body = body;
    this.create = create;
    this.update = update;
    this.rows = new Map();
  }

  render(items, keyOf) {
    const seen = new Set();
    const order = [];
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      let row = this.rows.get(key);
      if (!row) {
        row = this.create(item, key);
        this.rows.set(key, row);
      }
      this.update(row, item);
      order.push(row.tr);
    }
    for (const [key, row] of this.rows) {
      if (!seen.has(key)) {
        row.tr.remove();
        this.rows.delete(key);
      }
    }
    const current = this.body.children;
    let same = current.length === order.length;
    for (let i = 0; same && i < order.length; i += 1) same = current[i] === order[i];
    if (!same) for (const tr of order) this.body.append(tr);
  }
}

/**
 * Put a translated sentence with data in it into node: the sentence's words as text, each
 * {param} as a <span translate="no"> holding the plant's own text (a device, a tag, a zone).
 */
export function sentence(node, key, params) {
  clear(node);
  for (const part of parts(key)) {
    if (typeof part === "string") node.append(document.createTextNode(part));
    else node.append(data("span", params[part.param] === undefined ? "" : String(params[part.param]), { class: "param" }));
  }
  return node;
}

/** A message line (loading, error, empty) in a section. */
export function note(key, params, kind = "muted") {
  const node = el("p", { class: `note note-${kind}` });
  node.dataset.i18n = key;
  node.textContent = t(key, params);
  if (params) node.removeAttribute("data-i18n"); // parameterised: re-rendered by its page
  return node;
}
