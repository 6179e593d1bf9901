// Live documents: one EventSource on /console/api/stream (events "plant" and, for the device
// page, "device"), and polling of the GET APIs every 2 s while the stream is down. The stream
// is tried again every 20 s; the first event it delivers stops the polling.

import { BASE, getJSON, loadSession, toLogin } from "./api.js";

const POLL_MS = 2000;
const RETRY_MS = 20000;
const RECONNECT_GRACE_MS = 5000;

export class Live {
  constructor() {
    this.device = null;
    this.source = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.mode = "down";
    this.messages = 0;
    this.plant = null;
    this.updated = null;
    this.listeners = { plant: new Set(), device: new Set(), status: new Set() };
  }

  on(kind, listener) {
    this.listeners[kind].add(listener);
    return () => this.listeners[kind].delete(listener);
  }

  emit(kind, value) {
    for (const listener of [...this.listeners[kind]]) {
      try {
        listener(value);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** Follow the plant, and this device too when name is given (null: the plant only). */
  follow(name) {
    if (this.source && this.device === name) return;
    this.device = name || null;
    this.open();
  }

  open() {
    this.closeStream();
    const query = this.device ? `?device=${encodeURIComponent(this.device)}` : "";
    let source;
    try {
      source = new EventSource(`${BASE}/stream${query}`);
    } catch {
      this.fallBack();
      return;
    }
    this.source = source;
    source.addEventListener("plant", (event) => this.received("plant", event.data, source));
    source.addEventListener("device", (event) => this.received("device", event.data, source));
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      // The agent ends a stream after a while and the browser reconnects by itself
      // (CONNECTING): give that a moment. A refused stream (401, 404, 503) is CLOSED.
      if (source.readyState === EventSource.CLOSED) {
        this.fallBack();
        return;
      }
      const seen = this.messages;
      setTimeout(() => {
        if (this.source === source && this.messages === seen) this.fallBack();
      }, RECONNECT_GRACE_MS);
    });
  }

  received(kind, text, source) {
    if (this.source !== source) return;
    let doc;
    try {
      doc = JSON.parse(text);
    } catch {
      return;
    }
    this.messages += 1;
    this.stopPolling();
    this.setMode("stream");
    this.deliver(kind, doc);
  }

  deliver(kind, doc) {
    if (kind === "plant") this.plant = doc;
    if (kind === "device" && doc.name !== this.device) return; // a late event of the last page
    this.updated = new Date();
    this.emit(kind, doc);
    this.emit("status", this.mode);
  }

  async fallBack() {
    this.closeStream();
    // An EventSource does not say why it failed: ask whether the login is gone.
    try {
      const session = await loadSession();
      if (session.login_required && !session.authenticated) {
        toLogin();
        return;
      }
    } catch {
      // the agent is down: polling will show it
    }
    this.startPolling();
    if (!this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.open();
      }, RETRY_MS);
    }
  }

  startPolling() {
    if (this.pollTimer) return;
    const tick = async () => {
      await this.pollOnce();
      if (this.pollTimer) this.pollTimer = setTimeout(tick, POLL_MS);
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  async pollOnce() {
    const device = this.device;
    try {
      const plant = await getJSON("/plant");
      if (!this.pollTimer) return;
      this.setMode("polling");
      this.deliver("plant", plant);
      if (device) {
        const doc = await getJSON(`/device/${encodeURIComponent(device)}`);
        if (this.pollTimer && device === this.device) this.deliver("device", doc);
      }
    } catch (error) {
      if (error && error.status === 404) return; // unknown device: its page says so
      this.setMode("down");
    }
  }

  stopPolling() {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  closeStream() {
    if (this.source) this.source.close();
    this.source = null;
  }

  setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    this.emit("status", mode);
  }
}
