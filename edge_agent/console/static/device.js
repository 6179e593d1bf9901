// Device page: every tag live (value with unit, quality, reason, source time, raw registers or
// node id) with a filter and sortable columns; a numeric tag's chart over the kept history; the
// device's recent errors and state changes. Without a name: a list of the devices to pick from.

import { getJSON } from "./api.js";
import { DASH, fmtAge, fmtDateTime, fmtInt, fmtTimeMs, fmtValue, t } from "./i18n.js";
import { KeyedRows, badge, clear, data, el, label, note, sentence, setAttr, setBadge, setText, table } from "./dom.js";
import { historyChart } from "./charts.js";
import { writeCard } from "./write.js";

const EVENTS_MS = 10000;

const COLUMNS = [
  { id: "name", key: "col.tag", col: "w-name" },
  { id: "value", key: "col.value", class: "num", col: "w-value" },
  { id: "unit", key: "col.unit", col: "w-unit" },
  { id: "quality", key: "col.quality", col: "w-state" },
  { id: "reason", key: "col.reason", col: "w-reason" },
  { id: "time", key: "col.time", class: "num", col: "w-time" },
  { id: "source", key: "col.source", col: "w-source" },
];

const QUALITY_ORDER = { bad: 0, uncertain: 1, good: 2 };

// Kept across re-mounts of the same device (a language switch, a return from another page).
const view = { device: null, filter: "", sort: "", dir: 1, chart: null };

export function mount(main, { live, param }) {
  if (!param) return mountPicker(main, live);
  if (view.device !== param) Object.assign(view, { device: param, filter: "", sort: "", dir: 1, chart: null });
  live.follow(param);

  const title = data("h1", param);
  const state = badge("state", "connecting");
  const facts = el("dl", { class: "facts" });
  const factCells = {};
  for (const [id, key] of [["driver", "device.driver"], ["device_type", "device.type"], ["template", "device.template"],
    ["since", "device.since"], ["last_good", "device.last_good"], ["reason", "device.reason"]]) {
    const dd = data("dd", DASH);
    factCells[id] = dd;
    facts.append(el("div", { class: `fact fact-${id}` }, label("dt", key), dd));
  }
  const filter = el("input", {
    type: "search", class: "filter", value: view.filter, data: { testid: "tag-filter" },
    attrs: { "data-i18n-placeholder": "device.filter", placeholder: t("device.filter"), "aria-label": t("device.filter") },
  });
  const count = el("span", { class: "sub count" });
  const tags = table(COLUMNS, { class: "tags" });
  const sortButtons = decorateHead(tags.head);
  const chartBox = el("div", { class: "chart-box" });
  const chartTitle = el("h2");
  const chartClose = el("button", { type: "button", class: "ghost", i18n: "device.chart_close" });
  const chartCard = el("section", { class: "card chart-card" },
    el("div", { class: "card-head" }, chartTitle, chartClose), chartBox);
  chartCard.hidden = true;
  const events = table([
    { key: "col.when", class: "num", col: "w-time" }, { key: "col.kind_event", col: "w-state" }, { key: "col.text" },
  ], { class: "events" });
  const eventsEmpty = note("device.no_events");
  const failures = table([{ key: "col.reason" }, { key: "col.count", class: "num", col: "w-num" }], { class: "failures" });
  const failuresBox = el("div", {}, label("h4", "device.failures"), el("div", { class: "scroll-x" }, failures.table));
  failuresBox.hidden = true;
  const problem = el("div");
  const loading = note("common.loading");
  const writes = writeCard();

  main.append(
    el("div", { class: "page-head" },
      el("a", { href: "#/plant", class: "back", i18n: "device.back" }), title, state),
    problem,
    loading,
    el("section", { class: "card" }, facts),
    chartCard,
    el("section", { class: "card" },
      el("div", { class: "card-head" }, label("h2", "device.tags"),
        el("div", { class: "toolbar" }, filter, count)),
      note("device.chart_hint"),
      el("div", { class: "scroll-x" }, tags.table)),
    writes.card,
    el("section", { class: "card" },
      el("div", { class: "card-head" }, label("h2", "device.events")),
      el("div", { class: "scroll-x" }, events.table), eventsEmpty, failuresBox),
  );

  let doc = null;
  let chart = null;
  let chartPoints = [];
  let chartSpan = 600;
  let stopped = false;
  const rows = new KeyedRows(tags.body, createTagRow, updateTagRow);
  const eventRows = new KeyedRows(events.body, createEventRow, () => {});
  const failureRows = new KeyedRows(failures.body, (item) => {
    const count = el("span");
    const tr = el("tr", { data: { testid: "failure-row" } },
      el("td", { class: "reason-cell" }, data("span", item[0], { class: "reason", title: item[0] })),
      el("td", { class: "num" }, count));
    return { tr, count };
  }, (row, item) => setText(row.count, fmtInt(item[1])));

  function createTagRow(tag) {
    const value = el("span", { class: "value" });
    const valueCell = el("td", { class: "num value-cell", data: { testid: "tag-value" } }, value);
    valueCell.setAttribute("translate", "no");
    const quality = badge("quality", tag.quality);
    const reason = data("span", "", { class: "reason" });
    const time = el("span");
    // The raw registers change with every poll: updated in place like the value.
    const source = data("code", tag.source || "", { class: "source" });
    const nameCell = el("td", {}, data("span", tag.name, { class: "strong" }));
    if (tag.description) nameCell.append(data("span", tag.description, { class: "sub" }));
    const tr = el("tr", { data: { testid: "tag-row", tag: tag.name } },
      nameCell,
      valueCell,
      el("td", {}, data("span", tag.unit || "", { class: "unit" })),
      el("td", {}, quality),
      el("td", { class: "reason-cell" }, reason),
      el("td", { class: "num" }, time),
      el("td", {}, source),
    );
    if (tag.numeric) {
      tr.classList.add("clickable", "numeric");
      tr.tabIndex = 0;
      tr.addEventListener("click", () => openChart(tag.name));
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          openChart(tag.name);
        }
      });
    }
    return { tr, value, valueCell, quality, reason, time, source, tag };
  }

  function updateTagRow(row, tag) {
    row.tag = tag;
    setAttr(row.tr, "data-quality", tag.quality);
    setText(row.value, showValue(tag.value, tag.type));
    setAttr(row.valueCell, "data-quality", tag.quality);
    setBadge(row.quality, "quality", tag.quality);
    setText(row.reason, tag.reason || "");
    setAttr(row.reason, "title", tag.reason || null);
    setText(row.time, fmtTimeMs(tag.time));
    setText(row.source, tag.source || "");
    setAttr(row.time, "title", tag.time ? fmtDateTime(tag.time) : null);
    row.tr.classList.toggle("selected", view.chart === tag.name);
    row.tr.hidden = !matches(tag, view.filter);
  }

  function renderTags() {
    if (!doc) return;
    const list = sorted(doc.tags || []);
    rows.render(list, (tag) => tag.name);
    const shown = list.filter((tag) => matches(tag, view.filter)).length;
    setText(count, t("device.filter_count", { shown: fmtInt(shown), total: fmtInt(list.length) }));
    for (const [id, button] of sortButtons) {
      button.dataset.sort = view.sort === id ? (view.dir > 0 ? "asc" : "desc") : "";
      button.parentElement.setAttribute("aria-sort", view.sort === id ? (view.dir > 0 ? "ascending" : "descending") : "none");
    }
  }

  function renderHead() {
    setBadge(state, "state", doc.state);
    for (const id of ["driver", "device_type", "template"]) setText(factCells[id], doc[id] || DASH);
    setText(factCells.since, doc.since ? fmtAge(doc.since) : DASH);
    setAttr(factCells.since, "title", doc.since ? fmtDateTime(doc.since) : null);
    setText(factCells.last_good, fmtAge(doc.last_good));
    setAttr(factCells.last_good, "title", doc.last_good ? fmtDateTime(doc.last_good) : null);
    setText(factCells.reason, doc.reason || DASH);
    factCells.reason.classList.toggle("bad-text", Boolean(doc.reason));
  }

  function renderEvents(list) {
    eventRows.render(list || [], (e) => `${e.time}|${e.kind}|${e.text}`);
    eventsEmpty.hidden = (list || []).length > 0;
    events.table.hidden = (list || []).length === 0;
  }

  function apply(next) {
    if (stopped || next.name !== param) return;
    loading.hidden = true;
    clear(problem);
    doc = next;
    renderHead();
    renderTags();
    writes.update(next);
    if (next.events) renderEvents(next.events);
    if (next.failures) {
      const list = Object.entries(next.failures).sort((a, b) => b[1] - a[1]);
      failureRows.render(list, (item) => item[0]);
      failuresBox.hidden = list.length === 0;
    }
    if (chart) appendChartPoint();
  }

  // --- chart of one numeric tag over the kept history
  async function openChart(name) {
    view.chart = name;
    chartCard.hidden = false;
    sentence(chartTitle, "device.chart", { tag: name });
    for (const row of rows.rows.values()) row.tr.classList.toggle("selected", row.tag.name === name);
    closeChartOnly();
    clear(chartBox);
    chartBox.append(note("common.loading"));
    try {
      const history = await getJSON(`/device/${encodeURIComponent(param)}/history?tag=${encodeURIComponent(name)}`);
      if (stopped || view.chart !== name) return;
      clear(chartBox);
      chartPoints = history.points || [];
      if (chartPoints.length > 1) chartSpan = Math.max(600, chartPoints[chartPoints.length - 1][0] - chartPoints[0][0]);
      if (!chartPoints.length) chartBox.append(note("device.chart_empty"));
      chart = historyChart(chartBox, chartPoints, history.unit || "", name);
    } catch (error) {
      if (stopped) return;
      clear(chartBox);
      chartBox.append(note("common.error", { text: describe(error) }, "error"));
    }
  }

  function appendChartPoint() {
    const tag = (doc.tags || []).find((x) => x.name === view.chart);
    if (!tag || !tag.time) return;
    const time = Date.parse(tag.time) / 1000;
    const last = chartPoints.length ? chartPoints[chartPoints.length - 1][0] : -Infinity;
    if (!(time > last)) return;
    chartPoints.push([time, tag.quality === "good" && typeof tag.value === "number" ? tag.value : null]);
    while (chartPoints.length > 2 && chartPoints[0][0] < time - chartSpan) chartPoints.shift();
    chart.setPoints(chartPoints);
  }

  function closeChartOnly() {
    if (chart) chart.destroy();
    chart = null;
  }

  chartClose.addEventListener("click", () => {
    view.chart = null;
    closeChartOnly();
    chartCard.hidden = true;
    for (const row of rows.rows.values()) row.tr.classList.remove("selected");
  });

  // --- filter and sort
  filter.addEventListener("input", () => {
    view.filter = filter.value;
    renderTags();
  });
  for (const [id, button] of sortButtons) {
    button.addEventListener("click", () => {
      if (view.sort === id) view.dir = -view.dir;
      else Object.assign(view, { sort: id, dir: 1 });
      renderTags();
    });
  }

  // --- data: the whole document once (with events), then the live feed; events every 10 s
  async function load(first) {
    try {
      const next = await getJSON(`/device/${encodeURIComponent(param)}`);
      apply(next);
      if (first && view.chart) openChart(view.chart);
    } catch (error) {
      if (stopped) return;
      loading.hidden = true;
      clear(problem);
      if (error && error.status === 404) problem.append(sentence(el("p", { class: "note note-error" }), "device.unknown", { name: param }));
      else if (first) problem.append(note("common.error", { text: describe(error) }, "error"));
    }
  }
  load(true);
  const timer = setInterval(() => load(false), EVENTS_MS);
  const off = live.on("device", apply);
  return {
    destroy() {
      stopped = true;
      clearInterval(timer);
      off();
      closeChartOnly();
      live.follow(null);
    },
  };
}

function decorateHead(head) {
  const buttons = new Map();
  head.querySelectorAll("th").forEach((th, index) => {
    const column = COLUMNS[index];
    const text = th.dataset.i18n;
    th.removeAttribute("data-i18n");
    th.textContent = "";
    const button = el("button", { type: "button", class: "sort", i18n: text, data: { column: column.id } });
    th.append(button);
    buttons.set(column.id, button);
  });
  return buttons;
}

function showValue(value, type) {
  if (typeof value === "boolean") return t(value ? "value.true" : "value.false");
  return fmtValue(value, typeof type === "string" && type.startsWith("float"));
}

function matches(tag, filter) {
  const needle = filter.trim().toLowerCase();
  if (!needle) return true;
  return [tag.name, tag.description, tag.unit, tag.source, tag.reason, tag.quality, t(`quality.${tag.quality}`)]
    .some((text) => typeof text === "string" && text.toLowerCase().includes(needle));
}

function sortKey(tag, id) {
  switch (id) {
    case "value":
      return tag.value === null || tag.value === undefined ? null : typeof tag.value === "number" ? tag.value : String(tag.value);
    case "quality":
      return QUALITY_ORDER[tag.quality] ?? -1;
    case "time":
      return tag.time ? Date.parse(tag.time) : null;
    default:
      return tag[id] === null || tag[id] === undefined ? "" : String(tag[id]).toLowerCase();
  }
}

function sorted(tags) {
  if (!view.sort) return tags;
  const id = view.sort;
  const dir = view.dir;
  return [...tags].sort((a, b) => {
    const x = sortKey(a, id);
    const y = sortKey(b, id);
    if (x === null && y === null) return 0;
    if (x === null) return 1; // unknown values last, either direction
    if (y === null) return -1;
    if (typeof x === "number" && typeof y === "number") return (x - y) * dir;
    return String(x).localeCompare(String(y)) * dir;
  });
}

function createEventRow(event) {
  const time = el("span", { text: fmtTimeMs(event.time) });
  time.title = fmtDateTime(event.time);
  const tr = el("tr", { class: `event-${event.kind}`, data: { testid: "event-row" } },
    el("td", { class: "num" }, time),
    el("td", {}, badge("event", event.kind === "error" ? "error" : "state")),
    el("td", {}, ...eventWords(event)),
  );
  return { tr };
}

// A change of state in the page's language: the states translated, the reason and its
// detail (the device's or the driver's words) as they came.
function eventWords(event) {
  if (!event.state) return [data("span", event.text || "")];
  const words = [badge("state", event.state)];
  if (event.reason) {
    words.push(" ", data("span", event.reason, { class: "reason" }));
    if (event.detail) words.push(" ", data("span", `(${event.detail})`, { class: "sub" }));
  } else if (event.previous) {
    words.push(" ", el("span", { text: t("event.was", { previous: t(`state.${event.previous}`) }) }));
  }
  return words;
}

function describe(error) {
  if (error && error.status) return t("common.request_failed", { status: error.status });
  return t("common.network");
}

// ------------------------------------------------------------------ no device named: pick one

function mountPicker(main, live) {
  live.follow(null);
  const list = el("div", { class: "picker" });
  main.append(el("div", { class: "page-head" }, label("h1", "device.title")), note("device.pick"),
    el("section", { class: "card" }, list));
  const links = new Map();
  function render(plant) {
    for (const device of plant.devices || []) {
      let entry = links.get(device.name);
      if (!entry) {
        const state = badge("state", device.state);
        const link = el("a", { href: `#/device/${encodeURIComponent(device.name)}`, class: "pick" },
          data("span", device.name, { class: "strong" }), state);
        entry = { link, state };
        links.set(device.name, entry);
        list.append(link);
      }
      setBadge(entry.state, "state", device.state);
    }
  }
  if (live.plant) render(live.plant);
  const off = live.on("plant", render);
  return { destroy: off };
}
