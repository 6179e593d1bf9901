// Config and service page: version, uptime, the last reload's result with its file:line
// problems, the running config as the agent redacted it (secrets ******), and the recent
// warnings and errors from the agent's in-memory log ring. Refreshed every 10 s.

import { getJSON } from "./api.js";
import { DASH, fmtAge, fmtDateTime, fmtDuration, fmtInt, fmtTimeMs, t } from "./i18n.js";
import { KeyedRows, badge, clear, data, el, label, note, setAttr, setText, table } from "./dom.js";

const POLL_MS = 10000;

export function mount(main, { live }) {
  live.follow(null);
  const refresh = el("button", { type: "button", class: "ghost", i18n: "common.refresh" });
  const problem = el("div");
  const loading = note("common.loading");
  const facts = el("dl", { class: "facts" });
  const cells = {};
  for (const [id, key] of [["version", "config.version"], ["uptime", "config.uptime"], ["started", "config.started"],
    ["file", "config.file"], ["last", "config.reload"], ["applied", "config.applied"], ["refused", "config.refused"]]) {
    cells[id] = data("dd", DASH);
    facts.append(el("div", { class: `fact fact-${id}` }, label("dt", key), cells[id]));
  }
  const problems = el("ul", { class: "problems", data: { testid: "reload-problems" } });
  const problemsHead = label("h4", "config.problems");
  const noProblems = note("config.no_problems");
  const text = el("pre", { class: "config-text", data: { testid: "config-text" } });
  text.setAttribute("translate", "no");
  const log = table([
    { key: "col.when", class: "num", col: "w-time" }, { key: "col.level", col: "w-state" },
    { key: "col.logger", col: "w-source" }, { key: "col.message", col: "w-reason" }, { key: "col.fields" },
  ], { class: "log" });
  const logEmpty = note("config.no_log");
  main.append(
    el("div", { class: "page-head" }, label("h1", "config.title"), refresh),
    problem, loading,
    el("div", { class: "two-col" },
      el("section", { class: "card grow" }, el("div", { class: "card-head" }, label("h2", "config.service")), facts),
      el("section", { class: "card grow" }, el("div", { class: "card-head" }, label("h2", "config.reload")),
        problemsHead, problems, noProblems)),
    el("section", { class: "card" }, el("div", { class: "card-head" }, label("h2", "config.log")),
      el("div", { class: "scroll-x" }, log.table), logEmpty),
    el("section", { class: "card" }, el("div", { class: "card-head" }, label("h2", "config.text")), text),
  );
  const logRows = new KeyedRows(log.body, createLogRow, () => {});
  let stopped = false;

  function render(doc) {
    loading.hidden = true;
    clear(problem);
    setText(cells.version, doc.version || DASH);
    setText(cells.uptime, fmtDuration(doc.uptime_s));
    setText(cells.started, doc.started ? fmtDateTime(doc.started) : DASH);
    setText(cells.file, doc.file || DASH);
    const reload = doc.reload || {};
    setText(cells.last, reload.last ? fmtAge(reload.last) : t("config.reload_never"));
    setAttr(cells.last, "title", reload.last ? fmtDateTime(reload.last) : null);
    setText(cells.applied, fmtInt(reload.applied));
    setText(cells.refused, fmtInt(reload.refused));
    cells.refused.classList.toggle("bad-text", reload.refused > 0);
    const list = reload.problems || [];
    if (list.join("\n") !== [...problems.children].map((li) => li.textContent).join("\n")) {
      clear(problems);
      for (const line of list) problems.append(data("li", line));
    }
    problems.hidden = list.length === 0;
    problemsHead.hidden = list.length === 0;
    noProblems.hidden = list.length > 0;
    const never = !reload.last && !reload.applied && !reload.refused;
    noProblems.dataset.i18n = never ? "config.reload_never" : "config.no_problems";
    setText(noProblems, t(noProblems.dataset.i18n));
    if (text.textContent !== (doc.text || "")) text.textContent = doc.text || "";
    const entries = doc.log || [];
    // Newest first, as the agent sends them.
    logRows.render(entries, (e) => `${e.time}|${e.logger}|${e.event}|${e.fields}`);
    log.table.hidden = entries.length === 0;
    logEmpty.hidden = entries.length > 0;
  }

  async function load() {
    try {
      const doc = await getJSON("/config");
      if (!stopped) render(doc);
    } catch (error) {
      if (stopped) return;
      loading.hidden = true;
      clear(problem);
      problem.append(note("common.error", {
        text: error && error.status ? t("common.request_failed", { status: error.status }) : t("common.network"),
      }, "error"));
    }
  }
  refresh.addEventListener("click", load);
  load();
  const timer = setInterval(load, POLL_MS);
  return {
    destroy() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

function createLogRow(entry) {
  const level = entry.level === "error" ? "error" : "warning";
  const time = el("span", { text: fmtTimeMs(entry.time) });
  time.title = fmtDateTime(entry.time);
  const tr = el("tr", { class: `log-${level}`, data: { testid: "log-row" } },
    el("td", { class: "num" }, time),
    el("td", {}, badge("level", level)),
    el("td", {}, data("code", entry.logger || "", { class: "source" })),
    el("td", {}, data("span", entry.event || "", { class: "strong" })),
    el("td", { class: "reason-cell" }, data("span", entry.fields || "", { class: "reason mono" })),
  );
  return { tr };
}
