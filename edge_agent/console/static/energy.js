// Energy and production page: per meter today's kWh, running demand, the day's 15-minute demand
// bars with the peak marked, kgce and kgCO2e, and the per-shift table; per machine the state
// band across the local day and utilization, availability, performance, quality, OEE, kWh per
// good part and idle energy. Every number is the one the agent publishes (GET /energy), shown
// as it comes: nothing is recomputed here. Meters and machines change slowly: polled every 10 s.
// Below them, links to the daily and shift reports the agent kept (GET /reports), newest first.
// Energy management (energy_figures.js): today's events first; per meter the cost by time-of-use
// period, the month's peak and the demand guard; the other carriers and the savings after them.

import { getJSON } from "./api.js";
import { DASH, fmtClock, fmtFigure, fmtFixed, fmtInt, fmtPct, t } from "./i18n.js";
import { KeyedRows, badge, clear, data, el, label, note, sentence, setBadge, setText, table } from "./dom.js";
import { demandBars, localDayStart, stateTimeline } from "./charts.js";
import {
  carriersTable, createCost, createGuard, eventsTable, monthPeakStat, savingsTable, updateMonthPeak,
} from "./energy_figures.js";

const POLL_MS = 10000;
// Report links shown; the rest: `edge-agent report --list` (a year of reports is ~1,500 files).
const REPORTS_SHOWN = 40;
const MACHINE_STATES = ["run", "idle", "off", "fault", "unknown"];
// The notes the agent attaches to the document (edge_agent/console/energy.py), by code.
const NOTES = ["metrics_off", "started_today", "blocks_unpublished", "no_shifts", "shift_windows_off", "timeline_truncated",
  "guard_no_reading", "total_unpriced", "carrier_no_co2"];

export function mount(main, { live }) {
  live.follow(null);
  const date = el("span", { class: "meta" });
  const problem = el("div");
  const notes = el("ul", { class: "notes", data: { testid: "energy-notes" } });
  const loading = note("common.loading");
  const meters = el("div", { class: "stack" });
  const machines = el("div", { class: "stack" });
  const metersEmpty = note("energy.no_meters");
  const machinesEmpty = note("energy.no_machines");
  const reports = el("ul", { class: "reports", data: { testid: "energy-reports" } });
  const reportsEmpty = note("energy.no_reports");
  const events = eventsTable("energy.no_events");
  const carriers = carriersTable();
  const savings = savingsTable();
  const carriersHead = el("div", { class: "section-head" }, label("h2", "energy.carriers"));
  const savingsHead = el("div", { class: "section-head" }, label("h2", "energy.savings"));
  metersEmpty.hidden = true;
  machinesEmpty.hidden = true;
  main.append(
    el("div", { class: "page-head" }, label("h1", "energy.title"), date),
    problem, notes, loading,
    el("div", { class: "section-head" }, label("h2", "energy.events")), el("section", { class: "card" }, events.node),
    el("div", { class: "section-head" }, label("h2", "energy.meters")), metersEmpty, meters,
    carriersHead, el("section", { class: "card", data: { testid: "carriers" } }, carriers.node),
    savingsHead, el("section", { class: "card", data: { testid: "savings" } }, savings.node),
    el("div", { class: "section-head" }, label("h2", "energy.machines"), legend()), machinesEmpty, machines,
    el("div", { class: "section-head" }, label("h2", "energy.reports")), reportsEmpty, reports,
  );

  const meterViews = new Map();
  const machineViews = new Map();
  let last = null;
  let stopped = false;

  function render(doc) {
    last = doc;
    loading.hidden = true;
    clear(problem);
    const tz = doc.timezone || undefined;
    const dateText = `${doc.date}|${doc.timezone}`;
    if (date.dataset.shown !== dateText) {
      date.dataset.shown = dateText;
      sentence(date, "energy.date", { date: doc.date || DASH, tz: doc.timezone || DASH });
    }
    const nowS = typeof doc.now_s === "number" ? doc.now_s : Date.now() / 1000;
    const day0 = localDayStart(nowS, tz);
    sync(meters, meterViews, doc.meters || [], (m) => createMeter(m), (view, m) => view.update(m, day0, nowS, tz));
    sync(machines, machineViews, doc.machines || [], (m) => createMachine(m), (view, m) => view.update(m, day0, nowS, tz));
    renderNotes(notes, doc.notes || [], tz);
    events.update(doc.events || [], tz);
    carriers.update(doc.carriers || []);
    savings.update(doc.savings || []);
    for (const [head, list] of [[carriersHead, doc.carriers], [savingsHead, doc.savings]]) {
      const hidden = !(list || []).length;
      head.hidden = hidden;
      head.nextElementSibling.hidden = hidden;
    }
    metersEmpty.hidden = (doc.meters || []).length > 0;
    machinesEmpty.hidden = (doc.machines || []).length > 0;
  }

  async function load() {
    try {
      const doc = await getJSON("/energy");
      if (!stopped) render(doc);
    } catch (error) {
      if (stopped) return;
      loading.hidden = true;
      clear(problem);
      const key = error && error.status === 404 ? "energy.unavailable" : null;
      problem.append(key ? note(key, null, "muted")
        : note("common.error", { text: error && error.status ? t("common.request_failed", { status: error.status }) : t("common.network") }, "error"));
    }
  }

  async function loadReports() {
    try {
      const doc = await getJSON("/reports");
      if (!stopped) renderReports(reports, reportsEmpty, doc.reports || []);
    } catch {
      // The figures above show what is wrong with the agent; the list stays as it was.
    }
  }

  load();
  loadReports();
  const timer = setInterval(load, POLL_MS);
  // The SVG charts are sized in pixels: redraw when the page's width changes.
  let width = main.clientWidth;
  const observer = new ResizeObserver(() => {
    if (Math.abs(main.clientWidth - width) > 8 && last) {
      width = main.clientWidth;
      render(last);
    }
  });
  observer.observe(main);
  return {
    destroy() {
      stopped = true;
      clearInterval(timer);
      observer.disconnect();
    },
  };
}

function renderNotes(box, list, tz) {
  const stamp = JSON.stringify(list);
  if (box.dataset.shown === stamp) return;
  box.dataset.shown = stamp;
  clear(box);
  for (const item of list) {
    const li = el("li", { data: { code: item.code || "" } });
    if (NOTES.includes(item.code)) {
      sentence(li, `note.${item.code}`, { subject: item.subject || "", time: typeof item.at_s === "number" ? fmtClock(item.at_s, tz) : DASH });
    } else li.append(data("span", item.text || ""));
    box.append(li);
  }
  box.hidden = list.length === 0;
}

function renderReports(box, empty, list) {
  clear(box);
  for (const report of list.slice(0, REPORTS_SHOWN)) {
    const name = report.shift ? `${report.day} · ${report.shift}` : report.day;
    const files = report.files || {};
    const li = el("li", { data: { testid: "report", report: report.report } },
      label("span", report.report === "shift" ? "energy.report_shift" : "energy.report_daily", { class: "meta" }), " ");
    li.append(files.html ? el("a", { attrs: { href: files.html, target: "_blank", rel: "noopener" } }, data("span", name)) : data("span", name));
    for (const kind of ["csv", "json"]) {
      if (files[kind]) li.append(" ", el("a", { attrs: { href: files[kind], download: "" }, text: kind.toUpperCase() }));
    }
    box.append(li);
  }
  if (list.length > REPORTS_SHOWN) box.append(el("li", {}, label("span", "energy.reports_more", { class: "meta" })));
  empty.hidden = list.length > 0;
}

function sync(box, views, items, create, update) {
  const seen = new Set();
  for (const item of items) {
    seen.add(item.name);
    let view = views.get(item.name);
    if (!view) {
      view = create(item);
      views.set(item.name, view);
      box.append(view.node);
    }
    update(view, item);
  }
  for (const [name, view] of views) {
    if (!seen.has(name)) {
      view.node.remove();
      views.delete(name);
    }
  }
}

function legend() {
  const box = el("div", { class: "legend", attrs: { "aria-label": t("machine.legend") } });
  for (const state of MACHINE_STATES) {
    box.append(el("span", { class: "legend-item" }, el("span", { class: `swatch seg-${state}` }), label("span", `machine.${state}`)));
  }
  return box;
}

/** A figure with its unit; the unit only beside a known number (not "– kW"). */
function setStat(view, value, unit) {
  setText(view.value, fmtFigure(value));
  setText(view.unit, typeof value === "number" ? ` ${unit}` : "");
}

function stat(key) {
  const value = el("span", { class: "stat-value" });
  const unit = el("span", { class: "stat-unit" });
  const sub = el("span", { class: "stat-sub" });
  const node = el("div", { class: "stat" }, label("span", key, { class: "stat-label" }), el("span", {}, value, unit), sub);
  return { node, value, unit, sub };
}

// ------------------------------------------------------------------ meters

function createMeter(meter) {
  const kind = el("span", { class: "pill" });
  const today = stat("energy.today");
  const demand = stat("energy.demand");
  const peak = stat("energy.peak");
  const kgce = stat("energy.kgce");
  const kgco2e = stat("energy.kgco2e");
  const month = monthPeakStat();
  const cost = createCost();
  const guard = createGuard();
  const bars = el("div", { class: "bars-box" });
  const barsEmpty = note("energy.no_blocks");
  const shifts = table([
    { key: "col.shift", col: "w-name" }, { key: "col.start", class: "num", col: "w-clock" }, { key: "col.end", class: "num", col: "w-clock" },
    { key: "col.energy_kwh", class: "num", col: "w-num" }, { key: "col.kgce", class: "num", col: "w-num" },
    { key: "col.kgco2e", class: "num", col: "w-num" }, { key: "col.quality", col: "w-state" },
  ], { class: "shifts compact" });
  const node = el("section", { class: "card meter", data: { testid: "meter", meter: meter.name } },
    el("div", { class: "card-head" }, data("h3", meter.name), kind),
    el("div", { class: "stats" }, today.node, demand.node, peak.node, month.node, kgce.node, kgco2e.node, ...cost.stats),
    guard.node,
    el("div", { class: "meter-body" },
      el("div", { class: "bars-col" }, label("h4", "energy.bars"), bars, barsEmpty),
      el("div", { class: "shifts-col" }, label("h4", "energy.shifts"), el("div", { class: "scroll-x" }, shifts.table), cost.node)),
  );
  let zone;
  const shiftRows = new KeyedRows(shifts.body, createShiftRow, (row, shift) => updateShiftRow(row, shift, zone));
  return {
    node,
    update(m, day0, nowS, tz) {
      kind.dataset.i18n = m.kind === "plant" ? "energy.plant_kind" : "energy.meter_kind";
      setText(kind, t(kind.dataset.i18n));
      setStat(today, m.energy_today_kwh, "kWh");
      setStat(demand, m.demand_kw, "kW");
      setStat(peak, m.peak_demand_kw, "kW");
      setText(peak.sub, typeof m.peak_demand_at_s === "number" ? t("energy.peak_at", { time: fmtClock(m.peak_demand_at_s, tz) }) : "");
      setStat(kgce, m.kgce, "kgce");
      setStat(kgco2e, m.kgco2e, "kgCO2e");
      updateMonthPeak(month, m, tz);
      cost.update(m, tz);
      guard.update(m, tz);
      clear(bars);
      bars.append(demandBars(bars, m, day0, nowS, tz));
      barsEmpty.hidden = (m.blocks || []).length > 0;
      zone = tz;
      shiftRows.render(m.shifts || [], (s) => `${s.name}|${s.start_s}`);
    },
  };
}

function createShiftRow(shift) {
  const cells = {
    start: el("span"), end: el("span"), kwh: el("span"), kgce: el("span"), kgco2e: el("span"),
    quality: badge("quality", shift.quality), open: el("span", { class: "pill pill-live" }),
  };
  const tr = el("tr", { data: { testid: "shift-row", shift: shift.name } },
    el("td", {}, data("span", shift.name, { class: "strong" }), " ", cells.open),
    el("td", { class: "num" }, cells.start), el("td", { class: "num" }, cells.end),
    el("td", { class: "num" }, cells.kwh), el("td", { class: "num" }, cells.kgce), el("td", { class: "num" }, cells.kgco2e),
    el("td", {}, cells.quality));
  return { tr, ...cells };
}

function updateShiftRow(row, shift, tz) {
  setText(row.start, fmtClock(shift.start_s, tz));
  setText(row.end, fmtClock(shift.end_s, tz));
  setText(row.kwh, fmtFigure(shift.energy_kwh));
  setText(row.kgce, fmtFigure(shift.kgce));
  setText(row.kgco2e, fmtFigure(shift.kgco2e));
  setBadge(row.quality, "quality", shift.quality);
  // Only the running shift is marked: the others are closed, which their place says.
  row.open.hidden = !shift.open;
  row.open.dataset.i18n = "energy.open";
  setText(row.open, t("energy.open"));
  row.tr.classList.toggle("open", Boolean(shift.open));
}

// ------------------------------------------------------------------ machines

function createMachine(machine) {
  const state = badge("machine", machine.state);
  const band = el("div", { class: "band-box" });
  const kpis = {};
  const kpiBox = el("div", { class: "kpis" });
  for (const [id, key] of [["utilization", "oee.utilization"], ["availability", "oee.availability"],
    ["effectiveness", "oee.effectiveness"], ["quality_ratio", "oee.quality"], ["oee", "oee.oee"]]) {
    const value = el("span", { class: "kpi-value" });
    const meter = el("div", { class: "kpi-bar" }, el("div", { class: "kpi-fill" }));
    kpiBox.append(el("div", { class: `kpi kpi-${id}`, data: { testid: `kpi-${id}` } }, label("span", key, { class: "kpi-label" }), value, meter));
    kpis[id] = { value, fill: meter.firstChild };
  }
  const energy = stat("machine.energy_today");
  const perPart = stat("machine.kwh_per_part");
  const idle = stat("machine.idle_energy");
  const parts = stat("machine.parts");
  const node = el("section", { class: "card machine", data: { testid: "machine", machine: machine.name } },
    el("div", { class: "card-head" }, data("h3", machine.name), state),
    el("div", { class: "band-head" }, label("h4", "machine.timeline")),
    band,
    el("div", { class: "machine-body" }, kpiBox,
      el("div", { class: "stats" }, energy.node, perPart.node, idle.node, parts.node)),
  );
  return {
    node,
    update(m, day0, nowS, tz) {
      setBadge(state, "machine", MACHINE_STATES.includes(m.state) ? m.state : "unknown");
      node.dataset.state = m.state || "unknown";
      clear(band);
      band.append(stateTimeline(band, m.timeline || [], day0, nowS, tz));
      for (const [id, view] of Object.entries(kpis)) {
        const v = m[id];
        setText(view.value, fmtPct(v));
        view.fill.style.width = typeof v === "number" ? `${Math.min(100, Math.max(0, v * 100)).toFixed(1)}%` : "0%";
      }
      setStat(energy, m.energy_today_kwh, "kWh");
      setText(perPart.value, fmtFixed(m.kwh_per_good_part, 3));
      setStat(idle, m.idle_energy_kwh, "kWh");
      setText(parts.value, `${fmtInt(m.parts_good)} / ${fmtInt(m.parts_made)}`);
    },
  };
}
