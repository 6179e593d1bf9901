// Drawing: the plant page's sparklines (a small canvas), a tag's history (uPlot), the day's
// 15-minute demand bars and a machine's state band (SVG built node by node, sized in pixels to
// its box so labels stay legible on a tablet).

import { fmtClock, fmtFixed, fmtTime, fmtValue, t } from "./i18n.js";
import { svg } from "./dom.js";

// ------------------------------------------------------------------ sparkline

/** Draw points ([[t_s, v|null]]) as a line on canvas; gaps where a value was not good. */
export function drawSparkline(canvas, points) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 120;
  const height = canvas.clientHeight || 28;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const values = (points || []).filter((p) => typeof p[1] === "number" && Number.isFinite(p[1]));
  if (values.length < 2) {
    ctx.strokeStyle = "#c5cbd3";
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(0, height / 2);
    ctx.lineTo(width, height / 2);
    ctx.stroke();
    ctx.setLineDash([]);
    return;
  }
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  let low = Infinity;
  let high = -Infinity;
  for (const [, v] of values) {
    if (v < low) low = v;
    if (v > high) high = v;
  }
  if (high === low) {
    high += 1;
    low -= 1;
  }
  const pad = 3;
  const x = (time) => (t1 === t0 ? width : ((time - t0) / (t1 - t0)) * (width - 2) + 1);
  const y = (v) => height - pad - ((v - low) / (high - low)) * (height - 2 * pad);
  ctx.lineWidth = 1.25;
  ctx.strokeStyle = "#1f6feb";
  ctx.beginPath();
  let drawing = false;
  for (const [time, v] of points) {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      drawing = false;
      continue;
    }
    if (drawing) ctx.lineTo(x(time), y(v));
    else ctx.moveTo(x(time), y(v));
    drawing = true;
  }
  ctx.stroke();
  const [lastT, lastV] = values[values.length - 1];
  ctx.fillStyle = "#1f6feb";
  ctx.beginPath();
  ctx.arc(x(lastT), y(lastV), 2, 0, Math.PI * 2);
  ctx.fill();
}

// ------------------------------------------------------------------ history chart (uPlot)

/** A uPlot line chart of points in box; returns {setPoints, destroy}. Null when uPlot is absent. */
export function historyChart(box, points, unit, tagName) {
  const UPlot = window.uPlot;
  if (!UPlot) {
    console.error("uPlot did not load");
    return null;
  }
  const width = () => Math.max(280, box.clientWidth - 2);
  const opts = {
    width: width(),
    height: 240,
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true } },
    legend: { show: true, live: true },
    series: [
      { label: t("col.when"), value: (u, v) => (v === null || v === undefined ? "" : fmtTime(v)) },
      {
        label: tagName,
        stroke: "#1f6feb",
        width: 1.5,
        fill: "rgba(31, 111, 235, 0.08)",
        spanGaps: false,
        points: { show: false },
        value: (u, v) => (v === null || v === undefined ? "–" : `${fmtValue(v)}${unit ? ` ${unit}` : ""}`),
      },
    ],
    axes: [
      {
        stroke: "#57606a",
        grid: { stroke: "#eef1f4", width: 1 },
        ticks: { stroke: "#d0d7de", width: 1 },
        values: (u, splits) => splits.map((s) => fmtTime(s)),
        space: 70,
      },
      {
        stroke: "#57606a",
        grid: { stroke: "#eef1f4", width: 1 },
        ticks: { stroke: "#d0d7de", width: 1 },
        values: (u, splits) => splits.map((s) => fmtValue(s)),
        size: 64,
        label: unit || "",
        labelSize: unit ? 18 : 0,
      },
    ],
  };
  const chart = new UPlot(opts, toColumns(points), box);
  for (const canvas of box.querySelectorAll("canvas")) canvas.dataset.testid = "tag-chart";
  // The series label is the tag's name: data, not a label to translate.
  for (const name of box.querySelectorAll(".u-series:not(:first-child) .u-label")) name.setAttribute("translate", "no");
  const observer = new ResizeObserver(() => {
    const w = width();
    if (Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: 240 });
  });
  observer.observe(box);
  return {
    setPoints(next) {
      chart.setData(toColumns(next));
    },
    destroy() {
      observer.disconnect();
      chart.destroy();
    },
  };
}

function toColumns(points) {
  const xs = [];
  const ys = [];
  for (const [time, v] of points || []) {
    xs.push(time);
    ys.push(typeof v === "number" && Number.isFinite(v) ? v : null);
  }
  return [xs, ys];
}

// ------------------------------------------------------------------ the plant's local day

/** Unix seconds of the last local midnight in timeZone (an IANA name) before now_s. */
export function localDayStart(nowS, timeZone) {
  let parts;
  try {
    parts = new Intl.DateTimeFormat("en-US", {
      timeZone: timeZone || undefined,
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    }).formatToParts(new Date(nowS * 1000));
  } catch {
    parts = new Intl.DateTimeFormat("en-US", {
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(nowS * 1000));
  }
  const get = (type) => Number((parts.find((p) => p.type === type) || { value: 0 }).value);
  const since = get("hour") * 3600 + get("minute") * 60 + get("second") + (nowS % 1);
  return nowS - since;
}

function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

/** Hours between labels on a day axis of width px: every label about 60 px or more apart. */
function hourStep(width) {
  return width < 480 ? 6 : width < 820 ? 3 : 2;
}

function hourTicks(group, day0, x, top, height, every) {
  for (let h = 0; h <= 24; h += every) {
    const px = x(day0 + h * 3600);
    group.append(svg("line", { x1: px, x2: px, y1: top, y2: top + height, class: "tick" }));
    const anchor = h === 0 ? "start" : h === 24 ? "end" : "middle";
    const text = svg("text", { x: px, y: top + height + 13, "text-anchor": anchor, class: "axis-label" });
    text.textContent = `${String(h).padStart(2, "0")}:00`;
    group.append(text);
  }
}

// ------------------------------------------------------------------ demand bars

/**
 * The day's closed 15-minute blocks as bars over 00:00-24:00 of the plant's day, the peak block
 * marked; meter: the /energy meter document.
 */
export function demandBars(box, meter, day0, nowS, timeZone) {
  const width = Math.max(300, box.clientWidth);
  const height = 170;
  const left = 44;
  const right = 8;
  const top = 18;
  const plotH = height - top - 22;
  const plotW = width - left - right;
  const blocks = meter.blocks || [];
  let max = 0;
  for (const b of blocks) if (typeof b.demand_kw === "number" && b.demand_kw > max) max = b.demand_kw;
  if (typeof meter.peak_demand_kw === "number" && meter.peak_demand_kw > max) max = meter.peak_demand_kw;
  const step = niceStep(max || 1, 4);
  const top_kw = Math.max(step, Math.ceil((max || 1) / step) * step);
  const x = (s) => left + ((s - day0) / 86400) * plotW;
  const y = (kw) => top + plotH - (kw / top_kw) * plotH;
  const root = svg("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, class: "chart demand-chart", role: "img",
    "data-testid": "demand-bars",
  });
  const title = svg("title");
  title.textContent = t("energy.bars");
  root.append(title);
  const grid = svg("g", { class: "grid-lines" });
  for (let kw = 0; kw <= top_kw + 1e-9; kw += step) {
    grid.append(svg("line", { x1: left, x2: left + plotW, y1: y(kw), y2: y(kw), class: kw === 0 ? "baseline" : "gridline" }));
    const label = svg("text", { x: left - 6, y: y(kw) + 4, "text-anchor": "end", class: "axis-label" });
    label.textContent = fmtFixed(kw, step < 1 ? 1 : 0);
    grid.append(label);
  }
  root.append(grid);
  const axis = svg("g");
  hourTicks(axis, day0, x, top + plotH, 4, hourStep(plotW));
  root.append(axis);
  root.append(svg("rect", {
    x: x(Math.min(nowS, day0 + 86400)), y: top, width: Math.max(0, left + plotW - x(Math.min(nowS, day0 + 86400))),
    height: plotH, class: "future",
  }));
  const bars = svg("g", { class: "dbars" });
  const peakAt = meter.peak_demand_at_s;
  let peakBar = null;
  for (const b of blocks) {
    if (typeof b.demand_kw !== "number") continue;
    const isPeak = typeof peakAt === "number" && Math.abs(b.start_s - peakAt) < 1;
    const x0 = x(b.start_s);
    const w = Math.max(1, x(b.end_s) - x0 - (plotW > 600 ? 1 : 0.5));
    const rect = svg("rect", {
      x: x0, y: y(b.demand_kw), width: w, height: Math.max(0, y(0) - y(b.demand_kw)),
      class: `dbar dbar-${b.quality || "good"}${isPeak ? " dbar-peak" : ""}`,
      "data-start": b.start_s,
    });
    const tip = svg("title");
    tip.textContent = t("energy.block_title", {
      start: fmtClock(b.start_s, timeZone), end: fmtClock(b.end_s, timeZone), kw: fmtFixed(b.demand_kw, 1),
    });
    rect.append(tip);
    bars.append(rect);
    if (isPeak) peakBar = { x: x0 + w / 2, y: y(b.demand_kw) };
  }
  root.append(bars);
  if (peakBar) {
    const g = svg("g", { class: "peak-mark", "data-testid": "demand-peak" });
    g.append(svg("line", { x1: left, x2: left + plotW, y1: peakBar.y, y2: peakBar.y, class: "peak-line" }));
    const text = svg("text", {
      x: Math.min(Math.max(peakBar.x, left + 40), left + plotW - 40), y: Math.max(12, peakBar.y - 5),
      "text-anchor": "middle", class: "peak-label",
    });
    text.textContent = `${t("energy.peak_marker")} ${fmtFixed(meter.peak_demand_kw, 1)} kW · ${fmtClock(peakAt, timeZone)}`;
    g.append(text);
    root.append(g);
  }
  return root;
}

// ------------------------------------------------------------------ state timeline

let patternSeq = 0;

/** A machine's states today as a coloured band: run, idle, off, fault, unknown (hatched). */
export function stateTimeline(box, timeline, day0, nowS, timeZone) {
  const width = Math.max(300, box.clientWidth);
  const height = 50;
  const left = 4;
  const right = 4;
  const top = 4;
  const bandH = 26;
  const plotW = width - left - right;
  const x = (s) => left + ((Math.min(Math.max(s, day0), day0 + 86400) - day0) / 86400) * plotW;
  patternSeq += 1;
  const hatch = `hatch-${patternSeq}`;
  const root = svg("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, class: "chart timeline-chart", role: "img",
    "data-testid": "state-timeline",
  });
  const title = svg("title");
  title.textContent = t("machine.timeline");
  root.append(title);
  const defs = svg("defs");
  const pattern = svg("pattern", { id: hatch, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
  pattern.append(svg("rect", { width: 6, height: 6, class: "hatch-bg" }));
  pattern.append(svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "hatch-line" }));
  defs.append(pattern);
  root.append(defs);
  root.append(svg("rect", { x: left, y: top, width: plotW, height: bandH, class: "band-empty" }));
  for (const seg of timeline || []) {
    const x0 = x(seg.start_s);
    const x1 = x(seg.end_s);
    if (x1 <= x0) continue;
    const state = ["run", "idle", "off", "fault", "unknown"].includes(seg.state) ? seg.state : "unknown";
    const rect = svg("rect", {
      x: x0, y: top, width: x1 - x0, height: bandH, class: `seg seg-${state}`, "data-state": state,
    });
    if (state === "unknown") rect.setAttribute("fill", `url(#${hatch})`);
    const tip = svg("title");
    tip.textContent = `${t(`machine.${state}`)} ${fmtClock(seg.start_s, timeZone)}–${fmtClock(seg.end_s, timeZone)}`;
    rect.append(tip);
    root.append(rect);
  }
  if (nowS < day0 + 86400) {
    const px = x(nowS);
    root.append(svg("line", { x1: px, x2: px, y1: top - 3, y2: top + bandH + 3, class: "now-line" }));
  }
  const axis = svg("g");
  hourTicks(axis, day0, x, top + bandH, 4, hourStep(plotW));
  root.append(axis);
  return root;
}
