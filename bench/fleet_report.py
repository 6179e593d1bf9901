"""The figures of a fleet run, its warnings, and how it prints (a summary and a table row).

Kept apart from the orchestration (bench/fleet.py) so that the arithmetic is plain
functions of what was sampled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from bench.fleet_accounting import Accounting
from bench.measure import FOREIGN_CORES, Sample, share
from bench.procs import Child


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def fleet_figures(
    *,
    result: Accounting,
    received: Mapping[str, Any],
    window: tuple[float, float],
    before: Sample,
    after: Sample,
    agents: Sequence[Child],
    memory: Mapping[int, Mapping[str, int]],
    consumer: Child,
    sims: Sequence[Child],
    nodes: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """Per-agent and per-node cost, traffic into the cluster, delivery."""
    start, end = window
    seconds = end - start
    cpu = [share(before, after, a.pid) for a in agents]
    rss = [memory[a.pid].get("VmHWM", 0) / 1024 for a in agents]
    in_window = [r for r in received["records"] if start * 1e9 <= r[0] < end * 1e9]
    messages = len(in_window)
    size = sum(r[7] for r in in_window)
    values = sum(r[5] for r in in_window)
    n = max(1, len(agents))
    broker_cpu_s = sum(f["cpu_pct"] for f in nodes.values()) / 100 * seconds
    ours = after.total(before) + broker_cpu_s
    busy = after.busy - before.busy
    other = {
        kind: {
            "messages": count,
            "bytes": size_,
            "retained": retained,
            "per_agent": round(count / n, 1),
            "mean_bytes": round(size_ / count) if count else None,
        }
        for kind, (count, size_, retained) in sorted(received.get("other", {}).items())
    }
    return {
        "window_s": round(seconds, 1),
        "agents": {
            "cpu_pct_mean": _mean(cpu),
            "cpu_pct_max": round(max(cpu), 1) if cpu else None,
            "peak_rss_mb_mean": _mean(rss),
            "peak_rss_mb_max": round(max(rss), 1) if rss else None,
        },
        "brokers": {
            "nodes": dict(nodes),
            "cpu_pct_total": round(sum(f["cpu_pct"] for f in nodes.values()), 1),
            "cpu_ms_per_message": round(1000 * broker_cpu_s / messages, 3) if messages else None,
        },
        "helpers": {
            "consumer_pct": round(share(before, after, consumer.pid), 1),
            "simulators_pct": [round(share(before, after, s.pid), 1) for s in sims],
            "machine_busy_cores": round(busy / seconds, 2),
            "foreign_cores": round(max(0.0, busy - ours) / seconds, 2),
        },
        "traffic": {
            "messages_per_s": round(messages / seconds, 1),
            "bytes_per_s": round(size / seconds),
            "per_agent_messages_per_s": round(messages / seconds / n, 2),
            "per_agent_bytes_per_s": round(size / seconds / n),
            "mean_message_bytes": round(size / messages) if messages else None,
            "values_per_message": round(values / messages, 1) if messages else None,
            "other_topics": other,
        },
        "delivery": {
            **result.summary(),
            "malformed_messages": received.get("malformed", 0),
            "consumer_connects": received.get("connects"),
            "bad_reasons": received.get("bad_reasons", {}),
        },
    }


def fleet_warnings(record: dict[str, Any]) -> None:
    """Say plainly when a figure is suspect or the run was not loss-free."""
    warnings: list[str] = record["warnings"]
    delivery = record.get("delivery", {})
    helpers = record.get("helpers", {})
    if delivery.get("lost"):
        examples = delivery["lost_examples"]
        warnings.append(f"{delivery['lost']} served reads never arrived: {examples}")
    if delivery.get("matched_bad"):
        warnings.append(
            f"{delivery['matched_bad']} served reads matched batches of bad values only: "
            "answers after the agent's timeout, or a lost batch behind a read the simulator "
            "never answered (bench/fleet_accounting.py; the logs cannot tell which)"
        )
    if delivery.get("short_batches"):
        warnings.append(f"{delivery['short_batches']} batches arrived with values missing")
    if delivery.get("values_bad"):
        warnings.append(
            f"{delivery['values_bad']} values arrived bad ({delivery.get('bad_reasons')}): "
            "timeouts mean the simulators or the machine could not keep up"
        )
    if delivery.get("malformed_messages"):
        warnings.append(f"{delivery['malformed_messages']} data messages could not be parsed")
    unconfirmed = record.get("agent_counters", {}).get("unconfirmed_samples")
    if unconfirmed:
        warnings.append(f"the agents' own counters show {unconfirmed} samples unconfirmed")
    if any(code != 0 for code in record.get("agent_exit_codes", [])):
        warnings.append(f"agents exited with codes {record['agent_exit_codes']}")
    failover = record.get("failover")
    if failover and failover.get("not_resumed"):
        warnings.append(f"agents that never delivered again: {failover['not_resumed']}")
    if helpers.get("foreign_cores", 0.0) >= FOREIGN_CORES:
        warnings.append(
            f"other processes used {helpers['foreign_cores']:.2f} cores during the window: "
            "the machine was not quiet and the figures are contaminated"
        )
    cpus = os.cpu_count() or 1
    if helpers.get("machine_busy_cores", 0.0) >= 0.9 * cpus:
        warnings.append(
            f"the machine was saturated ({helpers['machine_busy_cores']:.2f} of {cpus} cores "
            "busy): latency and CPU shares measure contention as much as the fleet"
        )


TABLE_HEADER = (
    "| agents | node killed | load avg | agent CPU % mean / max | agent peak RSS MB | "
    "broker CPU % per node | broker RSS MB per node | msg/s | kB/s | latency p50 / p99 ms | "
    "lost | duplicates | failover s p50 / max |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def markdown_row(record: Mapping[str, Any]) -> str:
    """One row of docs/BENCHMARKS.md's fleet table (TABLE_HEADER)."""
    p = record["params"]
    a = record.get("agents", {})
    b = record.get("brokers", {}).get("nodes", {})
    t = record.get("traffic", {})
    d = record.get("delivery", {})
    lat = d.get("latency_ms", {})
    f = record.get("failover")
    load = record.get("load_average_at_start", ["?"])[0]
    failover = f"{f['resumed_s']['p50']} / {f['resumed_s']['max']}" if f else "n/a"
    return (
        f"| {p['agents']} | {'yes' if p['kill_node'] else 'no'} | {load} | "
        f"{a.get('cpu_pct_mean')} / {a.get('cpu_pct_max')} | {a.get('peak_rss_mb_max')} | "
        f"{' / '.join(str(v['cpu_pct']) for v in b.values())} | "
        f"{' / '.join(str(v['peak_rss_mb']) for v in b.values())} | "
        f"{t.get('messages_per_s')} | {round(t.get('bytes_per_s', 0) / 1000, 1)} | "
        f"{lat.get('p50')} / {lat.get('p99')} | {d.get('lost')} | {d.get('duplicates')} | "
        f"{failover} |"
    )


def render_fleet(record: Mapping[str, Any]) -> str:
    """The run at a glance, for the terminal."""
    p = record["params"]
    a = record.get("agents", {})
    br = record.get("brokers", {})
    t = record.get("traffic", {})
    d = record.get("delivery", {})
    h = record.get("helpers", {})
    lines = [
        f"fleet: {p['agents']} agents x {p['devices_per_agent']} devices x "
        f"{p['tags_per_device']} tags every {p['interval_s']:g} s, brokers={p['brokers']}, "
        f"window {record.get('window_s')} s",
        f"  agents: CPU {a.get('cpu_pct_mean')}% mean, {a.get('cpu_pct_max')}% max of one "
        f"core; peak RSS {a.get('peak_rss_mb_mean')} MB mean, {a.get('peak_rss_mb_max')} MB max",
        f"  brokers: {br.get('nodes')}; {br.get('cpu_ms_per_message')} ms CPU per message",
        f"  traffic: {t.get('messages_per_s')} msg/s, {t.get('bytes_per_s')} B/s "
        f"({t.get('per_agent_messages_per_s')} msg/s and {t.get('per_agent_bytes_per_s')} B/s "
        f"per agent, {t.get('mean_message_bytes')} B per message)",
        f"  delivery: {d.get('served_required')} reads served, {d.get('matched')} matched "
        f"({d.get('matched_bad')} to batches of bad values), "
        f"lost {d.get('lost')}, duplicates {d.get('duplicates')}, unmatched batches "
        f"{d.get('unmatched_batches')}, latency {d.get('latency_ms')}, "
        f"held back by the outage {d.get('outage_latency_ms')}",
        f"  helpers: consumer {h.get('consumer_pct')}%, simulators {h.get('simulators_pct')}, "
        f"machine busy {h.get('machine_busy_cores')} cores, foreign {h.get('foreign_cores')}",
        f"  load average: start {record.get('load_average_at_start')}, "
        f"end {record.get('load_average_at_end')}",
    ]
    if record.get("failover"):
        lines.append(f"  failover: {record['failover']}")
    if record.get("agent_counters"):
        lines.append(f"  agent counters: {record['agent_counters']}")
    lines += [f"  warning: {w}" for w in record.get("warnings", [])]
    lines.append(TABLE_HEADER)
    lines.append(markdown_row(record))
    return "\n".join(lines)
