// The console's single page: the header (plant, health, live state, language, user), the router
// on location.hash (#/plant, #/device/<name>, #/energy, #/commissioning, #/config) and the live
// feed the pages share.

import { can, loadSession, postJSON, state, toLogin } from "./api.js";
import { applyI18n, fmtTime, setLang, t } from "./i18n.js";
import { bindLangSwitch } from "./lang.js";
import { Live } from "./live.js";
import { clear, note } from "./dom.js";
import * as plantPage from "./plant.js";
import * as devicePage from "./device.js";
import * as energyPage from "./energy.js";
import * as commissioningPage from "./commissioning.js";
import * as configPage from "./config.js";

const pages = {
  plant: plantPage,
  device: devicePage,
  energy: energyPage,
  commissioning: commissioningPage,
  config: configPage,
};

const main = document.getElementById("main");
const live = new Live();
let current = null;

function parseHash() {
  const parts = (location.hash || "").replace(/^#\/?/, "").split("/");
  const name = parts[0] || "plant";
  let param = null;
  if (parts.length > 1 && parts[1] !== "") {
    try {
      param = decodeURIComponent(parts.slice(1).join("/"));
    } catch {
      param = null;
    }
  }
  return { name, param };
}

function route() {
  if (current && current.page.destroy) current.page.destroy();
  current = null;
  clear(main);
  window.scrollTo(0, 0);
  const { name, param } = parseHash();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.route === name);
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const module = pages[name];
  if (!module) {
    main.append(note("common.unknown_page", null, "error"));
    return;
  }
  if (name === "commissioning" && !commissioningAllowed()) {
    main.append(note(state.session.commissioning ? "common.permission" : "com.off", null, "error"));
    return;
  }
  main.dataset.page = name;
  current = { name, param, page: module.mount(main, { live, param }) || {} };
}

function commissioningAllowed() {
  return Boolean(state.session && state.session.commissioning && can("commission"));
}

function renderHeader() {
  const session = state.session;
  applyI18n(document);
  document.title = `${t("app.title")} · ${session.plant || ""}`;
  document.getElementById("plant-name").textContent = (live.plant && live.plant.plant) || session.plant || "";
  document.querySelector('#nav a[data-route="commissioning"]').hidden = !commissioningAllowed();
  const user = document.getElementById("user");
  user.hidden = !session.user;
  document.getElementById("user-name").textContent = session.user || "";
  renderLive();
  renderHealth(live.plant);
}

function renderLive() {
  const box = document.getElementById("live");
  const text = document.getElementById("live-text");
  const key = { stream: "live.stream", polling: "live.polling", down: "live.down" }[live.mode];
  box.dataset.mode = live.mode;
  text.dataset.i18n = key;
  text.textContent = t(key);
  box.title = live.updated ? t("live.updated", { time: fmtTime(live.updated.getTime() / 1000) }) : "";
}

function renderHealth(plant) {
  const health = document.getElementById("health");
  if (!plant) {
    health.hidden = true;
    return;
  }
  health.hidden = false;
  // /healthz's verdict waits (device_offline_after, 5 min by default) before it calls a
  // device a problem; the people at the plant want to see one that is not online now.
  const down = (plant.devices || []).filter((d) => d.state !== "online").length;
  const key = !plant.healthy ? "plant.unhealthy" : down ? "plant.some_down" : "plant.healthy";
  health.className = `health ${!plant.healthy ? "health-bad" : down ? "health-warn" : "health-ok"}`;
  health.dataset.i18n = key;
  health.textContent = t(key, { count: down });
  health.title = (plant.reasons || []).join("\n");
  const name = document.getElementById("plant-name");
  if (plant.plant && name.textContent !== plant.plant) name.textContent = plant.plant;
}

async function logout() {
  try {
    await postJSON("/logout", {});
  } catch {
    // the session is gone either way
  }
  if (state.session.login_required) toLogin();
  else location.reload();
}

async function start() {
  let session;
  try {
    session = await loadSession();
  } catch {
    clear(main);
    main.append(note("common.network", null, "error"));
    return;
  }
  if (session.login_required && !session.authenticated) {
    toLogin();
    return;
  }
  setLang(session.lang);
  document.body.dataset.lang = session.lang === "zh" ? "zh" : "en";
  live.on("status", renderLive);
  live.on("plant", renderHealth);
  document.getElementById("logout").addEventListener("click", logout);
  bindLangSwitch(() => {
    renderHeader();
    route();
  });
  window.addEventListener("hashchange", route);
  renderHeader();
  live.follow(null);
  route();
}

start();
