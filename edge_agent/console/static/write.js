// Device page: a small write form for each tag the console may write (its write: block lists
// console), shown to a user with the write permission. The value is read like the CLI reads it
// (JSON where it is JSON: 6.5, true, "text"; else the text itself: run), sent with POST
// /console/api/write, and the result document shown: the outcome, why, and the value read back.
// Every rule is the agent's; the form only says what the policy allows. Without the permission
// (a user without writes: true, or the demo's console without users) the card lists the tags
// that are writable and says who may write them, instead of showing nothing.

import { ApiError, can, postJSON, state } from "./api.js";
import { fmtValue, t } from "./i18n.js";
import { clear, data, el, label, note, setAttr, setText } from "./dom.js";

/** The card, and update(doc) to call with every device document (cheap when nothing changed). */
export function writeCard() {
  const list = el("div", { class: "write-forms" });
  const card = el("section", { class: "card write-card", data: { testid: "write-card" } },
    el("div", { class: "card-head" }, label("h2", "write.title")), note("write.hint"), list);
  card.hidden = true;
  let shown = null;

  function update(doc) {
    const tags = (doc.tags || []).filter((tag) => tag.writable && tag.write && tag.write.console);
    const allowed = can("write");
    const key = JSON.stringify([doc.name, allowed, tags.map((tag) => [tag.name, tag.write])]);
    if (key === shown) return;
    shown = key;
    clear(list);
    card.hidden = tags.length === 0;
    if (card.hidden) return;
    if (allowed) for (const tag of tags) list.append(writeForm(doc.name, tag));
    else list.append(lockedNote(tags));
  }

  return { card, update };
}

/** The writable tags without forms, and who may write them. */
function lockedNote(tags) {
  const session = state.session || {};
  const box = el("div", { class: "write-locked", data: { testid: "write-locked" } },
    note("write.locked"));
  if (!session.login_required && !session.authenticated) {
    box.append(el("p", { class: "note note-muted", i18n: "write.no_users", data: { testid: "write-no-users" } }));
  }
  const items = el("ul", { class: "write-locked-tags" });
  for (const tag of tags) {
    items.append(el("li", {},
      data("span", tag.name, { class: "strong" }), " ", data("span", policyText(tag.write), { class: "sub" })));
  }
  box.append(items);
  return box;
}

function writeForm(device, tag) {
  const value = el("input", {
    type: "text", class: "write-value", data: { testid: "write-value" },
    attrs: { "aria-label": t("write.value"), placeholder: t("write.value"), "data-i18n-placeholder": "write.value", autocomplete: "off" },
  });
  const dryRun = el("input", { type: "checkbox", data: { testid: "write-dry-run" } });
  dryRun.checked = true;
  const send = el("button", { type: "submit", i18n: "write.send", data: { testid: "write-send" } });
  const result = el("p", { class: "write-result", data: { testid: "write-result" }, attrs: { "aria-live": "polite" } });
  const form = el("form", { class: "write-form", data: { testid: "write-form", tag: tag.name } },
    el("div", { class: "write-tag" },
      data("span", tag.name, { class: "strong" }), data("span", policyText(tag.write), { class: "sub" })),
    value,
    el("label", { class: "write-dry" }, dryRun, label("span", "write.dry_run")),
    send,
    result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    setAttr(result, "data-outcome", null);
    setText(result, t("write.sending"));
    try {
      const answer = await postJSON("/write", {
        device, tag: tag.name, value: readValue(value.value), dry_run: dryRun.checked,
      });
      showResult(result, answer);
    } catch (error) {
      setAttr(result, "data-outcome", "error");
      setText(result, failure(error));
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

/** "6.5" -> 6.5, "true" -> true, "run" -> "run", "\"7\"" -> "7": as `edge-agent write` reads it. */
function readValue(text) {
  const trimmed = text.trim();
  try {
    const parsed = JSON.parse(trimmed);
    if (["number", "boolean", "string"].includes(typeof parsed)) return parsed;
  } catch {
    // not JSON: the text itself (an enum label)
  }
  return trimmed;
}

function policyText(policy) {
  const parts = [];
  if (policy.min !== null && policy.min !== undefined) parts.push(t("write.min", { n: fmtValue(policy.min) }));
  if (policy.max !== null && policy.max !== undefined) parts.push(t("write.max", { n: fmtValue(policy.max) }));
  if (policy.step) parts.push(t("write.step", { n: fmtValue(policy.step) }));
  if (policy.allowed) parts.push(t("write.allowed", { values: policy.allowed.map(String).join(", ") }));
  return parts.join(" · ");
}

function showResult(node, answer) {
  setAttr(node, "data-outcome", answer.outcome);
  const words = [t(`write.outcome.${answer.outcome}`)];
  if (answer.reason) words.push(answer.reason);
  if (answer.read_back !== null && answer.read_back !== undefined) {
    words.push(t("write.read_back", { value: String(answer.read_back) }));
  }
  setText(node, words.join(" — "));
}

function failure(error) {
  if (error instanceof ApiError) {
    if (error.status === 403) return t("common.permission");
    if (error.body && error.body.reason) return error.body.reason;
    return t("common.request_failed", { status: error.status });
  }
  return t("common.network");
}
