"""What the agent says about itself: health verdict, status document, one-line status.

One source for three audiences: ``/healthz`` (monitoring), the retained status
document on MQTT (dashboards, other systems), and the ``STATUS=`` line that
``systemctl status`` shows (a person at the gateway). All of them read the live
runners' counters; nothing here touches the data path.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_agent import __version__
from edge_agent.config.service import HealthConfig
from edge_agent.outbox import SinkView
from edge_agent.runtime.sink_runner import SinkRunner, SinkState
from edge_agent.runtime.source_runner import DeviceState, SourceRunner
from edge_agent.service.agent import Agent
from edge_agent.service.liveness import LoopMonitor, stalled_pollers
from edge_agent.sinks.base import BrokerConnected

#: States in which a device delivers nothing good.
DOWN_STATES = (DeviceState.OFFLINE, DeviceState.CONNECTING)
#: How far back /healthz looks for event-loop stalls.
LAG_WINDOW_S = 60.0


@dataclass(slots=True)
class ServiceStats:
    """Facts about the service itself (not the plant), kept by the supervisor."""

    monitor: LoopMonitor = field(default_factory=LoopMonitor)
    started_monotonic: float = field(default_factory=time.monotonic)
    reloads_applied: int = 0
    reloads_refused: int = 0
    last_reload_problems: list[str] = field(default_factory=list)
    last_reload_wall: float = 0.0
    watchdog_pings: int = 0
    watchdog_withheld: int = 0
    max_loop_lag: float = 5.0


def health_problems(agent: Agent, stats: ServiceStats, now: float | None = None) -> list[str]:
    """Why the agent is unhealthy; empty when it is healthy (``/healthz`` answers 200)."""
    now = time.monotonic() if now is None else now
    limits = agent.config.service.health or HealthConfig()
    problems: list[str] = []
    if agent.stopping:
        problems.append("agent is stopping")
    elif not agent.started.is_set():
        problems.append("agent is starting")
    for sink in agent.sinks:
        down_since = sink.counters.down_since_monotonic
        if down_since is not None and now - down_since > limits.sink_down_after:
            problems.append(
                f"sink {sink.sink.name}: not delivering for {now - down_since:.0f} s "
                f"({len(sink.buffer)} batches waiting): {sink.counters.last_error}"
            )
    for source in agent.sources:
        since = source.counters.state_since_monotonic
        if source.state in DOWN_STATES and now - since > limits.device_offline_after:
            reason = f" ({source.state_reason})" if source.state_reason else ""
            problems.append(
                f"device {source.device}: {source.state.value} for {now - since:.0f} s{reason}"
            )
    outbox = agent.outbox
    if outbox is not None and outbox.write_failing:
        problems.append(
            f"outbox {outbox.path} cannot be written: batches wait in memory "
            f"({outbox.write_failures} failed writes)"
        )
    lag = stats.monitor.worst_since(now - LAG_WINDOW_S)
    if lag > stats.max_loop_lag:
        problems.append(
            f"event loop was blocked for {lag:.1f} s in the last {LAG_WINDOW_S:.0f} s "
            f"(allowed {stats.max_loop_lag:g} s)"
        )
    problems += stalled_pollers(agent.sources, now)
    return problems


def _iso(wall: float) -> str:
    return (
        datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def status_document(agent: Agent, stats: ServiceStats) -> dict[str, Any]:
    """The retained MQTT status and the body of ``/healthz`` (see docs/SERVICE.md)."""
    now = time.monotonic()
    counts = Counter(source.state.value for source in agent.sources)
    problems = health_problems(agent, stats, now)
    return {
        "schema": 1,
        "state": "stopping" if agent.stopping else "online",
        "healthy": not problems,
        "reasons": problems,
        "plant": agent.config.plant.name,
        "site": agent.config.plant.site,
        "version": __version__,
        "ts": _iso(time.time()),
        "started": _iso(agent.started_at),
        "uptime_s": round(now - stats.started_monotonic, 1),
        "devices": {state.value: counts.get(state.value, 0) for state in DeviceState},
        "devices_total": len(agent.sources),
        "devices_not_online": {
            source.device: source.state_reason or source.state.value
            for source in agent.sources
            if source.state is not DeviceState.ONLINE
        },
        "device_states": {source.device: _device_state(source) for source in agent.sources},
        "backlog_batches": sum(len(sink.buffer) for sink in agent.sinks),
        "sinks": {sink.sink.name: sink_status(sink) for sink in agent.sinks},
        **_outbox(agent),
        "reloads": {
            "applied": stats.reloads_applied,
            "refused": stats.reloads_refused,
            **({"last": _iso(stats.last_reload_wall)} if stats.last_reload_wall else {}),
            **({"last_problems": stats.last_reload_problems} if stats.last_reload_problems else {}),
        },
    }


def sink_status(sink: SinkRunner) -> dict[str, Any]:
    """One sink for ``edge-agent status``: connected (an MQTT or Sparkplug sink: to which
    broker, or which it is trying), whether it delivers, fails or holds (and why: a
    Sparkplug sink waiting for its primary host is connected yet sends nothing), the
    backlog and what was sent."""
    state, reason = sink.standing()
    return {
        "connected": sink.sink.connected,
        **({"broker": sink.sink.broker} if isinstance(sink.sink, BrokerConnected) else {}),
        "state": state.value,
        **({"reason": reason} if state is not SinkState.DELIVERING else {}),
        "backlog_batches": len(sink.buffer),
        "dropped_batches": sink.buffer.dropped_batches,
        "batches_sent": sink.counters.batches_sent,
        **_replay(sink.buffer),
    }


def _device_state(source: SourceRunner) -> dict[str, str]:
    """One device for ``edge-agent status``: state, reason, since when, last good read."""
    counters = source.counters
    state = {"state": source.state.value, "reason": source.state_reason}
    if counters.state_since:
        state["since"] = _iso(counters.state_since)
    if counters.last_good_ns:
        state["last_good"] = _iso(counters.last_good_ns / 1e9)
    return state


def _replay(buffer: object) -> dict[str, int]:
    """A sink's lanes in the outbox: live (memory) and replayed from disk so far."""
    if not isinstance(buffer, SinkView):
        return {}
    return {
        "live_batches": buffer.live,
        "replayed_batches": buffer.replayed_batches,
        "replayed_samples": buffer.replayed_samples,
    }


def _outbox(agent: Agent) -> dict[str, Any]:
    """What the outbox holds and what it had to give up (docs/OUTBOX.md)."""
    outbox = agent.outbox
    if outbox is None:
        return {}
    oldest = outbox.oldest_at_ns
    return {
        "outbox": {
            "rows": outbox.rows,
            "bytes": outbox.bytes,
            "max_bytes": outbox.config.max_bytes,
            **({"oldest": _iso(oldest / 1e9)} if oldest is not None else {}),
            "dropped_batches": outbox.dropped_batches,
            "dropped_samples": outbox.dropped_samples,
            "unwritten_batches": outbox.unwritten_batches,
            "rejected_batches": outbox.rejected_batches,
            "writing": not outbox.write_failing,
            "dead_letters": outbox.dead_letters,
            "recovered_batches": outbox.recovered_batches,
            "lost_batches": outbox.lost_batches,
            "corrupt_batches": outbox.corrupt_batches,
            **(
                {"lost": {"ids": outbox.lost_ids, "sinks": outbox.lost_by_sink}}
                if outbox.lost_batches
                else {}
            ),
        }
    }


def encode_status(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()


def status_line(agent: Agent, stats: ServiceStats) -> str:
    """What ``systemctl status`` shows: devices, backlog, and what needs attention."""
    if agent.stopping:
        return "stopping: polling stops, sinks deliver what is buffered"
    total = len(agent.sources)
    online = sum(1 for s in agent.sources if s.state is DeviceState.ONLINE)
    parts = [f"{online}/{total} devices online"]
    for state in (DeviceState.CONNECTING, DeviceState.DEGRADED, DeviceState.OFFLINE):
        names = [s.device for s in agent.sources if s.state is state]
        if names:
            parts.append(f"{state.value}: {_names(names)}")
    backlog = sum(len(sink.buffer) for sink in agent.sinks)
    parts.append(f"backlog {backlog} batches")
    outbox = agent.outbox
    if outbox is not None:
        if outbox.write_failing:
            parts.append("outbox cannot write")
        if outbox.dropped_batches:
            parts.append(f"outbox dropped {outbox.dropped_batches} batches")
        if outbox.lost_batches:
            parts.append(f"outbox lost {outbox.lost_batches} batches to damage")
        if outbox.dead_letters:
            parts.append(f"{outbox.dead_letters} dead letters")
    # Not connected; else connected yet holding (a Sparkplug sink waiting for its primary
    # host) or failing (a broker or database that refuses): each needs a look.
    by_state: dict[str, list[str]] = {}
    for sink in agent.sinks:
        if not sink.sink.connected:
            by_state.setdefault("down", []).append(sink.sink.name)
            continue
        delivery, _ = sink.standing()
        if delivery is not SinkState.DELIVERING:
            by_state.setdefault(delivery.value, []).append(sink.sink.name)
    for label in ("down", SinkState.HOLDING.value, SinkState.FAILING.value):
        if label in by_state:
            parts.append(f"sink {label}: {_names(by_state[label])}")
    if stats.last_reload_problems:
        count = len(stats.last_reload_problems)
        parts.append(f"last reload refused ({count} problem{'s' if count != 1 else ''})")
    return "; ".join(parts)


def _names(names: list[str], shown: int = 3) -> str:
    extra = len(names) - shown
    return ", ".join(names[:shown]) + (f" +{extra} more" if extra > 0 else "")
