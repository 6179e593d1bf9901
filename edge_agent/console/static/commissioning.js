// Commissioning page (permission "commission", and only when the config switches it on): the
// read and probe tools in a form, registers in hex beside every decoding, probe's ranked
// candidates, and "read device once" (run --once) for a configured device.

import { postJSON } from "./api.js";
import { DASH, fmtFixed, fmtInt, fmtValue, t } from "./i18n.js";
import { badge, clear, data, el, label, note, table } from "./dom.js";

const TABLES = ["holding", "input", "coil", "discrete_input"];
const TYPES = ["bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"];
const ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"];
const STORE = "edge_commission_form";

export function mount(main, { live }) {
  live.follow(null);
  const saved = restore();
  const f = {
    target: input("text", saved.target || "", { testid: "com-target", placeholder: t("com.target_hint"), spellcheck: "false", autocapitalize: "none" }),
    unit: input("number", saved.unit ?? 1, { testid: "com-unit", min: 0, max: 255 }),
    table: select(TABLES.map((v) => [v, `table.${v}`]), saved.table || "holding", "com-table"),
    address: input("number", saved.address ?? 0, { testid: "com-address", min: 0, max: 65535 }),
    count: input("number", saved.count ?? 2, { testid: "com-count", min: 1, max: 125 }),
    type: select([["", "com.any"], ...TYPES.map((v) => [v, null])], saved.type || "", "com-type"),
    order: select([["", "com.any"], ...ORDERS.map((v) => [v, null])], saved.byte_order || "", "com-byte-order"),
    low: input("number", saved.low ?? "", { testid: "com-expect-low", step: "any" }),
    high: input("number", saved.high ?? "", { testid: "com-expect-high", step: "any" }),
  };
  const readButton = el("button", { type: "submit", class: "primary", i18n: "com.read", data: { testid: "com-read" } });
  const probeButton = el("button", { type: "button", i18n: "com.probe", data: { testid: "com-probe" } });
  const form = el("form", { class: "form-grid", attrs: { novalidate: true } },
    field("com.target", f.target, "wide"),
    field("com.unit", f.unit), field("com.table", f.table, "span2"), field("com.address", f.address),
    field("com.count", f.count), field("com.type", f.type), field("com.byte_order", f.order),
    el("div", { class: "form-actions" }, readButton),
    el("fieldset", { class: "probe-set" },
      label("legend", "com.expect"),
      field("com.expect_low", f.low), field("com.expect_high", f.high),
      el("div", { class: "form-actions" }, probeButton),
      note("com.probe_hint")),
  );
  const result = el("div", { class: "result", data: { testid: "com-result" } });

  const devicePick = el("select", { data: { testid: "com-once-device" } });
  devicePick.setAttribute("translate", "no");
  const onceButton = el("button", { type: "button", class: "primary", i18n: "com.once", data: { testid: "com-once" } });
  const onceResult = el("div", { class: "result", data: { testid: "com-once-result" } });

  main.append(
    el("div", { class: "page-head" }, label("h1", "com.title")),
    el("section", { class: "card" },
      el("div", { class: "card-head" }, label("h2", "com.read_title")), note("com.read_hint"), form, result),
    el("section", { class: "card" },
      el("div", { class: "card-head" }, label("h2", "com.once_title")), note("com.once_hint"),
      el("div", { class: "form-row" }, field("com.device", devicePick), el("div", { class: "form-actions" }, onceButton)),
      onceResult),
  );

  let stopped = false;
  const busy = (on) => {
    for (const button of [readButton, probeButton, onceButton]) button.disabled = on;
  };

  function request(withExpect) {
    const number = (node, key, low, high) => {
      const v = Number(node.value);
      if (node.value === "" || !Number.isInteger(v) || v < low || v > high) throw new Error(key);
      return v;
    };
    const target = f.target.value.trim();
    if (!target) throw new Error("com.target");
    const body = {
      target,
      unit: number(f.unit, "com.unit", 0, 255),
      table: f.table.value,
      address: number(f.address, "com.address", 0, 65535),
    };
    const count = number(f.count, "com.count", 1, 125);
    store({
      target, unit: body.unit, table: body.table, address: body.address, count,
      type: f.type.value, byte_order: f.order.value, low: f.low.value, high: f.high.value,
    });
    if (!withExpect) {
      return { ...body, count, type: f.type.value || null, byte_order: f.order.value || null };
    }
    const low = Number(f.low.value);
    const high = Number(f.high.value);
    if (f.low.value === "" || !Number.isFinite(low)) throw new Error("com.expect_low");
    if (f.high.value === "" || !Number.isFinite(high) || high < low) throw new Error("com.expect_high");
    // probe reads 4 registers unless asked for more: room for a float64 and a neighbour.
    return count > 4 ? { ...body, count, expect: [low, high] } : { ...body, expect: [low, high] };
  }

  function markField(error) {
    for (const node of Object.values(f)) node.classList.remove("invalid");
    const field = error && error.body && error.body.field;
    const node = { byte_order: f.order, expect: f.low }[field] || f[field];
    if (node) node.classList.add("invalid");
  }

  async function run(action, withExpect) {
    let body;
    try {
      body = request(withExpect);
    } catch (error) {
      clear(result);
      result.append(note("com.bad_input", { field: t(error.message) }, "error"));
      return;
    }
    markField(null);
    clear(result);
    result.append(note("com.running"));
    busy(true);
    try {
      const answer = await postJSON(`/commission/${action}`, body);
      if (stopped) return;
      clear(result);
      result.append(renderRead(answer, body, action === "probe"));
    } catch (error) {
      if (stopped) return;
      clear(result);
      markField(error);
      result.append(failure(error));
    } finally {
      busy(false);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run("read", false);
  });
  probeButton.addEventListener("click", () => run("probe", true));

  onceButton.addEventListener("click", async () => {
    if (!devicePick.value) return;
    clear(onceResult);
    onceResult.append(note("com.running"));
    busy(true);
    try {
      const answer = await postJSON("/commission/once", { device: devicePick.value });
      if (stopped) return;
      clear(onceResult);
      onceResult.append(renderOnce(answer));
    } catch (error) {
      if (stopped) return;
      clear(onceResult);
      onceResult.append(failure(error));
    } finally {
      busy(false);
    }
  });

  function fillDevices(plant) {
    const names = (plant.devices || []).map((d) => d.name);
    const have = [...devicePick.options].map((o) => o.value);
    if (names.join("\n") === have.join("\n")) return;
    const keep = devicePick.value;
    clear(devicePick);
    for (const name of names) devicePick.append(el("option", { value: name, text: name }));
    if (names.includes(keep)) devicePick.value = keep;
  }
  if (live.plant) fillDevices(live.plant);
  const off = live.on("plant", fillDevices);
  return {
    destroy() {
      stopped = true;
      off();
    },
  };
}

// ------------------------------------------------------------------ form pieces

function input(type, value, attrs) {
  const node = el("input", { type, value: String(value), data: { testid: attrs.testid } });
  for (const [name, v] of Object.entries(attrs)) if (name !== "testid") node.setAttribute(name, String(v));
  if (attrs.placeholder) node.setAttribute("translate", "no");
  if (type === "number") node.inputMode = attrs.step === "any" ? "decimal" : "numeric";
  return node;
}

function select(options, value, testid) {
  const node = el("select", { data: { testid } });
  for (const [v, key] of options) {
    const option = el("option", { value: v });
    if (key) {
      option.dataset.i18n = key;
      option.textContent = t(key);
    } else {
      option.textContent = v;
      option.setAttribute("translate", "no");
    }
    node.append(option);
  }
  node.value = value;
  return node;
}

let fieldSeq = 0;

function field(key, control, extra) {
  fieldSeq += 1;
  control.id = control.id || `f-${fieldSeq}`;
  const caption = label("label", key);
  caption.htmlFor = control.id;
  return el("div", { class: `field ${extra || ""}`.trim() }, caption, control);
}

function restore() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "{}") || {};
  } catch {
    return {};
  }
}

function store(values) {
  try {
    sessionStorage.setItem(STORE, JSON.stringify(values));
  } catch {
    // storage off: the form is simply not remembered
  }
}

// ------------------------------------------------------------------ results

function failure(error) {
  const status = error && error.status;
  const body = (error && error.body) || {};
  if (status === 403 && body.error === "permission") return note("common.permission", null, "error");
  if (status === 404) return note("com.off", null, "error");
  if (status === 409) return errorBox(body.detail || body.error, "");
  if (body.error) return errorBox(body.error, body.hint || "");
  if (status) return errorBox(t("common.request_failed", { status }), "");
  if (error instanceof TypeError && /fetch|network/i.test(error.message)) return errorBox(t("common.network"), "");
  // A fault of this page's own (not the agent's): said as such, and in the console.
  console.error(error);
  return errorBox(t("common.page_error", { message: String(error && error.message) }), "");
}

function errorBox(text, hint, lines) {
  const box = el("div", { class: "alert alert-bad", data: { testid: "com-error" } },
    label("strong", "com.failed"), data("p", text || DASH));
  if (hint) box.append(el("p", {}, label("span", "com.hint", { class: "strong" }), ": ", data("span", hint)));
  if (lines && lines.length) box.append(terminal(lines));
  return box;
}

/** What the command line prints for the same request, folded away. */
function terminal(lines) {
  return el("details", { class: "terminal" }, label("summary", "com.lines"), data("pre", lines.join("\n")));
}

function renderRead(answer, body, isProbe) {
  if (!answer || answer.ok === false) return errorBox(answer && answer.error, answer && answer.hint, answer && answer.lines);
  const box = el("div", { class: "read-result" });
  if (typeof answer.elapsed_ms === "number") {
    box.append(el("p", { class: "sub", text: t("com.elapsed", { ms: t("unit.ms", { n: fmtFixed(answer.elapsed_ms, 1) }) }) }));
  }
  const address = typeof answer.address === "number" ? answer.address : body.address;
  const words = answer.bits && answer.bits.length ? answer.bits : answer.registers || [];
  const columns = el("div", { class: "side-by-side" });
  columns.append(el("div", {}, label("h4", "com.registers"), registersTable(words, address)));
  if (isProbe) {
    const side = el("div", { class: "grow" }, label("h4", "com.candidates"));
    const candidates = answer.candidates || [];
    if (!candidates.length) side.append(note("com.no_candidates"));
    else side.append(decodingsTable(candidates, true));
    if (answer.more) side.append(el("p", { class: "sub", text: t("com.more", { n: fmtInt(answer.more) }) }));
    if (answer.verdict) side.append(data("p", answer.verdict, { class: "verdict" }));
    if (answer.explanation && answer.explanation.length) {
      side.append(data("ul", "", { class: "explanation" }));
      for (const line of answer.explanation) side.lastChild.append(data("li", line));
    }
    if (answer.tag) side.append(label("h4", "com.tag_yaml"), data("pre", answer.tag, { class: "snippet", data: { testid: "com-tag-yaml" } }));
    columns.append(side);
  } else if (!(answer.bits && answer.bits.length)) {
    const decodings = [...(answer.decodings || []),
      ...(answer.texts || []).map((x) => ({ type: "string", byte_order: x.byte_order, text: JSON.stringify(x.value), good: true }))];
    columns.append(el("div", { class: "grow" }, label("h4", "com.decodings"),
      decodings.length ? decodingsMatrix(decodings) : note("com.no_decodings")));
  }
  box.append(columns);
  if (answer.lines && answer.lines.length) box.append(terminal(answer.lines));
  return box;
}

function registersTable(registers, address) {
  const grid = table([
    { key: "col.address", class: "num", col: "w-num" }, { key: "col.hex", class: "num", col: "w-num" },
    { key: "col.decimal", class: "num", col: "w-num" }, { key: "col.binary", class: "num" },
  ], { class: "registers compact mono" });
  registers.forEach((register, index) => {
    const isBit = typeof register === "boolean";
    const word = isBit ? Number(register) : typeof register === "string" ? Number.parseInt(register, 16) : register;
    const known = typeof word === "number" && Number.isFinite(word);
    const hex = isBit ? DASH : typeof register === "string" ? register : known ? `0x${word.toString(16).toUpperCase().padStart(4, "0")}` : DASH;
    const binary = !known ? DASH : isBit ? String(word) : word.toString(2).padStart(16, "0").replace(/(\d{4})(?=\d)/g, "$1 ");
    grid.body.append(el("tr", { data: { testid: "register-row" } },
      el("td", { class: "num", text: String(address + index) }),
      el("td", { class: "num", text: hex }),
      el("td", { class: "num", text: known ? String(word) : DASH }),
      el("td", { class: "num", text: binary }),
    ));
  });
  return grid.table;
}

/** "1 in 4,200" from a probability, as the command line words it (drivers/modbus/ranking.py). */
function oneIn(chance) {
  if (typeof chance !== "number" || !Number.isFinite(chance)) return DASH;
  if (chance <= 0) return t("com.never");
  const n = 1 / chance;
  if (n < 1.5) return t("com.almost_always");
  const digits = Math.max(0, Math.floor(Math.log10(n)) - 1);
  return t("com.one_in", { n: fmtInt(Math.round(n / 10 ** digits) * 10 ** digits) });
}

/**
 * Every decoding of a read, one row per type and one column per byte order, so the orders of
 * one type sit side by side (a 16-bit type has two: CDAB reads as ABCD, DCBA as BADC).
 */
function decodingsMatrix(list) {
  const orders = ORDERS.filter((order) => list.some((d) => d.byte_order === order));
  const types = [];
  for (const d of list) {
    const id = typeof d.scale === "number" && d.scale !== 1 ? `${d.type} ×${d.scale}` : d.type;
    if (!types.includes(id)) types.push(id);
  }
  const grid = table([{ key: "col.type", col: "w-kind" }, ...orders.map(() => ({ key: "com.order_col", class: "num" }))],
    { class: "decodings matrix compact" });
  grid.head.querySelectorAll("th").forEach((th, index) => {
    if (index === 0) return;
    th.removeAttribute("data-i18n");
    th.textContent = orders[index - 1];
    th.setAttribute("translate", "no");
  });
  for (const id of types) {
    const cells = [el("td", {}, data("span", id, { class: "strong" }))];
    for (const order of orders) {
      const d = list.find((x) => (typeof x.scale === "number" && x.scale !== 1 ? `${x.type} ×${x.scale}` : x.type) === id && x.byte_order === order);
      const text = !d ? "" : d.text !== undefined && d.text !== null ? String(d.text) : fmtValue(d.value);
      cells.push(el("td", { class: "num value-cell mono", attrs: { "data-quality": d && d.good === false ? "bad" : "good" } }, data("span", text)));
    }
    grid.body.append(el("tr", { data: { testid: "decoding-row", type: id } }, cells));
  }
  return grid.table;
}

function decodingsTable(list, ranked) {
  const columns = [];
  if (ranked) columns.push({ key: "col.rank", class: "num", col: "w-rank" });
  const hasAddress = list.some((d) => d.address !== undefined);
  const hasScale = list.some((d) => typeof d.scale === "number" && d.scale !== 1);
  if (hasAddress) columns.push({ key: "col.address", class: "num", col: "w-num" });
  columns.push({ key: "col.type", col: "w-kind" }, { key: "col.byte_order", col: "w-kind" });
  if (hasScale) columns.push({ key: "col.scale", class: "num", col: "w-num" });
  columns.push({ key: "col.value", class: "num" });
  if (ranked) columns.push({ key: "col.chance", class: "num", col: "w-num" });
  const grid = table(columns, { class: "decodings compact" });
  list.forEach((d, index) => {
    const cells = [];
    if (ranked) cells.push(el("td", { class: "num", text: fmtInt(index + 1) }));
    if (hasAddress) cells.push(el("td", { class: "num", text: d.address === undefined ? DASH : String(d.address) }));
    cells.push(el("td", {}, data("span", d.type || DASH)), el("td", {}, data("span", d.byte_order || DASH)));
    if (hasScale) cells.push(el("td", { class: "num", text: typeof d.scale === "number" ? String(d.scale) : DASH }));
    const text = d.text !== undefined && d.text !== null ? String(d.text) : fmtValue(d.value);
    cells.push(el("td", { class: "num value-cell", attrs: { "data-quality": d.good === false ? "bad" : "good" } }, data("span", text)));
    if (ranked) cells.push(el("td", { class: "num", text: oneIn(d.chance) }));
    const tr = el("tr", { data: { testid: ranked ? "candidate-row" : "decoding-row" } }, cells);
    if (d.notes && d.notes.length) tr.title = d.notes.join("\n");
    grid.body.append(tr);
  });
  return grid.table;
}

function renderOnce(answer) {
  if (!answer || answer.ok === false) return errorBox(answer && answer.error, answer && answer.hint, answer && answer.lines);
  const box = el("div", { class: "once-result" });
  for (const device of answer.devices || []) {
    box.append(el("div", { class: `alert ${device.good ? "alert-ok" : "alert-warn"}` },
      data("strong", device.device), " · ", label("span", device.good ? "com.once_good" : "com.once_bad")));
    for (const group of device.groups || []) {
      const grid = table([
        { key: "col.tag", col: "w-name" }, { key: "col.value", class: "num", col: "w-value" }, { key: "col.unit", col: "w-unit" },
        { key: "col.quality", col: "w-state" }, { key: "col.raw", col: "w-source" }, { key: "col.reason" },
      ], { class: "once compact" });
      for (const tag of group.tags || []) {
        grid.body.append(el("tr", { data: { testid: "once-row", tag: tag.name } },
          el("td", {}, data("span", tag.name, { class: "strong" })),
          el("td", { class: "num value-cell", attrs: { "data-quality": tag.quality, translate: "no" } },
            typeof tag.value === "boolean" ? t(tag.value ? "value.true" : "value.false") : fmtValue(tag.value)),
          el("td", {}, data("span", tag.unit || "")),
          el("td", {}, badge("quality", tag.quality)),
          el("td", {}, data("code", tag.raw || "", { class: "source" })),
          el("td", { class: "reason-cell" }, data("span", tag.reason || "", { class: "reason" })),
        ));
      }
      box.append(el("h4", {}, label("span", "col.group"), ": ", data("span", group.group)), el("div", { class: "scroll-x" }, grid.table));
    }
  }
  // The server sends the command line's output as a list of lines.
  const lines = Array.isArray(answer.text) ? answer.text : String(answer.text || "").split("\n");
  if (lines.length && lines.join("")) box.append(terminal(lines));
  return box;
}
