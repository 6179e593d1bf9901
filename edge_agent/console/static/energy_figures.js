// The energy page's energy-management parts (issue 16): per meter the cost by time-of-use period
// (today and the running or last shift) and the demand guard; the plant's events, its other energy
// carriers and its savings against baselines. The numbers are the agent's (GET /energy, built by
// edge_agent/console/energy_figures.py), shown as they come: nothing is recomputed here.
// The events table is also the plant page's list of events running now.

import { DASH, dictionaries, fmtClock, fmtDateTime, fmtFigure, fmtFixed, fmtInt, fmtPct, getLang, t } from "./i18n.js";
import { KeyedRows, badge, data, el, label, note, sentence, setBadge, setText, table } from "./dom.js";

/** The label of key if the dictionary has one, else the agent's own word as data. */
function named(prefix, value) {
  const key = `${prefix}.${value}`;
  return key in dictionaries[getLang()] ? el("span", { i18n: key }) : data("span", value || DASH);
}

function setNamed(box, prefix, value) {
  if (box.dataset.shown === `${getLang()}|${value}`) return;
  box.dataset.shown = `${getLang()}|${value}`;
  box.replaceChildren(named(prefix, value));
}

function stat(key, testid) {
  const value = el("span", { class: "stat-value" });
  const unit = el("span", { class: "stat-unit" });
  const sub = el("span", { class: "stat-sub" });
  const node = el("div", { class: "stat", data: { testid } }, label("span", key, { class: "stat-label" }), el("span", {}, value, unit), sub);
  return { node, value, unit, sub };
}

function setStat(view, text, unit, known) {
  setText(view.value, text);
  setText(view.unit, known ? ` ${unit}` : "");
}

// ------------------------------------------------------------------ meters: cost by period

/** The figures of a running shift, else of the last one today (shifts come oldest first). */
function currentShift(shifts) {
  const list = (shifts || []).filter((s) => s.tariff);
  return list.find((s) => s.open) || list[list.length - 1] || null;
}

export function createCost() {
  const cost = stat("energy.cost_today", "cost-today");
  // The currency and the tariff's name are the plant file's words, not labels.
  cost.unit.setAttribute("translate", "no");
  cost.sub.setAttribute("translate", "no");
  const share = stat("energy.peak_share", "peak-share");
  const heading = el("h4");
  const periods = table([
    { key: "col.period", col: "w-name" }, { key: "col.price", class: "num", col: "w-num" },
    { key: "col.kwh_today", class: "num", col: "w-num" }, { key: "col.cost_today", class: "num", col: "w-num" },
    { key: "col.kwh_shift", class: "num", col: "w-num" }, { key: "col.cost_shift", class: "num", col: "w-num" },
  ], { class: "periods compact" });
  const foot = el("tr", { class: "total" });
  const footCells = { today: el("span"), shift: el("span") };
  foot.append(el("td", { i18n: "energy.total" }), el("td"), el("td"), el("td", { class: "num" }, footCells.today),
    el("td"), el("td", { class: "num" }, footCells.shift));
  periods.table.append(el("tfoot", {}, foot));
  const rows = new KeyedRows(periods.body, createPeriodRow, () => {});
  const box = el("div", { class: "cost-box", data: { testid: "cost" } }, heading, el("div", { class: "scroll-x" }, periods.table));
  return {
    stats: [cost.node, share.node],
    node: box,
    update(m, tz) {
      const tariff = m.tariff;
      box.hidden = !tariff;
      const today = tariff ? tariff.today : null;
      const currency = today ? today.currency : "";
      setStat(cost, fmtFixed(today ? today.cost : null, 2), currency, today && typeof today.cost === "number");
      setText(cost.sub, tariff && tariff.name ? tariff.name : "");
      setStat(share, fmtPct(today ? today.peak_share : null), "", false);
      cost.node.hidden = !tariff;
      share.node.hidden = !tariff;
      if (!today) return;
      const shift = currentShift(m.shifts);
      const shiftPeriods = new Map(((shift && shift.tariff && shift.tariff.periods) || []).map((p) => [p.period, p]));
      const key = shift ? (shift.open ? "energy.cost_heading_running" : "energy.cost_heading_last") : "energy.cost_heading";
      const shown = `${key}|${shift ? shift.name : ""}|${currency}`;
      if (heading.dataset.shown !== shown) {
        heading.dataset.shown = shown;
        sentence(heading, key, { shift: shift ? shift.name : "", currency });
      }
      rows.render(today.periods, (p) => p.period);
      for (const p of today.periods) {
        const row = rows.rows.get(p.period);
        const s = shiftPeriods.get(p.period);
        setText(row.price, fmtFixed(p.price, 4));
        setText(row.kwh, fmtFigure(p.kwh));
        setText(row.cost, fmtFixed(p.cost, 2));
        setText(row.shiftKwh, fmtFigure(s ? s.kwh : null));
        setText(row.shiftCost, fmtFixed(s ? s.cost : null, 2));
      }
      setText(footCells.today, fmtFixed(today.cost, 2));
      setText(footCells.shift, fmtFixed(shift && shift.tariff ? shift.tariff.cost : null, 2));
    },
  };
}

function createPeriodRow(p) {
  const cells = { price: el("span"), kwh: el("span"), cost: el("span"), shiftKwh: el("span"), shiftCost: el("span") };
  const tr = el("tr", { data: { testid: "period-row", period: p.period } },
    el("td", {}, el("span", { class: `swatch period-${p.period}` }), " ", named("period", p.period)),
    el("td", { class: "num" }, cells.price), el("td", { class: "num" }, cells.kwh), el("td", { class: "num" }, cells.cost),
    el("td", { class: "num" }, cells.shiftKwh), el("td", { class: "num" }, cells.shiftCost));
  return { tr, ...cells };
}

// ------------------------------------------------------------------ meters: demand guard

export function createGuard() {
  const state = el("span");
  const predicted = stat("energy.guard_predicted", "guard-predicted");
  const shed = stat("energy.guard_shed", "guard-shed");
  const left = stat("energy.guard_left", "guard-left");
  const node = el("div", { class: "guard", data: { testid: "guard" } },
    el("div", { class: "guard-head" }, label("h4", "energy.guard"), state),
    el("div", { class: "stats" }, predicted.node, shed.node, left.node));
  return {
    node,
    update(m, tz) {
      const g = m.guard;
      node.hidden = !g;
      if (!g) return;
      node.classList.toggle("over", Boolean(g.active));
      setBadge(state, "guard", g.active ? "over" : typeof g.predicted_kw === "number" ? "within" : "waiting");
      setStat(predicted, fmtFigure(g.predicted_kw), "kW", typeof g.predicted_kw === "number");
      setText(predicted.sub, t(`energy.guard_limit_${g.kind === "contracted" ? "contracted" : "target"}`, { kw: fmtFigure(g.limit_kw) }));
      setStat(shed, fmtFigure(g.shed_kw), "kW", typeof g.shed_kw === "number");
      setText(shed.sub, g.active && typeof g.active_since_s === "number" ? t("energy.guard_since", { time: fmtClock(g.active_since_s, tz) }) : "");
      setStat(left, fmtFixed(g.minutes_left, 1), "min", typeof g.minutes_left === "number");
      setText(left.sub, typeof g.block_end_s === "number" ? t("energy.guard_block_end", { time: fmtClock(g.block_end_s, tz) }) : "");
    },
  };
}

/** The month's peak beside the day's: a stat of the meter card (every meter, guarded or not). */
export function updateMonthPeak(view, m, tz) {
  setStat(view, fmtFigure(m.month_peak_kw), "kW", typeof m.month_peak_kw === "number");
  setText(view.sub, typeof m.month_peak_at_s === "number" ? t("energy.peak_on", { time: fmtDateTime(m.month_peak_at_s, tz).slice(0, 16) }) : "");
}

export function monthPeakStat() {
  return stat("energy.month_peak", "month-peak");
}

// ------------------------------------------------------------------ events

const EVENT_COLUMNS = [
  { key: "col.severity", col: "w-state" }, { key: "col.event", col: "w-name" }, { key: "col.device", col: "w-name" },
  { key: "col.start", class: "num", col: "w-clock" }, { key: "col.end", class: "num", col: "w-clock" },
  { key: "col.reason", col: "w-reason" },
];

/** A table of events (today's, or those running now on the plant page). */
export function eventsTable(emptyKey) {
  const grid = table(EVENT_COLUMNS, { class: "events" });
  const empty = note(emptyKey);
  let zone;
  const rows = new KeyedRows(grid.body, createEventRow, (row, e) => updateEventRow(row, e, zone));
  const node = el("div", { data: { testid: "events" } }, el("div", { class: "scroll-x" }, grid.table), empty);
  return {
    node,
    update(list, tz) {
      zone = tz;
      rows.render(list || [], (e) => `${e.event}|${e.device}|${e.start_s}`);
      empty.hidden = (list || []).length > 0;
      grid.table.hidden = (list || []).length === 0;
    },
  };
}

function createEventRow(e) {
  const cells = { severity: badge("severity", e.severity), type: el("span"), start: el("span"), end: el("span"), reason: data("span", "") };
  const tr = el("tr", { data: { testid: "event-row", event: e.event } },
    el("td", {}, cells.severity), el("td", {}, cells.type), el("td", {}, data("span", e.device, { class: "strong" })),
    el("td", { class: "num" }, cells.start), el("td", { class: "num" }, cells.end), el("td", { class: "event-reason" }, cells.reason));
  return { tr, ...cells };
}

function updateEventRow(row, e, tz) {
  setBadge(row.severity, "severity", e.severity);
  setNamed(row.type, "eventtype", e.event);
  setText(row.start, fmtClock(e.start_s, tz));
  if (e.active) {
    row.end.dataset.i18n = "energy.event_active";
    setText(row.end, t("energy.event_active"));
  } else {
    delete row.end.dataset.i18n;
    setText(row.end, fmtClock(e.end_s, tz));
  }
  row.tr.classList.toggle("active", Boolean(e.active));
  setText(row.reason, e.reason || "");
}

// ------------------------------------------------------------------ other carriers

export function carriersTable() {
  const grid = table([
    { key: "col.meter", col: "w-name" }, { key: "col.carrier", col: "w-name" },
    { key: "col.amount_today", class: "num", col: "w-num" }, { key: "col.kgce", class: "num", col: "w-num" },
    { key: "col.kgco2e", class: "num", col: "w-num" },
  ], { class: "carriers" });
  const rows = new KeyedRows(grid.body, (c) => {
    const cells = { carrier: el("span"), amount: el("span"), unit: data("span", "", { class: "stat-unit" }), kgce: el("span"), kgco2e: el("span") };
    const tr = el("tr", { data: { testid: "carrier-row", carrier: c.name } },
      el("td", {}, data("span", c.name, { class: "strong" })), el("td", {}, cells.carrier),
      el("td", { class: "num" }, cells.amount, " ", cells.unit), el("td", { class: "num" }, cells.kgce), el("td", { class: "num" }, cells.kgco2e));
    return { tr, ...cells };
  }, (row, c) => {
    setNamed(row.carrier, "carrier", c.carrier);
    setText(row.amount, fmtFigure(c.amount));
    setText(row.unit, typeof c.amount === "number" ? c.unit : "");
    setText(row.kgce, fmtFigure(c.kgce));
    setText(row.kgco2e, fmtFigure(c.kgco2e));
  });
  return {
    node: el("div", { class: "scroll-x" }, grid.table),
    update(list) {
      rows.render(list || [], (c) => c.name);
      grid.table.hidden = (list || []).length === 0;
    },
  };
}

// ------------------------------------------------------------------ savings

export function savingsTable() {
  const grid = table([
    { key: "col.baseline", col: "w-name" }, { key: "col.fit", col: "w-reason" },
    { key: "col.avoided_kwh_today", class: "num", col: "w-num" }, { key: "col.avoided_kgce_today", class: "num", col: "w-num" },
    { key: "col.avoided_kgco2e_today", class: "num", col: "w-num" }, { key: "col.cumulative_kwh", class: "num", col: "w-num" },
    { key: "col.cumulative_kgce", class: "num", col: "w-num" }, { key: "col.kwh_per_part", class: "num", col: "w-num" },
    { key: "col.kwh_per_hour", class: "num", col: "w-num" },
  ], { class: "savings" });
  const rows = new KeyedRows(grid.body, (s) => {
    const cells = {
      valid: el("span"), fit: el("span", { class: "meta" }), reason: data("div", "", { class: "meta" }),
      kwh: el("span"), kgce: el("span"), kgco2e: el("span"), cumKwh: el("span"), cumKgce: el("span"),
      perPart: el("span"), perHour: el("span"), windows: el("div", { class: "meta" }),
    };
    const tr = el("tr", { data: { testid: "savings-row", baseline: s.name } },
      el("td", {}, data("span", s.name, { class: "strong" }), cells.windows),
      el("td", {}, cells.valid, " ", cells.fit, cells.reason),
      el("td", { class: "num" }, cells.kwh), el("td", { class: "num" }, cells.kgce), el("td", { class: "num" }, cells.kgco2e),
      el("td", { class: "num" }, cells.cumKwh), el("td", { class: "num" }, cells.cumKgce),
      el("td", { class: "num" }, cells.perPart), el("td", { class: "num" }, cells.perHour));
    return { tr, ...cells };
  }, (row, s) => {
    const fit = s.fit;
    setBadge(row.valid, "fit", !fit ? "none" : fit.valid ? "valid" : "invalid");
    setText(row.fit, fit ? t("energy.fit_figures", { r2: fmtFixed(fit.r2, 3), cv: fmtPct(fit.cv_rmse), n: fmtInt(fit.n) }) : "");
    setText(row.reason, s.reason || "");
    row.reason.hidden = !s.reason;
    const today = s.today || {};
    setText(row.kwh, fmtFigure(today.avoided_kwh));
    setText(row.kgce, fmtFigure(today.avoided_kgce));
    setText(row.kgco2e, fmtFigure(today.avoided_kgco2e));
    setText(row.windows, t("energy.savings_windows", { counted: fmtInt(today.counted), windows: fmtInt(today.windows), window: s.window }));
    setText(row.cumKwh, fmtFigure(s.cumulative_avoided_kwh));
    setText(row.cumKgce, fmtFigure(s.cumulative_avoided_kgce));
    const last = s.last || {};
    setText(row.perPart, fmtFixed(last.kwh_per_good_part, 3));
    setText(row.perHour, fmtFigure(last.kwh_per_operating_hour));
  });
  return {
    node: el("div", { class: "scroll-x" }, grid.table),
    update(list) {
      rows.render(list || [], (s) => s.name);
      grid.table.hidden = (list || []).length === 0;
    },
  };
}
