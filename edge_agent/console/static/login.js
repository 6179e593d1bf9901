// The sign-in page: POST /console/api/login with the session's CSRF token, then back to the
// console page the user was sent away from.

import { BASE, loadSession, state } from "./api.js";
import { applyI18n, getLang, setLang, t } from "./i18n.js";
import { bindLangSwitch } from "./lang.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

function next() {
  let hash = "";
  try {
    hash = sessionStorage.getItem("edge_next") || "";
    sessionStorage.removeItem("edge_next");
  } catch {
    hash = "";
  }
  return `/console/${hash.startsWith("#/") ? hash : ""}`;
}

function show(key, params) {
  error.textContent = t(key, params);
  error.hidden = false;
}

function render() {
  applyI18n(document);
  document.title = t("login.title");
}

async function signIn(event) {
  event.preventDefault();
  error.hidden = true;
  const user = form.elements.user.value.trim();
  const password = form.elements.password.value;
  if (!user || !password) {
    show("login.failed");
    return;
  }
  submit.disabled = true;
  try {
    let response;
    for (let attempt = 0; attempt < 2; attempt += 1) {
      response = await fetch(`${BASE}/login`, {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": state.session ? state.session.csrf : "" },
        body: JSON.stringify({ user, password }),
      });
      if (response.status !== 403) break;
      await loadSession(); // the CSRF token was stale (an old tab): once more with a fresh one
    }
    let answer = {};
    try {
      answer = await response.json();
    } catch {
      answer = {};
    }
    if (response.ok) {
      location.assign(next());
      return;
    }
    if (response.status === 401) show("login.failed");
    else if (response.status === 429) show("login.rate", { s: Math.ceil(Number(answer.retry_after) || 60) });
    else show("login.error", { status: response.status });
    form.elements.password.value = "";
    form.elements.password.focus();
  } catch {
    show("common.network");
  } finally {
    submit.disabled = false;
  }
}

async function start() {
  try {
    const session = await loadSession();
    if (session.authenticated && !session.login_required) {
      location.assign("/console/");
      return;
    }
    if (session.authenticated) {
      location.assign(next());
      return;
    }
    setLang(session.lang);
    document.getElementById("login-plant").textContent = session.plant || "";
  } catch {
    show("common.network");
  }
  render();
  form.addEventListener("submit", signIn);
  bindLangSwitch(() => {
    render();
    if (!error.hidden) error.hidden = true;
  });
  form.elements.user.focus();
  document.body.dataset.lang = getLang();
}

start();
