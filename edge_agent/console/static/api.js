// The console's JSON API (docs/CONSOLE.md, "API"): the session, GETs, POSTs with the CSRF token,
// and the one rule for a lost login: any 401 sends the browser to the login page.

export const BASE = "/console/api";
export const LOGIN_PAGE = "/console/login";

export const state = { session: null };

export class ApiError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function toLogin() {
  try {
    sessionStorage.setItem("edge_next", location.hash || "");
  } catch {
    // storage may be off; the login page then opens the plant page
  }
  location.assign(LOGIN_PAGE);
}

export async function loadSession() {
  const response = await fetch(`${BASE}/session`, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, await body(response));
  state.session = await response.json();
  return state.session;
}

async function body(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

async function answer(response) {
  if (response.status === 401) {
    toLogin();
    throw new ApiError(401, await body(response));
  }
  if (!response.ok) throw new ApiError(response.status, await body(response));
  return response.json();
}

export async function getJSON(path) {
  const response = await fetch(`${BASE}${path}`, {
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json" },
  });
  return answer(response);
}

function post(path, payload) {
  return fetch(`${BASE}${path}`, {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRF-Token": (state.session && state.session.csrf) || "",
    },
    body: JSON.stringify(payload || {}),
  });
}

/** POST JSON with the session's CSRF token; a stale token (403 csrf) is renewed once. */
export async function postJSON(path, payload) {
  let response = await post(path, payload);
  if (response.status === 403) {
    const refused = await body(response);
    if (refused.error !== "csrf") throw new ApiError(403, refused);
    await loadSession();
    response = await post(path, payload);
  }
  return answer(response);
}

export function can(permission) {
  const session = state.session;
  return Boolean(session && session.permissions && session.permissions.includes(permission));
}
