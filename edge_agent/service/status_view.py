"""``edge-agent status -c plant.yaml``: the running agent's ``/status``, readable.

Asks the health listener the plant file configures (``service.health``), so it shows
the agent that runs that file, as it sees itself: devices with their state, last good
read and reason, sinks with their backlog and oldest undelivered batch (from the
outbox file, read only), the outbox. ``--json`` passes the document through.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from edge_agent.config import PlantConfig

#: Seconds to wait for the agent's answer; it answers from its event loop at once.
TIMEOUT_S = 5.0


#: Straight to the agent: not through the http_proxy a gateway's shell may export for
#: apt (urllib would send even 127.0.0.1 there unless no_proxy names it). Over TLS
#: (``service.health.tls``) the agent's certificate is not checked: this asks the agent
#: of the plant file on this machine, and the status document is no secret (a
#: certificate made for the plant-network address would not match 127.0.0.1 anyway).
def _unchecked_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_DIRECT = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=_unchecked_tls())
)


class StatusUnavailable(Exception):
    """The agent's /status could not be had; the message says why, for a person."""


def status_url(config: PlantConfig) -> str:
    """Where the plant file's agent serves /status; raises StatusUnavailable without one."""
    health = config.service.health
    if health is None:
        raise StatusUnavailable(
            "the health endpoint is disabled in this plant file (no service.health): "
            "add `service: {health: {port: 9880}}` to see the running agent's status"
        )
    if health.port == 0:
        raise StatusUnavailable(
            "service.health.port is 0 (a free port picked at start): give the agent a "
            "fixed port, or ask it with --url http://HOST:PORT"
        )
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(health.listen, health.listen)
    if ":" in host:
        host = f"[{host}]"
    scheme = "http" if health.tls is None else "https"
    return f"{scheme}://{host}:{health.port}"


def fetch_status(base_url: str) -> dict[str, Any]:
    """GET ``base_url``/status; StatusUnavailable when no agent answers there."""
    url = base_url.rstrip("/") + "/status"
    try:
        with _DIRECT.open(url, timeout=TIMEOUT_S) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise StatusUnavailable(f"{url}: answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusUnavailable(
            f"no agent answers at {url} ({reason}): is edge-agent running with this plant file?"
        ) from exc
    try:
        document: dict[str, Any] = json.loads(body)
    except ValueError as exc:
        raise StatusUnavailable(f"{url}: not a status document: {exc}") from exc
    return document


def sink_backlog(config: PlantConfig) -> dict[str, tuple[int, int | None]]:
    """Per sink from the outbox file: (undelivered batches, oldest timestamp ns); {} if none."""
    from edge_agent.outbox.status import read_status
    from edge_agent.service.parts import outbox_path

    path = outbox_path(config)
    if not path.exists():
        return {}
    try:
        status = read_status(path)
    except sqlite3.Error:
        return {}  # busy or damaged: the document's own figures still show
    return {s.sink: (s.rows, s.oldest_ts_ns) for s in status.sinks}


def _span(seconds: float) -> str:
    """``12 s``, ``5 min``, ``2.0 h``: a time span as a person says it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return "never"
    then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{_span(max(0.0, (now - then).total_seconds()))} ago"


def render_status(
    document: dict[str, Any],
    backlog: dict[str, tuple[int, int | None]] | None = None,
    now: datetime | None = None,
) -> str:
    """The status document as a few aligned sections a person reads in one look."""
    now = now or datetime.now(UTC)
    backlog = backlog or {}
    healthy = "healthy" if document.get("healthy") else "NOT healthy"
    lines = [
        f"plant {document.get('plant')}: agent {document.get('state')}, {healthy}, "
        f"up {_span(float(document.get('uptime_s', 0)))}, version {document.get('version')}"
    ]
    lines += [f"  ! {reason}" for reason in document.get("reasons", [])]

    states: dict[str, dict[str, Any]] = document.get("device_states") or {
        name: {"state": "not online", "reason": reason}
        for name, reason in document.get("devices_not_online", {}).items()
    }
    lines.append(f"devices ({document.get('devices_total', len(states))}):")
    width = max((len(name) for name in states), default=6)
    for name, device in states.items():
        reason = f"  {device['reason']}" if device.get("reason") else ""
        last = f"last good read {_ago(device.get('last_good'), now)}"
        lines.append(f"  {name:<{width}}  {device.get('state', '?'):<10}  {last}{reason}")

    sinks: dict[str, dict[str, Any]] = document.get("sinks", {})
    lines.append(f"sinks ({len(sinks)}):")
    width = max((len(name) for name in sinks), default=6)
    for name, sink in sinks.items():
        state = "connected" if sink.get("connected") else "DOWN"
        if sink.get("state") in ("holding", "failing"):
            # Connected yet not sending (a Sparkplug sink waiting for its primary host),
            # or sends failing: the state and why, not a reassuring "connected".
            state = str(sink["state"]) if sink.get("connected") else "DOWN"
        text = f"  {name:<{width}}  {state:<10}  backlog {sink.get('backlog_batches', 0)} batches"
        stored = backlog.get(name)
        if stored is not None:
            rows, oldest = stored
            since = "" if oldest is None else f", oldest {_ago(_iso_ns(oldest), now)}"
            text += f", {rows} undelivered in the outbox{since}"
        if sink.get("dropped_batches"):
            text += f", {sink['dropped_batches']} dropped"
        if sink.get("broker"):  # the broker connected to, or the one being tried
            text += f", {'broker' if sink.get('connected') else 'trying'} {sink['broker']}"
        lines.append(text)
        if sink.get("reason"):
            lines.append(f"  {'':<{width}}  {sink['state']}: {sink['reason']}")

    outbox = document.get("outbox")
    if outbox is None:
        lines.append("outbox: none (no sinks, or not opened)")
    else:
        since = f", oldest {_ago(outbox['oldest'], now)}" if outbox.get("oldest") else ""
        writing = "writing" if outbox.get("writing", True) else "CANNOT WRITE"
        lines.append(
            f"outbox: {writing}, {outbox.get('rows', 0)} batches, "
            f"{_mib(outbox.get('bytes', 0))} of {_mib(outbox.get('max_bytes', 0))}{since}"
        )
        for key in ("dropped_batches", "dead_letters", "lost_batches", "corrupt_batches"):
            if outbox.get(key):
                lines.append(f"  {key.replace('_', ' ')}: {outbox[key]}")
    return "\n".join(lines)


def _iso_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _mib(count: int) -> str:
    return f"{count / 1048576:,.1f} MiB"
