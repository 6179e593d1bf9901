"""Read the agent's own counters from its ``/metrics`` endpoint (service.health).

The subscriber is the judge of what MQTT delivered; the InfluxDB sink has no
subscriber, so what it confirmed comes from the agent: every sample enters the
outbox once (``edge_agent_outbox_appended_samples``) and each sink counts the
samples it had confirmed (``edge_agent_sink_samples_sent``). Once a sink's backlog
is empty, appended minus sent is exactly what that sink lost.
"""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

#: Series read, by family name (without the ``_total`` suffix of counters).
_FAMILIES = {
    "edge_agent_pipeline_samples",
    "edge_agent_outbox_appended_samples",
    "edge_agent_outbox_dropped_batches",
    "edge_agent_sink_samples_sent",
    "edge_agent_sink_send_failures",
    "edge_agent_buffer_batches",
    "edge_agent_buffer_dropped_batches",
    "edge_agent_device_skipped_ticks",
    "edge_agent_outbox_rows",
    "edge_agent_outbox_bytes",
    "edge_agent_outbox_oldest_age_seconds",
}


def scrape(port: int, timeout: float = 10.0) -> dict[str, float]:
    """``{"family" or "family{label}": value}`` of the families the benchmark reads."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in _FAMILIES:
            continue
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            label = s.labels.get("sink") or s.labels.get("device")
            key = family.name if label is None else f"{family.name}{{{label}}}"
            out[key] = out.get(key, 0.0) + s.value
    return out


def sink_names(counters: dict[str, float]) -> list[str]:
    prefix = "edge_agent_sink_samples_sent{"
    return sorted(k[len(prefix) : -1] for k in counters if k.startswith(prefix))


def window_counts(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Samples collected and confirmed per sink between two scrapes."""

    def delta(key: str) -> int:
        return round(after.get(key, 0.0) - before.get(key, 0.0))

    return {
        "collected": delta("edge_agent_pipeline_samples"),
        "appended": delta("edge_agent_outbox_appended_samples"),
        "sent": {s: delta(f"edge_agent_sink_samples_sent{{{s}}}") for s in sink_names(after)},
        "skipped_ticks": sum(
            round(v - before.get(k, 0.0))
            for k, v in after.items()
            if k.startswith("edge_agent_device_skipped_ticks")
        ),
    }


def losses(final: dict[str, float]) -> dict[str, Any]:
    """Per sink, after the drain: samples appended but never confirmed, backlog, drops."""
    appended = round(final.get("edge_agent_outbox_appended_samples", 0.0))
    out: dict[str, Any] = {"appended_total": appended}
    for s in sink_names(final):
        sent = round(final.get(f"edge_agent_sink_samples_sent{{{s}}}", 0.0))
        out[s] = {
            "sent_total": sent,
            "unconfirmed": appended - sent,
            "backlog_batches": round(final.get(f"edge_agent_buffer_batches{{{s}}}", 0.0)),
            "dropped_batches": round(final.get(f"edge_agent_buffer_dropped_batches{{{s}}}", 0.0)),
            "send_failures": round(final.get(f"edge_agent_sink_send_failures{{{s}}}", 0.0)),
        }
    return out
