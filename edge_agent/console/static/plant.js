// Plant page: every device (state, last good read, reason, reads/s, key value and its sparkline),
// every sink (connected or failing, backlog, oldest undelivered, drops) and the outbox's disk use
// against its budget. Rows are built once and their cells updated in place each second.

import {
  DASH, fmtAge, fmtBytes, fmtDateTime, fmtDuration, fmtFixed, fmtInt, fmtPct, fmtValue, t,
} from "./i18n.js";
import { KeyedRows, badge, data, el, label, note, sentence, setAttr, setBadge, setText, table } from "./dom.js";
import { drawSparkline } from "./charts.js";
import { state as api } from "./api.js";
import { eventsTable } from "./energy_figures.js";

const DEVICE_COLUMNS = [
  { key: "col.device", col: "w-name" },
  { key: "col.state", col: "w-state" },
  { key: "col.last_good", col: "w-age" },
  { key: "col.reason", col: "w-reason" },
  { key: "col.reads_per_s", class: "num", col: "w-num" },
  { key: "col.key_value", class: "num", col: "w-value" },
  { key: "col.trend", col: "w-spark" },
];

const SINK_COLUMNS = [
  { key: "col.sink", col: "w-name" },
  { key: "col.kind", col: "w-kind" },
  { key: "col.status", col: "w-state" },
  { key: "col.backlog", class: "num", col: "w-num" },
  { key: "col.oldest", col: "w-age" },
  { key: "col.dropped", class: "num", col: "w-num" },
  { key: "col.sent", class: "num", col: "w-num" },
  { key: "col.last_error", col: "w-reason" },
];

export function mount(main, { live }) {
  live.follow(null);
  const summary = el("span", { class: "summary" });
  const version = el("span");
  const uptime = el("span");
  const meta = el("span", { class: "meta" }, version, " · ", uptime);
  const devices = table(DEVICE_COLUMNS, { class: "devices" });
  const sinks = table(SINK_COLUMNS, { class: "sinks" });
  const outbox = el("div", { class: "outbox" });
  const devicesEmpty = note("plant.no_devices");
  const sinksEmpty = note("plant.no_sinks");
  devicesEmpty.hidden = true;
  sinksEmpty.hidden = true;
  const loading = note("common.loading");
  // Events running now (demand limit, idle energy, stalled meter): shown only while there are.
  const events = eventsTable("plant.no_events");
  const eventsCard = el("section", { class: "card", data: { testid: "plant-events" } },
    el("div", { class: "card-head" }, label("h2", "plant.events")), events.node);
  eventsCard.hidden = true;
  main.append(
    el("div", { class: "page-head" }, label("h1", "plant.title"), summary, meta),
    loading,
    eventsCard,
    el("section", { class: "card" },
      el("div", { class: "card-head" }, label("h2", "plant.devices")),
      el("div", { class: "scroll-x" }, devices.table), devicesEmpty),
    el("div", { class: "two-col" },
      el("section", { class: "card grow" },
        el("div", { class: "card-head" }, label("h2", "plant.sinks")),
        el("div", { class: "scroll-x" }, sinks.table), sinksEmpty),
      el("section", { class: "card outbox-card" },
        el("div", { class: "card-head" }, label("h2", "plant.outbox")), outbox)),
  );

  const deviceRows = new KeyedRows(devices.body, createDeviceRow, updateDeviceRow);
  const sinkRows = new KeyedRows(sinks.body, createSinkRow, updateSinkRow);
  const outboxView = createOutbox(outbox);

  function render(plant) {
    loading.hidden = true;
    const list = plant.devices || [];
    deviceRows.render(list, (d) => d.name);
    devicesEmpty.hidden = list.length > 0;
    devices.table.hidden = list.length === 0;
    const sinkList = plant.sinks || [];
    sinkRows.render(sinkList, (s) => s.name);
    sinksEmpty.hidden = sinkList.length > 0;
    sinks.table.hidden = sinkList.length === 0;
    outboxView.update(plant.outbox);
    events.update(plant.events || [], plant.timezone || undefined);
    eventsCard.hidden = !(plant.events || []).length;
    const online = list.filter((d) => d.state === "online").length;
    setText(summary, t("plant.summary", { online: fmtInt(online), total: fmtInt(list.length) }));
    const shown = plant.version || (api.session && api.session.version) || DASH;
    if (version.dataset.shown !== shown) {
      version.dataset.shown = shown;
      sentence(version, "plant.version", { version: shown });
    }
    setText(uptime, t("plant.uptime", { time: fmtDuration(plant.uptime_s) }));
  }

  if (live.plant) render(live.plant);
  const off = live.on("plant", render);
  return { destroy: off };
}

// ------------------------------------------------------------------ devices

function createDeviceRow(device) {
  const link = el("a", { href: `#/device/${encodeURIComponent(device.name)}`, class: "strong" });
  link.setAttribute("translate", "no");
  link.textContent = device.name;
  const driver = data("span", device.driver || "", { class: "sub" });
  const state = badge("state", device.state);
  const since = el("span", { class: "sub" });
  const lastGood = el("span");
  const reason = data("span", "", { class: "reason" });
  const rate = el("span");
  const value = el("span", { class: "value" });
  const unit = data("span", "", { class: "unit" });
  const keyTag = data("span", "", { class: "sub" });
  const canvas = el("canvas", { class: "spark", data: { testid: "sparkline" } });
  canvas.setAttribute("aria-hidden", "true");
  const tr = el("tr", { data: { testid: "device-row", device: device.name } },
    el("td", { class: "c-name" }, link, driver),
    el("td", { class: "c-state" }, state, since),
    el("td", { class: "c-good", data: { label: t("col.last_good") } }, lastGood),
    el("td", { class: "reason-cell c-reason" }, reason),
    el("td", { class: "num c-rate", data: { label: t("col.reads_per_s") } }, rate),
    el("td", { class: "num c-value" }, el("span", {}, value, unit), keyTag),
    el("td", { class: "spark-cell c-spark" }, canvas),
  );
  tr.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    location.hash = `#/device/${encodeURIComponent(device.name)}`;
  });
  tr.classList.add("clickable");
  return { tr, state, since, lastGood, reason, rate, value, unit, keyTag, canvas, lastSpark: "" };
}

function updateDeviceRow(row, device) {
  setAttr(row.tr, "data-state", device.state);
  setBadge(row.state, "state", device.state);
  setText(row.since, device.since ? fmtAge(device.since) : "");
  setAttr(row.since, "title", device.since ? fmtDateTime(device.since) : null);
  setText(row.lastGood, fmtAge(device.last_good));
  setAttr(row.lastGood, "title", device.last_good ? fmtDateTime(device.last_good) : null);
  setText(row.reason, device.reason || "");
  setAttr(row.reason, "title", device.reason || null);
  setText(row.rate, fmtFixed(device.reads_per_s, 1));
  const key = device.key;
  if (key) {
    setText(row.value, key.quality === "bad" ? DASH : fmtValue(key.value));
    setAttr(row.value, "data-quality", key.quality);
    setText(row.unit, key.unit ? ` ${key.unit}` : "");
    setText(row.keyTag, key.tag);
    const history = key.history || [];
    const stamp = `${history.length}:${history.length ? history[history.length - 1][0] : ""}:${row.canvas.clientWidth}`;
    if (stamp !== row.lastSpark) {
      row.lastSpark = stamp;
      drawSparkline(row.canvas, history);
    }
  } else {
    setText(row.value, DASH);
    setText(row.unit, "");
    setText(row.keyTag, "");
    if (row.lastSpark !== "none") {
      row.lastSpark = "none";
      drawSparkline(row.canvas, []);
    }
  }
}

// ------------------------------------------------------------------ sinks

function sinkStatus(sink) {
  if (sink.failing) return "failing";
  return sink.connected ? "connected" : "disconnected";
}

function createSinkRow(sink) {
  const status = badge("sink", sinkStatus(sink));
  const backlog = el("span");
  const oldest = el("span");
  const dropped = el("span");
  const sent = el("span");
  const error = data("span", "", { class: "reason" });
  const tr = el("tr", { data: { testid: "sink-row", sink: sink.name } },
    el("td", {}, data("span", sink.name, { class: "strong" })),
    el("td", {}, data("span", sink.kind || "")),
    el("td", {}, status),
    el("td", { class: "num" }, backlog),
    el("td", {}, oldest),
    el("td", { class: "num" }, dropped),
    el("td", { class: "num" }, sent),
    el("td", { class: "reason-cell" }, error),
  );
  return { tr, status, backlog, oldest, dropped, sent, error };
}

function updateSinkRow(row, sink) {
  const status = sinkStatus(sink);
  setAttr(row.tr, "data-status", status);
  setBadge(row.status, "sink", status);
  setText(row.backlog, fmtInt(sink.backlog_batches));
  row.backlog.classList.toggle("warn-text", sink.backlog_batches > 0);
  setText(row.oldest, sink.oldest_undelivered ? fmtAge(sink.oldest_undelivered) : DASH);
  setAttr(row.oldest, "title", sink.oldest_undelivered ? fmtDateTime(sink.oldest_undelivered) : null);
  setText(row.dropped, fmtInt(sink.dropped_batches));
  row.dropped.classList.toggle("bad-text", sink.dropped_batches > 0);
  setText(row.sent, fmtInt(sink.batches_sent));
  setText(row.error, sink.last_error || "");
  setAttr(row.error, "title", sink.last_error || null);
}

// ------------------------------------------------------------------ outbox

function createOutbox(box) {
  const empty = note("plant.no_outbox");
  const fill = el("div", { class: "usage-fill" });
  const bar = el("div", { class: "usage", data: { testid: "outbox-bar" } }, fill);
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const use = el("div", { class: "usage-text" });
  const lost = el("div", { class: "sub" });
  const dropped = el("div", { class: "sub" });
  const writing = el("div", { class: "sub bad-text", i18n: "outbox.not_writing" });
  const path = data("code", "", { class: "path" });
  const body = el("div", { class: "outbox-body" }, bar, use, writing, lost, dropped,
    el("div", { class: "sub" }, label("span", "outbox.path"), ": ", path));
  box.append(empty, body);
  return {
    update(outbox) {
      empty.hidden = Boolean(outbox);
      body.hidden = !outbox;
      if (!outbox) return;
      const ratio = outbox.budget_bytes > 0 ? outbox.bytes / outbox.budget_bytes : null;
      const pct = ratio === null ? 0 : Math.min(100, Math.max(0, ratio * 100));
      fill.style.width = `${pct.toFixed(1)}%`;
      fill.className = `usage-fill ${pct >= 90 ? "usage-bad" : pct >= 70 ? "usage-warn" : "usage-ok"}`;
      bar.setAttribute("aria-valuenow", pct.toFixed(0));
      setText(use, t("outbox.use", {
        used: fmtBytes(outbox.bytes), budget: fmtBytes(outbox.budget_bytes), pct: fmtPct(ratio),
      }));
      setText(lost, t("outbox.lost", { n: fmtInt(outbox.lost_batches) }));
      lost.classList.toggle("bad-text", outbox.lost_batches > 0);
      dropped.hidden = outbox.dropped_batches === undefined;
      setText(dropped, t("outbox.dropped", { n: fmtInt(outbox.dropped_batches) }));
      dropped.classList.toggle("bad-text", outbox.dropped_batches > 0);
      writing.hidden = outbox.writing !== false;
      setText(path, outbox.path || "");
    },
  };
}

